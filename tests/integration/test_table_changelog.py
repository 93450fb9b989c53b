"""The worker's RocksDB tables and their changelogs agree, partition by partition.

The worker writes its tables a batch at a time beneath Faust's table API
(``stream_rec.worker.table_io``); Faust's recovery relies on what its own writes guarantee:
each partition's local data is its changelog partition played in order, and the offset kept in
each RocksDB partition is that of the last changelog record it holds.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import cast

import pytest
from kafka import KafkaConsumer, TopicPartition
from rocksdict import AccessType, Options, Rdict

from stream_rec.tools.worker_process import WorkerProcess, http_status
from stream_rec.worker.state_folder import OFFSET_KEY, tables_dir
from stream_rec.worker.state_guard import WORKER_TABLES, TablePartition, table_partitions
from tests.integration.worker_fixtures import (
    TopicReader,
    event_bytes,
    isolated_settings,
    produce,
)

pytestmark = pytest.mark.integration

USERS = [f"shopper-{n}" for n in range(12)]
FORGOTTEN = USERS[:2]


def _changelog(broker: str, topic: str, partitions: int
               ) -> tuple[dict[int, dict[bytes, bytes | None]], dict[int, int]]:
    """Per partition: each key's last value (None: a tombstone) and the last record's offset."""
    consumer = KafkaConsumer(bootstrap_servers=broker, group_id=None,
                             enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        values: dict[int, dict[bytes, bytes | None]] = {p: {} for p in range(partitions)}
        last: dict[int, int] = {}
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for tp, records in consumer.poll(timeout_ms=1000).items():
                for record in records:
                    values[tp.partition][record.key] = record.value
                    last[tp.partition] = record.offset
        return values, last
    finally:
        consumer.close()


def _local(folder: Path) -> tuple[dict[bytes, bytes], int | None]:
    """A stopped worker's RocksDB partition: its records and its kept changelog offset."""
    db = Rdict(str(folder), options=Options(raw_mode=True),
               access_type=AccessType.read_only())
    try:
        # raw_mode: keys and values come back as the bytes stored
        records = {cast(bytes, k): cast(bytes, v) for k, v in db.items()}
    finally:
        db.close()
    offset = records.pop(OFFSET_KEY, None)
    return records, None if offset is None else int(offset)


def test_tables_equal_their_changelogs_after_a_run(broker: str, new_topic, tmp_path: Path
                                                   ) -> None:
    settings = isolated_settings(broker, new_topic, tmp_path, partitions=3)
    produce(broker, settings.items_topic,
            [(f"i{n}".encode(), b'{"category": "c"}') for n in range(5)])
    events = [event_bytes({"event_id": f"{u}-{n}", "user_id": u, "item_id": f"i{n}",
                           "type": "view", "ts": 1_700_000_000_000 + n})
              for n in range(4) for u in USERS]
    recs = TopicReader(broker, settings.recommendations_topic)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        produce(broker, settings.events_topic, events)
        recs.wait_for(lambda v: len(v) >= len(events), 120)
        produce(broker, settings.events_topic,
                [(u.encode(), json.dumps({"type": "forget_user", "user_id": u}).encode())
                 for u in FORGOTTEN])
        deadline = time.monotonic() + 60
        while any(http_status(f"{worker.base_url}/users/{u}/state/") != 404 for u in FORGOTTEN):
            assert time.monotonic() < deadline, "the forget requests were not applied"
            time.sleep(0.2)
    finally:
        worker.stop()
        recs.close()

    folders = tables_dir(settings)
    names = table_partitions(p.name for p in folders.iterdir())
    seen_users: set[bytes] = set()
    tombstoned: set[bytes] = set()
    for table in WORKER_TABLES:
        values, last = _changelog(broker, f"{settings.app_id}-{table}-changelog",
                                  settings.partitions)
        for partition in range(settings.partitions):
            live = {k: v for k, v in values[partition].items() if v is not None}
            local, offset = _local(folders / names[TablePartition(table, partition)])
            assert local == live, (table, partition)
            assert offset == last.get(partition), (table, partition)
            if table == "user-state":
                seen_users |= set(local)
                tombstoned |= {k for k, v in values[partition].items() if v is None}
    assert seen_users == {u.encode() for u in USERS if u not in FORGOTTEN}
    # Forgotten shoppers end in a tombstone on the changelog, not merely absent.
    assert tombstoned == {u.encode() for u in FORGOTTEN}
