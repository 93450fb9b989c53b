"""A list the broker refuses stops the worker before its event counts as processed.

The broker is told to refuse every message on the recommendations topic (max.message.bytes
below any list), so each list's delivery fails for good. The worker must exit before Faust
commits the offsets of those events; once the topic accepts lists again, a restarted worker
serves every event, and each shopper's state counts each event once.

A broker that stops answering altogether (frozen: its connections stay open, nothing comes
back) must stop the worker too, within a bound set by ``produce_timeout_s`` rather than
Faust's 20 minutes, and again with nothing committed past a list that was not delivered.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType

from stream_rec.config import load_settings
from stream_rec.core.state import StateLimits
from stream_rec.errors import UNDELIVERED_EXIT_STATUS
from stream_rec.tools.broker import LocalBroker
from stream_rec.tools.worker_process import WorkerProcess
from tests.helpers import free_port_pair
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


PRODUCE_TIMEOUT_S = 5.0
# aiokafka gives up on a send after one to two request timeouts; the rest is start-up slack
# on a busy machine. Without the setting the wait is Faust's 1200 s.
EXIT_BOUND_S = 2 * PRODUCE_TIMEOUT_S + 60
BACKLOG = 20_000  # far more than the worker serves before the broker stops answering


def _read_to_end(broker: str, topic: str, timeout_s: float = 120) -> dict[int, list[bytes]]:
    """Every message value of ``topic`` by partition, in offset order (offset = index)."""
    consumer = KafkaConsumer(bootstrap_servers=broker, group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        values: dict[int, list[bytes]] = {tp.partition: [] for tp in tps}
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, f"{topic} not read to its end in {timeout_s} s"
            for tp, records in consumer.poll(timeout_ms=500).items():
                values[tp.partition].extend(r.value for r in records)
        return values
    finally:
        consumer.close()


def test_broker_that_stops_answering_stops_the_worker_within_its_produce_timeout(
        new_topic, tmp_path: Path) -> None:
    own = LocalBroker(load_settings({}, kafka_port=free_port_pair()),
                      data_dir=tmp_path / "kafka")
    own.start(timeout_s=180)
    try:
        settings = isolated_settings(own.bootstrap, new_topic, tmp_path)
        produce(own.bootstrap, settings.items_topic,
                [(f"item-{i}".encode(), f'{{"category": "{_category(f"item-{i}")}"}}'.encode())
                 for i in range(N_ITEMS)])
        produce(own.bootstrap, settings.events_topic, [event_bytes(
            {"event_id": f"ev-{n}", "user_id": f"user-{n % 300}", "item_id": f"item-{n % N_ITEMS}",
             "type": "view", "ts": 1_700_000_000_000 + n}) for n in range(BACKLOG)])
        recs = TopicReader(own.bootstrap, settings.recommendations_topic)
        worker = WorkerProcess(settings, tmp_path / "worker.log", extra_env={
            "STREAM_REC_PRODUCE_TIMEOUT_S": str(PRODUCE_TIMEOUT_S)}).start()
        assert worker.proc is not None
        broker_pid = own.pid()
        assert broker_pid is not None
        try:
            recs.wait_for(lambda v: len(v) > 0, 120)  # the worker is working through the backlog
            os.kill(broker_pid, signal.SIGSTOP)
            try:
                status = worker.proc.wait(timeout=EXIT_BOUND_S)
            except subprocess.TimeoutExpired:
                pytest.fail(f"the worker still waits {EXIT_BOUND_S:.0f} s after its broker "
                            f"stopped answering:\n{worker.log_tail()}")
            finally:
                os.kill(broker_pid, signal.SIGCONT)
            assert status == UNDELIVERED_EXIT_STATUS, worker.log_tail()
            assert "could not be delivered" in worker.log_tail(50_000)
        finally:
            worker.stop()
            recs.close()

        own.start(timeout_s=180)  # answering again: read what the worker left behind
        listed = {json.loads(v)["event_id"] for values in _read_to_end(
            own.bootstrap, settings.recommendations_topic).values() for v in values}
        events = _read_to_end(own.bootstrap, settings.events_topic)
        assert 0 < len(listed) < BACKLOG, "the worker had no list left to send"
        done, _ = committed_offsets(own.bootstrap, settings.app_id, settings.events_topic)
        for partition, values in events.items():
            unlisted = [offset for offset, value in enumerate(values[:done[partition]])
                        if json.loads(value)["event_id"] not in listed]
            assert not unlisted, (f"partition {partition} committed up to {done[partition]}, "
                                  f"past events whose lists never arrived: {unlisted[:5]}")
    finally:
        own.stop()
