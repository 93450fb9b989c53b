"""Create the topics stream-rec reads and writes, with the layout each one needs."""

from __future__ import annotations

import logging

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from stream_rec.config import Settings
from stream_rec.connection import kafka_python_config

log = logging.getLogger(__name__)


def topic_specs(settings: Settings) -> list[NewTopic]:
    """Events and recommendations are keyed by user and share a partition count (co-partitioned
    with the user-state table); the catalog is compacted so it always holds the latest item."""
    rf = settings.replication_factor
    return [
        NewTopic(settings.events_topic, settings.partitions, rf),
        NewTopic(settings.recommendations_topic, settings.partitions, rf),
        NewTopic(settings.dlq_topic, 1, rf),
        NewTopic(settings.items_topic, 1, rf, topic_configs={"cleanup.policy": "compact"}),
        NewTopic(settings.model_updates_topic, 1, rf),
        NewTopic(settings.experiments_topic, 1, rf, topic_configs={"cleanup.policy": "compact"}),
    ]


def ensure_topics(settings: Settings) -> list[str]:
    """Create missing topics; return the names created (existing ones are left alone)."""
    admin = KafkaAdminClient(**kafka_python_config(settings))
    try:
        existing = set(admin.list_topics())
        missing = [t for t in topic_specs(settings) if t.name not in existing]
        created: list[str] = []
        for topic in missing:
            try:
                admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:  # another process won the race
                pass
        if created:
            log.info("created topics: %s", ", ".join(created))
        return created
    finally:
        admin.close()
