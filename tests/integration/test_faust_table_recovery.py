"""A Faust worker with a RocksDB table recovers the table from its changelog after a restart."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

from tests.helpers import free_port

pytestmark = pytest.mark.integration
HERE = Path(__file__).resolve().parent


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "faust", "-A", "counter_app", "worker", "-l", "info"],
            cwd=HERE, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop_worker(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _read_counts(consumer: KafkaConsumer, n: int, proc: subprocess.Popen[bytes],
                 log: Path, timeout_s: float = 120) -> list[dict[str, int]]:
    out: list[dict[str, int]] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        for records in consumer.poll(timeout_ms=500).values():
            out.extend(json.loads(r.value) for r in records)
    assert len(out) == n, f"got {len(out)} of {n}; worker log:\n{log.read_text()[-3000:]}"
    return out


def test_table_survives_restart_from_changelog(broker: str, new_topic, tmp_path: Path) -> None:
    source, sink = new_topic("counter-in"), new_topic("counter-out")
    state_dir = tmp_path / "state"
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
           "STREAM_REC_BROKER": broker, "STREAM_REC_APP_ID": new_topic("counter-app"),
           "STREAM_REC_STATE_DIR": str(state_dir), "STREAM_REC_PARTITIONS": "2",
           "STREAM_REC_WEB_PORT": str(free_port()), "COUNTER_IN": source, "COUNTER_OUT": sink}
    log = tmp_path / "worker.log"
    admin = KafkaAdminClient(bootstrap_servers=broker)
    admin.create_topics([NewTopic(source, 2, 1)])  # the table's partitions follow its source
    admin.close()
    producer = KafkaProducer(bootstrap_servers=broker)
    consumer = KafkaConsumer(sink, bootstrap_servers=broker, auto_offset_reset="earliest",
                             group_id=sink + ".reader")

    def send(keys: list[str]) -> None:
        for key in keys:
            producer.send(source, key=key.encode(), value=json.dumps("x").encode())
        producer.flush()

    worker = _start_worker(env, log)
    try:
        send(["alice"] * 5 + ["bob"] * 3)
        first = _read_counts(consumer, 8, worker, log)
    finally:
        _stop_worker(worker)
    assert max(c["count"] for c in first if c["key"] == "alice") == 5
    assert max(c["count"] for c in first if c["key"] == "bob") == 3

    # Lose the local RocksDB files: the table must come back from its Kafka changelog.
    shutil.rmtree(state_dir)
    worker = _start_worker(env, log)
    try:
        send(["alice", "bob", "carol"])
        second = _read_counts(consumer, 3, worker, log)
    finally:
        _stop_worker(worker)
    assert {c["key"]: c["count"] for c in second} == {"alice": 6, "bob": 4, "carol": 1}
    assert any(state_dir.rglob("*.sst")) or any(state_dir.rglob("CURRENT")), \
        "the table was not stored in RocksDB"
    consumer.close()
    producer.close()
