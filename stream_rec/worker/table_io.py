"""Table reads and writes for whole batches, beneath Faust's per-key table API.

For every key it sets, Faust's table API encodes key and value, looks up the current event,
updates an LRU key index, queues a changelog message through its producer buffer and topic
machinery, and on delivery writes the partition's changelog offset into RocksDB again: one
more RocksDB put and two more futures per key. The worker's tables hold raw bytes and a batch
writes each shopper once, so ``TableWriter`` does the same work once a batch instead:

- each partition's entries go into RocksDB as one write batch;
- each entry's changelog record goes straight to the producer, with the bytes, key and
  partition Faust would have sent (the tables are raw bytes both ways);
- each partition's changelog offset is kept once a batch, from its last record's delivery.

What Faust's recovery relies on is kept:

- RocksDB is written before the changelog records are sent, and the persisted offset only
  after the broker holds the record it names, so a restarted worker replays the changelog
  from an offset its local data already covers (replaying more is harmless: the records are
  whole values);
- the changelog has every change in the order RocksDB saw it: every writer of these tables
  (the batches and the expiry sweep) goes through one lock here;
- Faust flushes this producer before it commits event offsets, so a batch's changelog records
  are on the broker before its events count as processed; a record the broker refuses stops
  the worker before that commit (``on_delivery``), as a refused list does.

Reads go to the RocksDB partition of the event's own partition, as Faust's read does. With
``processing_guarantee=exactly_once`` the writes go through Faust's table API, whose
transactional producer must carry the changelog.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, cast

import rocksdict
from faust.types import TP

from stream_rec.worker.faust_compat import acting_for

# (partition, key, value): None deletes the key (a tombstone on the changelog).
Change = tuple[int, bytes, bytes | None]


class _Message:
    __slots__ = ("topic", "partition")

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition


class PartitionEvent:
    """Stands in for Faust's current event where a table change has no message of its own:
    Faust reads the partition from it (for the store and the changelog) and checks that the
    source topic has as many partitions as the table."""

    __slots__ = ("message", "__weakref__")

    def __init__(self, topic: str, partition: int) -> None:
        self.message = _Message(topic, partition)


def read(table: Any, partition: int, key: bytes) -> bytes | None:
    """``key``'s value in ``table``'s RocksDB partition ``partition`` (None when absent)."""
    return cast(bytes | None, table.data._db_for_partition(partition).get(key))


class TableWriter:
    """Writes batches of changes to RocksDB-backed, raw-bytes Faust tables and their changelogs.

    ``on_delivery`` runs for every changelog record's delivery (failed or not); it decides what
    a lost record means (the worker exits). ``source_topic`` is the topic the tables are
    co-partitioned with, whose partition count Faust checks against each changelog's.
    """

    def __init__(self, app: Any, source_topic: str,
                 on_delivery: Callable[[asyncio.Future[Any]], None]) -> None:
        self.app = app
        self.source_topic = source_topic
        self.on_delivery = on_delivery
        self._lock = asyncio.Lock()

    async def write(self, changes: Sequence[tuple[Any, Sequence[Change]]]) -> None:
        """Apply ``changes`` (per table, in order) to RocksDB, then send their changelog
        records; returns once every record is handed to the producer."""
        async with self._lock:
            if self.app.in_transaction:
                self._through_faust(changes)
                return
            for table, rows in changes:
                table._verify_source_topic_partitions(self.source_topic)
                _store(table, rows)
            producer = self.app.producer
            for table, rows in changes:
                topic = table.changelog_topic_name
                last: dict[int, asyncio.Future[Any]] = {}
                for partition, key, value in rows:
                    delivery = cast(asyncio.Future[Any], await producer.send(
                        topic, key, value, partition, None, None))
                    delivery.add_done_callback(self.on_delivery)
                    last[partition] = delivery
                for partition, delivery in last.items():
                    delivery.add_done_callback(partial(_persist, table.data, TP(topic, partition)))

    def _through_faust(self, changes: Sequence[tuple[Any, Sequence[Change]]]) -> None:
        for table, rows in changes:
            for partition, key, value in rows:
                with acting_for(PartitionEvent(self.source_topic, partition)):
                    if value is None:
                        table.pop(key, None)
                    else:
                        table[key] = value


def _store(table: Any, rows: Sequence[Change]) -> None:
    """``rows`` into ``table``'s RocksDB partitions, one write batch per partition."""
    batches: dict[int, rocksdict.WriteBatch] = {}
    for partition, key, value in rows:
        batch = batches.get(partition)
        if batch is None:
            batch = batches[partition] = rocksdict.WriteBatch(raw_mode=True)
        if value is None:
            batch.delete(key)
        else:
            batch.put(key, value)
    for partition, batch in batches.items():
        table.data._db_for_partition(partition).write(batch)


def _persist(store: Any, tp: TP, delivery: asyncio.Future[Any]) -> None:
    """Keep the changelog offset of a delivered record in its RocksDB partition (what Faust's
    ``_on_changelog_sent`` does for every record), unless the partition was handed away
    meanwhile: opening it again would hold its lock, and a lower offset only means a longer
    replay."""
    if delivery.cancelled() or delivery.exception() is not None:
        return
    if tp.partition in getattr(store, "_dbs", {}):
        store.set_persisted_offset(tp, delivery.result().offset)
