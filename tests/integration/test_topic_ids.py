"""The events topic's id tag, as the worker keeps it with each shopper's position: stable for
one topic, different once the topic is deleted and created again under the same name."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from stream_rec.config import load_settings
from stream_rec.worker.topic_ids import fetch_topic_tag

pytestmark = pytest.mark.integration


def _create(admin: KafkaAdminClient, topic: str, deadline_s: float = 60.0) -> None:
    """Create ``topic``, retrying while the broker still finishes deleting its namesake."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            admin.create_topics([NewTopic(topic, 1, 1)])
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_a_recreated_topic_gets_another_tag(broker: str, new_topic) -> None:
    settings = load_settings({}, broker=broker)
    topic = new_topic("events")
    admin = KafkaAdminClient(bootstrap_servers=broker)
    try:
        _create(admin, topic)
        first = fetch_topic_tag(settings, topic)
        assert first and fetch_topic_tag(settings, topic) == first
        admin.delete_topics([topic])
        _create(admin, topic)
        deadline = time.monotonic() + 60
        second = fetch_topic_tag(settings, topic)
        while second in ("", first) and time.monotonic() < deadline:
            time.sleep(0.5)  # metadata may name the old topic for a moment
            second = fetch_topic_tag(settings, topic)
        assert second and second != first
    finally:
        admin.close()
    assert fetch_topic_tag(settings, new_topic("never-created")) == ""
