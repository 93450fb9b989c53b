"""A list the broker refuses stops the worker before its event counts as processed.

The broker is told to refuse every message on the recommendations topic (max.message.bytes
below any list), so each list's delivery fails for good. The worker must exit before Faust
commits the offsets of those events; once the topic accepts lists again, a restarted worker
serves every event, and each shopper's state counts each event once.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from stream_rec.core.state import StateLimits
from stream_rec.errors import UNDELIVERED_EXIT_STATUS
from stream_rec.worker_process import WorkerProcess
from tests.integration.test_crash_recovery import N_ITEMS, _category, _clean_replay, _events
from tests.integration.worker_fixtures import (
    TopicReader,
    committed_offsets,
    event_bytes,
    isolated_settings,
    produce,
    wait_committed,
)

pytestmark = pytest.mark.integration


def _set_max_message_bytes(broker: str, topic: str, value: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=broker)
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                            configs={"max.message.bytes": value})])
    finally:
        admin.close()


def test_undeliverable_list_stops_the_worker_before_its_offset_is_committed(
        broker: str, new_topic, tmp_path: Path) -> None:
    settings = isolated_settings(broker, new_topic, tmp_path)
    events = _events(seed=3)[:200]
    produce(broker, settings.items_topic,
            [(f"item-{i}".encode(), f'{{"category": "{_category(f"item-{i}")}"}}'.encode())
             for i in range(N_ITEMS)])
    _set_max_message_bytes(broker, settings.recommendations_topic, "64")  # below any list
    produce(broker, settings.events_topic, [event_bytes(e.to_dict()) for e in events])

    worker = WorkerProcess(settings, tmp_path / "refused.log").start(wait_s=0)
    assert worker.proc is not None
    status = worker.proc.wait(timeout=180)
    assert status == UNDELIVERED_EXIT_STATUS, worker.log_tail()
    assert "could not be delivered" in worker.log_tail()
    done, _ = committed_offsets(broker, settings.app_id, settings.events_topic)
    assert done == {p: 0 for p in done}, f"offsets committed past undelivered lists: {done}"

    _set_max_message_bytes(broker, settings.recommendations_topic, "1048588")
    recs = TopicReader(broker, settings.recommendations_topic)
    worker = WorkerProcess(settings, tmp_path / "restarted.log").start()
    try:
        wanted = {e.event_id for e in events}
        recs.wait_for(lambda v: {r["event_id"] for r in v} >= wanted, 180)
        wait_committed(broker, settings.app_id, settings.events_topic, 120)
        expected = _clean_replay(events, StateLimits(history=settings.history_length))
        for user, clean in expected.items():
            got = worker.get_json(f"/users/{user}/state/")
            assert got["n_events"] == clean.n_events, user
            assert [h["item_id"] for h in got["history"]] == clean.history_items, user
    finally:
        worker.stop()
        recs.close()
