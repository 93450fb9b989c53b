"""The pure core: no Kafka, no Faust, no onnxruntime, no TensorFlow; plain data in and out."""
