"""Shoppers inactive for longer than ``state_expiry_days`` are deleted, changelog included."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from stream_rec.tools.worker_process import WorkerProcess, http_status
from tests.integration.worker_fixtures import TopicReader, event_bytes, isolated_settings, produce

pytestmark = pytest.mark.integration

USERS = [f"gone-{n}" for n in range(6)]
KEEP_S = 3.0


def _changelog(broker: str, topic: str, keys: set[bytes]) -> dict[bytes, bytes | None]:
    """The last record of each of ``keys`` on a changelog topic (None = tombstone)."""
    consumer = KafkaConsumer(topic, bootstrap_servers=broker, group_id=None,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=3000)
    last: dict[bytes, bytes | None] = {}
    try:
        for record in consumer:
            if record.key in keys:
                last[record.key] = record.value
    finally:
        consumer.close()
    return last


def test_inactive_shoppers_expire_with_tombstones(broker: str, new_topic, tmp_path: Path
                                                  ) -> None:
    settings = isolated_settings(broker, new_topic, tmp_path,
                                 state_expiry_days=KEEP_S / 86_400)
    produce(broker, settings.items_topic, [(b"i1", b'{"category": "c"}')])
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    recs = TopicReader(broker, settings.recommendations_topic)
    try:
        produce(broker, settings.events_topic, [event_bytes(
            {"event_id": f"e-{u}", "user_id": u, "item_id": "i1", "type": "view",
             "ts": 1_700_000_000_000}) for u in USERS])
        recs.wait_for(lambda v: len(v) >= len(USERS), 120)
        deadline = time.monotonic() + 120
        remaining = set(USERS)
        while remaining:
            assert time.monotonic() < deadline, f"still kept: {sorted(remaining)}"
            remaining = {u for u in remaining
                         if http_status(f"{worker.base_url}/users/{u}/state/") != 404}
            time.sleep(0.5)
        # Their stored lists went with them: the API answers as for a shopper never seen.
        latest = {u: worker.get_json(f"/users/{u}/recommendations/").get("pool", {}).get("kind")
                  for u in USERS}
        metrics = worker.get_text("/metrics/")
    finally:
        worker.stop()
        recs.close()
    assert set(latest.values()) == {"new_shopper"}
    expired = next(line for line in metrics.splitlines()
                   if line.startswith("stream_rec_states_expired_total "))
    assert int(float(expired.split()[1])) >= len(USERS)
    keys = {u.encode() for u in USERS}
    for table in ("user-state", "latest-recs"):
        last = _changelog(broker, f"{settings.app_id}-{table}-changelog", keys)
        assert set(last) == keys and set(last.values()) == {None}, (table, last)
