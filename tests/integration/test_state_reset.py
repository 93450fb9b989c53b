"""A state folder the broker can no longer restore: one clear line, then `--reset-state`.

The worker's RocksDB tables are a cache of their changelog topics. When the broker loses the
changelogs (topics deleted and recreated, or a new broker altogether, as after removing the
local broker's data folder), Faust used to stop the worker with a ConsistencyError traceback.
The worker must instead exit with one line that names the state folder, the cause and the
fix; with `--reset-state` it starts and serves, and restarts cleanly afterwards; the demo
starts afresh by itself.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from stream_rec.config import Settings, load_settings
from stream_rec.tools.broker import LocalBroker
from stream_rec.tools.demo.run import start_state_afresh_if_stale
from stream_rec.tools.worker_process import WorkerProcess
from stream_rec.topics import ensure_topics
from stream_rec.worker.state_folder import tables_dir
from tests.helpers import free_port_pair
from tests.integration.worker_fixtures import (
    TopicReader,
    event_bytes,
    isolated_settings,
    produce,
    wait_committed,
)

pytestmark = pytest.mark.integration

TABLES = ("user-state", "latest-recs")
USAGE_ERROR = 2  # what the CLI exits with on a problem the user can fix


def _events(first: int, count: int) -> list[dict[str, object]]:
    return [{"event_id": f"ev-{n}", "user_id": f"u{n % 5}", "item_id": f"item-{n % 20}",
             "type": "view", "ts": 1_750_000_000_000 + n} for n in range(first, first + count)]


def _serve(settings: Settings, worker: WorkerProcess, events: list[dict[str, object]]) -> None:
    """Send ``events`` and wait until each has its list and the group committed them all."""
    recs = TopicReader(settings.broker, settings.recommendations_topic)
    try:
        produce(settings.broker, settings.events_topic, [event_bytes(e) for e in events])
        wanted = {e["event_id"] for e in events}
        recs.wait_for(lambda v: {r["event_id"] for r in v} >= wanted, 180,
                      alive=lambda: _alive(worker))
        wait_committed(settings.broker, settings.app_id, settings.events_topic, 120)
    finally:
        recs.close()


def _alive(worker: WorkerProcess) -> None:
    assert worker.proc is not None and worker.proc.poll() is None, worker.log_tail()


def _first_run(settings: Settings, tmp_path: Path) -> None:
    """A worker builds local state (and changelogs) for a few shoppers, then stops."""
    produce(settings.broker, settings.items_topic,
            [(f"item-{i}".encode(), b'{"category": "c%d"}' % (i % 4)) for i in range(20)])
    worker = WorkerProcess(settings, tmp_path / "first.log").start()
    try:
        _serve(settings, worker, _events(0, 60))
    finally:
        assert worker.stop() == 0, worker.log_tail()
    assert any(tables_dir(settings).glob("user-state-*.db"))


def _refused(settings: Settings, tmp_path: Path, name: str) -> str:
    """Start a worker that must refuse its state; the one line it exits with."""
    worker = WorkerProcess(settings, tmp_path / f"{name}.log").start(wait_s=0)
    assert worker.proc is not None
    status = worker.proc.wait(timeout=180)
    output = worker.log_tail(50_000)
    assert status == USAGE_ERROR, output
    assert "Traceback" not in output and "ConsistencyError" not in output, output
    line = output.strip().splitlines()[-1]
    assert line.startswith("stream-rec worker: the local state in "), output
    assert str(tables_dir(settings)) in line
    assert "stream-rec worker --reset-state" in line
    return line


def _recreate_empty(broker: str, topics: list[str], partitions: int) -> None:
    """The changelog topics as a broker that lost them has them: deleted, then new and empty."""
    admin = KafkaAdminClient(bootstrap_servers=broker)
    try:
        admin.delete_topics(topics)
        deadline = time.monotonic() + 60
        while set(topics) & set(admin.list_topics()):
            assert time.monotonic() < deadline, "changelog topics not deleted"
            time.sleep(0.2)
        new = [NewTopic(t, partitions, 1, topic_configs={"cleanup.policy": "compact"})
               for t in topics]
        while True:  # the broker may still be finishing the deletion
            try:
                admin.create_topics(new)
                return
            except Exception:
                assert time.monotonic() < deadline, "changelog topics not recreated"
                time.sleep(0.5)
    finally:
        admin.close()


def test_lost_changelogs_stop_the_worker_with_one_line_and_reset_state_recovers(
        broker: str, new_topic, tmp_path: Path) -> None:
    settings = isolated_settings(broker, new_topic, tmp_path)
    _first_run(settings, tmp_path)
    changelogs = [f"{settings.app_id}-{table}-changelog" for table in TABLES]
    _recreate_empty(broker, changelogs, settings.partitions)

    line = _refused(settings, tmp_path, "refused")
    assert "-changelog[" in line and "ends at offset 0" in line

    worker = WorkerProcess(settings, tmp_path / "reset.log", args=("--reset-state",)).start()
    try:
        said = worker.log_tail(200_000)
        assert f"--reset-state: discarded the local state in {tables_dir(settings)}" in said
        assert "are lost" in said
        _serve(settings, worker, _events(1000, 10))
        # The shoppers' earlier history went with the changelogs; what came after is served.
        state = worker.get_json("/users/u0/state/")
        assert state["n_events"] == 2, state
    finally:
        assert worker.stop() == 0, worker.log_tail()
    # The rebuilt state matches the broker again: a plain restart is not refused.
    worker = WorkerProcess(settings, tmp_path / "restarted.log").start()
    try:
        assert worker.get_json("/users/u0/state/")["n_events"] == 2
    finally:
        worker.stop()


def test_a_new_broker_is_named_and_the_demo_starts_afresh(broker: str, new_topic,
                                                           tmp_path: Path) -> None:
    settings = isolated_settings(broker, new_topic, tmp_path)
    _first_run(settings, tmp_path)
    # The same state folder against a broker whose data was reset: another cluster.
    fresh = LocalBroker(load_settings({}, kafka_port=free_port_pair()),
                        data_dir=tmp_path / "kafka")
    fresh.start(timeout_s=180)
    try:
        moved = settings.with_overrides(broker=fresh.bootstrap)
        ensure_topics(moved)
        line = _refused(moved, tmp_path, "new-cluster")
        assert "Kafka cluster" in line

        said = start_state_afresh_if_stale(moved)
        assert said is not None and "\n" not in said and "empty state" in said
        assert start_state_afresh_if_stale(moved) is None  # said once, then the state is kept
        worker = WorkerProcess(moved, tmp_path / "demo-worker.log").start()
        try:
            _serve(moved, worker, _events(0, 10))
        finally:
            worker.stop()
    finally:
        fresh.stop()
