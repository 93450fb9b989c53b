"""Offline work on recorded events: evaluating a model's lists (relevance, diversity), the
relevance/diversity trade-off sweep, replaying a dataset into Kafka, and progress display."""
