"""Local tooling around the product, not part of what a shop deploys: the single-node Kafka
broker, the synthetic storefront, the live demo, the benchmarks, a worker-process runner for
tests and tools, and the docs generator."""
