"""Inference: KV caches, sampling and generation loops. Knows nothing about training."""
