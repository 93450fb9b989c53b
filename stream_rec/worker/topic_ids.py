"""The Kafka topic id of the events topic, as the short tag kept with each shopper's position.

A topic deleted and created again under the same name starts its offsets at 0 again; only its
id (KIP-516) tells the two apart. The worker keeps a digest of the id next to the offset of the
last event applied to each shopper, so that a new topic's events are never taken for replays.
"""

from __future__ import annotations

import hashlib
import logging
import uuid

from kafka import KafkaAdminClient

from stream_rec.config import Settings
from stream_rec.connection import kafka_python_config

log = logging.getLogger(__name__)

TAG_CHARS = 8


def topic_tag(topic_id: uuid.UUID | str | None) -> str:
    """A short, stable digest of a topic id; empty when the id is unknown."""
    if not topic_id or str(topic_id) == str(uuid.UUID(int=0)):
        return ""
    return hashlib.blake2b(str(topic_id).encode(), digest_size=TAG_CHARS // 2).hexdigest()


def fetch_topic_tag(settings: Settings, topic: str, timeout_ms: int = 10_000) -> str:
    """The tag of ``topic``'s current id, or empty (logged) when the cluster does not say."""
    try:
        admin = KafkaAdminClient(**kafka_python_config(settings), request_timeout_ms=timeout_ms,
                                 client_id="stream-rec-topic-ids")
        try:
            described = admin.describe_topics([topic])
        finally:
            admin.close()
        found = [t for t in described if t.get("name") == topic]
        return topic_tag(found[0].get("topic_id") if found else None)
    except Exception as exc:  # no id only weakens de-duplication to the event-id window
        log.warning("could not read the topic id of %s (%r): offsets of a re-created topic "
                    "may be taken for replays", topic, exc)
        return ""
