"""`stream-rec bench --state-users U`: bytes of user state per shopper and on disk.

Shoppers are made by the worker's own transitions (``apply_event``, ``record_shown``,
``update_profile``) over real sessions of the workload: each shopper comes back for
1 + Geometric(0.3) sessions (3.3 on average), sees a 20-item list after every event, and has a
profile vector of the model's width. Diginetica logs only clicks, so 5% of events become add-
to-carts and 2% purchases (common e-commerce funnel rates), and items without a category get a
stable made-up one of 1,000 (a real shop's catalog has them; without, affinities stay empty
and the state looks smaller than it is).

Building every shopper by transitions would take minutes per million, so ``templates``
distinct shoppers are built and written under ``users`` distinct keys in turn. RocksDB
compresses per block (a few KB: two or three values), so with thousands of templates no
block sees a repeat and the footprint is honest. The values go into one Rdict per partition,
opened with Faust's own ``RocksDBOptions`` (as its RocksDB store does), keyed by raw user id
and partitioned with Kafka's murmur2 like the table's changelog.
"""

from __future__ import annotations

import random
import shutil
import time
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from stream_rec.core.events import Event
from stream_rec.core.state import (
    HistoryEntry,
    StateLimits,
    UserState,
    apply_event,
    event_digest,
    record_shown,
    update_profile,
)
from stream_rec.core.state_codec import encode_state
from stream_rec.offline.progress import Progress
from stream_rec.tools.bench.workload import Workload

LIST_LENGTH = 20
WRITE_BATCH = 10_000  # keys per RocksDB write batch


@dataclass(frozen=True)
class StateSize:
    """Sizes in bytes; ``seconds`` is the wall time of the measurement."""

    users: int
    bytes_per_user: float  # mean encoded UserState (the table value)
    max_bytes_per_user: int  # a shopper at every bound of StateLimits
    rocksdb_bytes: int  # the table's folders on disk after a flush
    seconds: float

    def to_dict(self) -> dict[str, float | int]:
        return {"state_users": self.users,
                "state_bytes_per_user": round(self.bytes_per_user, 1),
                "state_max_bytes_per_user": self.max_bytes_per_user,
                "rocksdb_bytes": self.rocksdb_bytes,
                "rocksdb_bytes_per_user": round(self.rocksdb_bytes / max(self.users, 1), 1),
                "state_seconds": round(self.seconds, 1)}


def _category(workload: Workload, item_id: str) -> str:
    known = workload.attributes.get(item_id, {}).get("category")
    return known if known else f"c{zlib.crc32(item_id.encode()) % 1000}"


def _event_type(rng: random.Random, given: str) -> str:
    roll = rng.random()
    if given in {"view", "click"} and roll < 0.02:
        return "purchase"
    if given in {"view", "click"} and roll < 0.07:
        return "add_to_cart"
    return given


def simulate_shopper(workload: Workload, rng: random.Random, vectors: np.ndarray,
                     limits: StateLimits, model_version: str = "bench") -> UserState:
    """One shopper's state after a few real sessions, through the real transitions."""
    state = UserState()
    ts_ms = 1_700_000_000_000 + rng.randrange(10**9)
    n_sessions = 1
    while rng.random() > 0.3:
        n_sessions += 1
    catalog = workload.catalog
    for _ in range(n_sessions):
        session = workload.sessions[rng.randrange(len(workload.sessions))]
        for item_id, given_type in session.actions:
            ts_ms += rng.randrange(2_000, 60_000)
            kind = _event_type(rng, given_type)
            event = Event(f"e{rng.getrandbits(64):x}", "u", item_id, kind, ts_ms)
            state = apply_event(state, event, _category(workload, item_id), limits)
            vector = vectors[zlib.crc32(item_id.encode()) % len(vectors)]
            state = update_profile(state, vector, event.type_code, model_version, limits)
            shown = [catalog[rng.randrange(len(catalog))] for _ in range(LIST_LENGTH)]
            state = record_shown(state, shown, limits)
    return state


def fullest_state(workload: Workload, dim: int, limits: StateLimits) -> UserState:
    """A shopper at every bound (history, categories, purchases, shown, dedup window)."""
    items = list(workload.catalog[: max(limits.shown, limits.purchased, limits.history)])
    items += [f"item-{n}" for n in range(len(items), limits.shown)]
    # The profile through the real transition, so its stored form is whatever the core keeps.
    profiled = update_profile(UserState(), np.full(dim, 0.1), 0, "bench", limits)
    return replace(
        profiled,
        history=tuple(HistoryEntry(items[n], n % 4, 1_700_000_000_000 + n)
                      for n in range(limits.history)),
        category_affinity=tuple((f"category-{n}", 1.0 / (n + 1))
                                for n in range(limits.categories)),
        purchased=tuple(items[: limits.purchased]),
        shown_items=tuple(items[: limits.shown]), shown_counts=(3,) * limits.shown,
        seen_events=tuple(event_digest(f"event-{n}") for n in range(limits.dedup_window)),
        profile=np.full(dim, 0.1, dtype=np.float16).tobytes(),
        profile_model="bench", n_events=10**6, last_ts_ms=1_700_000_000_000)


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def write_tables(folder: Path, values: list[bytes], users: int, partitions: int) -> int:
    """Write ``users`` shoppers as Faust's RocksDB store would; return bytes on disk."""
    from faust.stores.rocksdb import RocksDBOptions
    from kafka.partitioner.default import murmur2
    from rocksdict import WriteBatch

    options = RocksDBOptions()
    dbs = [options.open(folder / f"user-state-{p}.db") for p in range(partitions)]
    progress = Progress(users, "bench: user state -> RocksDB", unit="users")
    try:
        for start in range(0, users, WRITE_BATCH):
            batches = [WriteBatch(raw_mode=True) for _ in dbs]
            for n in range(start, min(start + WRITE_BATCH, users)):
                key = f"u{n:09d}".encode()
                batches[(murmur2(key) & 0x7FFFFFFF) % partitions].put(key, values[n % len(values)])
            for db, batch in zip(dbs, batches, strict=True):
                db.write(batch)
            progress.update(min(WRITE_BATCH, users - start))
        for db in dbs:
            db.flush(True)
    finally:
        for db in dbs:
            db.close()
        progress.close()
    return _folder_bytes(folder)


def measure_state_size(workload: Workload, users: int, work_dir: Path, partitions: int = 4,
                       dim: int = 100, templates: int = 2000, seed: int = 0,
                       limits: StateLimits | None = None) -> StateSize:
    """Build shoppers, write ``users`` of them to RocksDB, measure, delete the folder."""
    started = time.monotonic()
    limits = limits or StateLimits()
    rng = random.Random(seed)
    vectors = np.random.default_rng(seed).normal(size=(4096, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    count = min(templates, users)
    progress = Progress(count, "bench: simulating shoppers", unit="shoppers")
    values = []
    for _ in range(count):
        values.append(encode_state(simulate_shopper(workload, rng, vectors, limits)))
        progress.update()
    progress.close()
    sizes = [len(v) for v in values]
    # Users cycle through the templates, so the mean over users is the weighted mean.
    full_cycles, rest = divmod(users, count)
    total = full_cycles * sum(sizes) + sum(sizes[:rest])
    folder = work_dir / "state-size"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        on_disk = write_tables(folder, values, users, partitions)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    biggest = len(encode_state(fullest_state(workload, dim, limits)))
    return StateSize(users, total / max(users, 1), biggest, on_disk,
                     time.monotonic() - started)
