"""`stream-rec storefront` streams the catalog and valid live events into a real broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import pytest
from kafka import KafkaConsumer

from stream_rec.core.events import parse_event

pytestmark = pytest.mark.integration


def read_all(broker: str, topic: str) -> list[tuple[bytes, bytes]]:
    consumer = KafkaConsumer(topic, bootstrap_servers=broker, auto_offset_reset="earliest",
                             consumer_timeout_ms=5000, enable_auto_commit=False)
    try:
        return [(m.key, m.value) for m in consumer]
    finally:
        consumer.close()


def test_storefront_feed_sends_catalog_then_live_events(broker: str,
                                                        new_topic: Callable[[str], str]) -> None:
    topics = {name: new_topic(name) for name in
              ("events", "items", "dlq", "recommendations", "model_updates")}
    env = {**os.environ, "STREAM_REC_BROKER": broker,
           **{f"STREAM_REC_{name.upper()}_TOPIC": topic for name, topic in topics.items()}}
    result = subprocess.run(
        [sys.executable, "-m", "stream_rec.cli", "storefront", "--rate", "100",
         "--duration", "3"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]

    catalog = read_all(broker, topics["items"])
    assert len(catalog) == 600
    categories = {json.loads(value)["category"] for _, value in catalog}
    assert len(categories) == 12

    events = read_all(broker, topics["events"])
    assert len(events) > 50
    parsed = [parse_event(value, 65536) for _, value in events]
    assert all(key.decode() == e.user_id for (key, _), e in zip(events, parsed, strict=True))
    assert len({e.event_id for e in parsed}) == len(parsed)
    assert {e.item_id for e in parsed} <= {key.decode() for key, _ in catalog}
