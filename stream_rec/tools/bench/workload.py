"""The events a benchmark sends: real shopping sessions, many shoppers active at once.

Datasets list sessions one after another; a live storefront interleaves them. A
``ShopperStream`` keeps ``concurrency`` sessions open and draws each next event from a random
open one (seeded, so every run and every measured target gets the same sequence), which spreads
users over partitions the way real traffic does. When the sessions run out they start again
as new shoppers, so a long soak never repeats a (user, event) pair.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

from stream_rec.config import Settings
from stream_rec.datasets import Dataset, load_dataset
from stream_rec.offline.replay import catalog_entry

DEFAULT_DATA = "sessions:../shared/data/diginetica"  # 43,097 items, the size the targets name


@dataclass(frozen=True)
class BenchEvent:
    """One contract event ready to send: Kafka key (user id) and JSON value."""

    event_id: str
    key: bytes
    value: bytes


@dataclass(frozen=True)
class ShopperSession:
    """One shopper's session as the benchmark replays it: (item, event type) steps."""

    user_id: str
    session_id: str
    actions: tuple[tuple[str, str], ...]  # (item_id, contract event type), oldest first


@dataclass(frozen=True)
class Workload:
    """Sessions to replay and the catalog they come from (every item id they mention)."""

    name: str
    sessions: tuple[ShopperSession, ...]
    catalog: tuple[str, ...]
    attributes: dict[str, dict[str, str]]


def workload_from_dataset(dataset: Dataset) -> Workload:
    """A benchmark workload from a dataset: all its sessions and every item they name."""
    sessions = tuple(
        ShopperSession(s.user_id, s.session_id, tuple((e.item_id, e.event_type) for e in s.events))
        for s in (*dataset.train, *dataset.test) if s.events)
    catalog = dict.fromkeys(dataset.items)
    for session in sessions:
        catalog.update(dict.fromkeys(item for item, _ in session.actions))
    return Workload(dataset.name, sessions, tuple(catalog), dict(dataset.items))


def load_workload(spec: str, settings: Settings) -> Workload:
    """Read a dataset (``sessions:PATH`` etc., as ``stream-rec replay --data`` takes)."""
    return workload_from_dataset(load_dataset(spec, settings))


def catalog_messages(workload: Workload) -> Iterator[tuple[bytes, bytes]]:
    """The catalog topic's messages: every item in stock, with its attributes if known."""
    for item_id in workload.catalog:
        yield item_id.encode(), catalog_entry(workload.attributes.get(item_id, {}))


class ShopperStream:
    """An endless, reproducible stream of events from ``concurrency`` interleaved sessions."""

    def __init__(self, workload: Workload, run_id: str, concurrency: int = 1000,
                 seed: int = 0, start_ms: int | None = None) -> None:
        if not workload.sessions:
            raise ValueError(f"dataset {workload.name!r} has no sessions to replay")
        self.workload, self.run_id = workload, run_id
        self.rng = random.Random(seed)
        self.ts_ms = start_ms if start_ms is not None else int(time.time() * 1000)
        self._next_session = 0
        self._open: list[tuple[ShopperSession, int, int]] = []  # session, next action, cycle
        for _ in range(max(1, concurrency)):
            self._open.append(self._new_session())
        self.emitted = 0

    def _new_session(self) -> tuple[ShopperSession, int, int]:
        sessions = self.workload.sessions
        n = self._next_session
        self._next_session += 1
        return sessions[n % len(sessions)], 0, n // len(sessions)

    def take(self, n: int, phase: str) -> list[BenchEvent]:
        """The next ``n`` events; ids are ``<run>:<phase>:<n>`` (n counts the whole stream, so
        ids stay unique however often a phase name is used)."""
        out: list[BenchEvent] = []
        for k in range(n):
            slot = self.rng.randrange(len(self._open))
            session, position, cycle = self._open[slot]
            item_id, event_type = session.actions[position]
            # Sessions replayed again are new shoppers: their state starts empty.
            user = session.user_id if cycle == 0 else f"{session.user_id}~{cycle}"
            event_id = f"{self.run_id}:{phase}:{self.emitted + k}"
            self.ts_ms += 1
            value = json.dumps({"event_id": event_id, "user_id": user, "item_id": item_id,
                                "type": event_type, "ts": self.ts_ms,
                                "session_id": f"{session.session_id}~{cycle}"}).encode()
            out.append(BenchEvent(event_id, user.encode(), value))
            if position + 1 < len(session.actions):
                self._open[slot] = (session, position + 1, cycle)
            else:
                self._open[slot] = self._new_session()
        self.emitted += n
        return out
