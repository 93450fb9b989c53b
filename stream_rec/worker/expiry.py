"""Expiring shoppers who have been inactive for longer than ``state_expiry_days``.

A shop whose anonymous visitors get fresh ids would otherwise grow ``user-state`` and
``latest-recs`` forever. A sweep walks this worker's active partitions of ``user-state`` fifty
records at a time (a cursor per partition, resumed where the last step stopped), reading only
each record's activity time, so no step holds up a batch for long; each expired shopper is
deleted like a forget request, with tombstones on both changelogs. A record that cannot be
read is left alone (its shopper's next event replaces it), unless its activity time alone
can be read and is past the period: then it goes like any other.

Deletion runs on the event loop between batches. If a shopper comes back while their batch is
being scored, the batch's write puts their state back: activity wins over expiry.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

from stream_rec.core.state import past_expiry
from stream_rec.core.state_codec import StateDecodeError, stored_activity_ms

log = logging.getLogger(__name__)

# Records looked at per sweep step, and how often a step runs: 500 a second, so a million
# shoppers per worker are gone through in about half an hour, far inside any sensible expiry
# period. Small steps often, because a step runs on the event loop: 500 at once, each decoded
# in full (~12 us for a 1 KB state, ~40 us at every limit), held it for 6-20 ms each second,
# and the events that arrived meanwhile waited that long. A step now reads only each
# record's activity time (``stored_activity_ms``).
RECORDS_PER_STEP = 50
SWEEP_INTERVAL_S = 0.1
FAUST_OFFSET_KEY = b"__faust\0offset__"  # Faust keeps each partition's changelog offset here


class PartitionDB(Protocol):
    """What the sweep reads of one RocksDB partition of a table: its records in key order."""

    def items(self, backwards: bool = ..., from_key: Any = ..., read_opt: Any = ...
              ) -> Iterable[tuple[bytes, bytes]]: ...


class Sweeper:
    """Remembers where each partition's sweep stands."""

    def __init__(self, keep_ms: float, records_per_step: int = RECORDS_PER_STEP) -> None:
        self.keep_ms = keep_ms
        self.records_per_step = records_per_step
        self._cursor: dict[int, bytes | None] = {}  # partition -> next key to look at
        self._resume = 0  # the partition the next step starts with

    def step(self, dbs: Mapping[int, PartitionDB], now_ms: float) -> list[tuple[int, bytes]]:
        """(partition, key) of the expired shoppers among the next records of ``dbs``."""
        if self.keep_ms <= 0 or not dbs:
            return []
        for gone in set(self._cursor) - set(dbs):  # partitions handed to another worker
            del self._cursor[gone]
        budget = self.records_per_step
        expired: list[tuple[int, bytes]] = []
        # Round robin: start where the last step ran out of budget.
        partitions = sorted(dbs)
        start = next((i for i, p in enumerate(partitions) if p >= self._resume), 0)
        order = partitions[start:] + partitions[:start]
        self._resume = order[0]
        for partition in order:
            if budget <= 0:
                self._resume = partition
                break
            looked, done = 0, True
            for key, value in self._records(dbs[partition], self._cursor.get(partition)):
                if looked == budget:  # resume here next step
                    self._cursor[partition] = key
                    done = False
                    break
                looked += 1
                if self._expired(key, value, now_ms):
                    expired.append((partition, key))
            budget -= looked
            if not done:
                self._resume = partition
                break
            self._cursor[partition] = None  # a full pass over it: the next one starts afresh
        return expired

    @staticmethod
    def _records(db: PartitionDB, start: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        items = db.items() if start is None else db.items(from_key=start)
        for key, value in items:
            if key != FAUST_OFFSET_KEY:
                yield key, value

    def _expired(self, key: bytes, value: bytes, now_ms: float) -> bool:
        try:
            return past_expiry(stored_activity_ms(value), now_ms, self.keep_ms)
        except StateDecodeError:
            return False  # left alone: the shopper's next event replaces it (and says so)


def active_partition_dbs(table: Any) -> dict[int, PartitionDB]:
    """This worker's active partitions of a RocksDB-backed Faust table (standbys excluded:
    their owner expires them, and the changelog carries the tombstones to them)."""
    store = table.data
    actives = table.app.assignor.assigned_actives()
    topic = table.changelog_topic_name
    return {partition: db for partition, db in getattr(store, "_dbs", {}).items()
            if any(tp.topic == topic and tp.partition == partition for tp in actives)}
