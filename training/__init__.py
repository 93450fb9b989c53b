"""Offline training: the Keras fusion model, its ONNX export and the retraining loop.

This package needs the ``train`` extra (TensorFlow); the online worker never imports it.
"""
