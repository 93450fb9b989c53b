"""Replay a dataset into Kafka as a storefront would send it (also how a shop back-fills).

Events go out in time order, keyed by user_id, with deterministic event ids (so replaying
twice is idempotent for the worker's de-duplication); item attributes go to the compacted
catalog topic first. Session formats without shoppers get one synthetic shopper per session.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from stream_rec.datasets import Dataset, Session


@dataclass(frozen=True)
class ReplayEvent:
    """One storefront event ready to send: its key (the user_id), JSON value and event time."""

    key: bytes
    value: bytes
    ts_ms: int


def dataset_events(dataset: Dataset, split: str = "all") -> list[ReplayEvent]:
    """The dataset's interactions as contract events, oldest first."""
    if split not in {"train", "test", "all"}:
        raise ValueError(f"split must be train, test or all, not {split!r}")
    parts: list[tuple[str, tuple[Session, ...]]] = []
    if split in {"train", "all"}:
        parts.append(("train", dataset.train))
    if split in {"test", "all"}:
        parts.append(("test", dataset.test))
    out: list[ReplayEvent] = []
    for part, sessions in parts:
        for session in sessions:
            for n, it in enumerate(session.events):
                event: dict[str, Any] = {
                    "event_id": replay_event_id(dataset.name, part, session.session_id, n),
                    "user_id": it.user_id, "item_id": it.item_id, "type": it.event_type,
                    "ts": it.ts_ms, "session_id": session.session_id}
                out.append(ReplayEvent(it.user_id.encode(), json.dumps(event).encode(),
                                       it.ts_ms))
    out.sort(key=lambda e: e.ts_ms)  # stable: within a session the order is kept
    return out


def replay_event_id(dataset_name: str, part: str, session_id: str, n: int) -> str:
    """The event id of a dataset's ``n``-th event of a session of the ``part`` split."""
    return f"{dataset_name}:{part}:{session_id}:{n}"


def catalog_messages(dataset: Dataset) -> Iterator[tuple[bytes, bytes]]:
    """The catalog topic's messages for a dataset's items, every one in stock."""
    for item_id, attributes in dataset.items.items():
        yield item_id.encode(), catalog_entry(attributes)


def catalog_entry(attributes: Mapping[str, str]) -> bytes:
    """A catalog message value from a dataset's (text) attributes: in stock, and a numeric
    ``price`` column sent as a number, as the contract says (one that is not a number, or
    not a usable one, is left out)."""
    entry: dict[str, Any] = {**attributes, "in_stock": True}
    if "price" in entry:
        try:
            price = float(entry["price"])
        except (TypeError, ValueError):
            price = -1.0
        if math.isfinite(price) and price >= 0:
            entry["price"] = price
        else:
            del entry["price"]
    return json.dumps(entry).encode()


class RateLimiter:
    """Spaces sends to ``rate`` per second on average (None or 0 = as fast as possible)."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.next_at = time.monotonic()

    def wait(self) -> None:
        if not self.interval:
            return
        self.next_at += self.interval
        delay = self.next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
