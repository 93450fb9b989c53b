"""The kafka: dataset reader and model announcements, against the real broker."""

from __future__ import annotations

import json
import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

from stream_rec.config import load_settings
from stream_rec.datasets import load_dataset
from stream_rec.errors import UserError
from stream_rec.model import FileRegistry
from tests.unit.fake_artifact import make_artifact

pytestmark = pytest.mark.integration


def _create(broker: str, *topics: str, compact: bool = False) -> None:
    admin = KafkaAdminClient(bootstrap_servers=broker)
    try:
        configs = {"cleanup.policy": "compact"} if compact else {}
        admin.create_topics([NewTopic(t, 2, 1, topic_configs=configs) for t in topics])
    finally:
        admin.close()


def test_kafka_reader_reads_a_bounded_window(broker, new_topic, caplog):
    events, items = new_topic("events"), new_topic("items")
    _create(broker, events)
    _create(broker, items, compact=True)
    now = int(time.time() * 1000)
    producer = KafkaProducer(bootstrap_servers=broker)
    old = {"event_id": "old", "user_id": "u0", "item_id": "x", "type": "view",
           "ts": now - 10 * 86_400_000}
    producer.send(events, key=b"u0", value=json.dumps(old).encode())
    for n in range(40):  # 20 shoppers one after the other, two events each, a minute apart
        user = f"u{n // 2}"
        event = {"event_id": f"e{n}", "user_id": user, "item_id": f"i{n % 7}",
                 "type": "purchase" if n % 5 == 0 else "view",
                 "ts": now - 3_600_000 + 60_000 * n, "price": 9.5}
        producer.send(events, key=user.encode(), value=json.dumps(event).encode())
    duplicate = {"event_id": "e3", "user_id": "u1", "item_id": "i3", "type": "view",
                 "ts": now - 3_600_000 + 180_000}
    producer.send(events, key=b"u3", value=json.dumps(duplicate).encode())
    producer.send(events, key=b"u1", value=b"{not json")
    producer.send(events, key=b"u1", value=json.dumps({"event_id": "z", "type": "hug"}).encode())
    producer.send(items, key=b"i1", value=json.dumps({"category": "shoes", "brand": "b"}).encode())
    producer.send(items, key=b"i2", value=json.dumps({"category": "hats"}).encode())
    producer.send(items, key=b"i2", value=None)  # delisted
    producer.flush()
    producer.close()

    settings = load_settings({}, broker=broker, items_topic=items, holdout_fraction=0.25)
    data = load_dataset(f"kafka:{events}", settings, window_ms=86_400_000)
    all_events = [e for s in (*data.train, *data.test) for e in s.events]
    assert len(all_events) == 40  # the old one is outside the window; duplicate kept once
    assert {e.event_type for e in all_events} == {"view", "purchase"}
    assert len(data.test) == 5 and len(data.train) == 15  # the newest quarter is held out
    assert max(e.ts_ms for s in data.train for e in s.events) <= min(
        s.events[0].ts_ms for s in data.test)
    assert data.items["i1"]["category"] == "shoes" and data.items["i1"]["price"] == "9.5"
    assert "category" not in data.items.get("i2", {})
    assert "skipped 2 malformed" in caplog.text


def test_kafka_reader_empty_topic_is_one_clear_error(broker, new_topic):
    events = new_topic("events")
    _create(broker, events)
    settings = load_settings({}, broker=broker, items_topic=new_topic("none"))
    with pytest.raises(UserError, match="no valid events"):
        load_dataset(f"kafka:{events}", settings, window_ms=60_000)


def test_publish_announces_the_version(broker, new_topic, tmp_path):
    topic = new_topic("model-updates")
    _create(broker, topic)
    settings = load_settings({}, broker=broker, model_updates_topic=topic)
    registry = FileRegistry(tmp_path / "registry")
    version = registry.publish(make_artifact(tmp_path / "art", version="v42"), settings)
    consumer = KafkaConsumer(topic, bootstrap_servers=broker, auto_offset_reset="earliest",
                             consumer_timeout_ms=15_000)
    messages = [json.loads(m.value) for m in consumer]
    consumer.close()
    assert len(messages) == 1
    message = messages[0]
    assert message["version"] == version == "v42" == registry.current()
    assert message["path"] == str(registry.path("v42").resolve())
    assert message["created_at"] == "2024-01-01T00:00:00Z"
    import hashlib

    manifest = (registry.path("v42") / "manifest.json").read_bytes()
    assert message["manifest_sha256"] == hashlib.sha256(manifest).hexdigest()


def test_kafka_reader_leaves_forgotten_shoppers_out(broker, new_topic):
    events = new_topic("events")
    _create(broker, events)
    now = int(time.time() * 1000)
    producer = KafkaProducer(bootstrap_servers=broker)
    for n in range(30):
        user = f"u{n % 3}"
        event = {"event_id": f"f{n}", "user_id": user, "item_id": f"i{n % 5}", "type": "view",
                 "ts": now - 600_000 + 10_000 * n}
        producer.send(events, key=user.encode(), value=json.dumps(event).encode())
    producer.send(events, key=b"u1", value=json.dumps(
        {"type": "forget_user", "user_id": "u1", "request_id": "r1"}).encode())
    producer.flush()
    producer.close()
    settings = load_settings({}, broker=broker, holdout_fraction=0.2)
    data = load_dataset(f"kafka:{events}", settings, window_ms=86_400_000)
    users = {e.user_id for s in (*data.train, *data.test) for e in s.events}
    assert users == {"u0", "u2"}
