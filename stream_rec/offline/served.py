"""Metrics of the lists a worker actually published, scored against each shopper's next event.

``stream-rec evaluate`` scores the model's ranking of the whole catalog; a shopper gets
something else: the worker's list after retrieval, trending and new items, the business rules
(purchased, delisted, shown too often without a click) and the re-ranker. This module pairs
every published list with the event that followed the one it was made for, in the same session
(the case ``evaluate`` scores for that prefix), and reports the same metrics over those pairs,
so offline and served numbers sit side by side. Pure: no Kafka here
(``stream_rec.tools.served_eval`` runs the worker and collects the lists).
"""

from __future__ import annotations

import json
from collections import Counter, deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from stream_rec.core.metrics import (
    catalog_coverage,
    distinct_categories,
    intra_list_diversity,
    relevance_metrics,
)
from stream_rec.datasets import Session
from stream_rec.offline.replay import ReplayEvent, replay_event_id


@dataclass(frozen=True)
class ServedList:
    """One published list: its items (best first), their reasons, and whether it was a
    fallback list (made without a model)."""

    items: tuple[str, ...]
    reasons: tuple[str, ...]
    fallback: bool

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> ServedList:
        """From a recommendation message (``schemas/recommendation.schema.json``)."""
        entries = message.get("items") or []
        return cls(tuple(str(e["item_id"]) for e in entries),
                   tuple(str(e.get("reason", "")) for e in entries),
                   bool(message.get("fallback")))


@dataclass(frozen=True)
class Target:
    """What the shopper did next, and whether it was already in the session before."""

    item_id: str
    repeat: bool


def next_event_targets(dataset_name: str, part: str, sessions: Iterable[Session]
                       ) -> dict[str, Target]:
    """event id -> the next event of its session, for every event but each session's last
    (the ids are those ``offline.replay.dataset_events`` gives the events it sends)."""
    targets: dict[str, Target] = {}
    for session in sessions:
        events = session.events
        seen: set[str] = set()
        for n in range(len(events) - 1):
            seen.add(events[n].item_id)
            nxt = events[n + 1].item_id
            targets[replay_event_id(dataset_name, part, session.session_id, n)] = \
                Target(nxt, nxt in seen)
    return targets


class TurnTaking:
    """The order a replay sends events in so that no list can know what came after it.

    A shopper's next event goes out only once the list for their previous one is back, as on
    a storefront, where the shopper sees the list before the next click. Sent all at once,
    a shopper's next event often landed in the same batch as the one before it and was
    taken in (trending counts, what the stream teaches about new items) before that earlier
    list was made: the list knew its own target. At most ``in_flight`` shoppers take turns
    at a time, admitted in the order of their first event, so the replay stays close to
    time order."""

    def __init__(self, events: Sequence[ReplayEvent], in_flight: int) -> None:
        if in_flight < 1:
            raise ValueError(f"in_flight must be at least 1, got {in_flight}")
        self.queues: dict[bytes, deque[tuple[str, ReplayEvent]]] = {}
        for event in events:  # time order kept within each shopper
            event_id = str(json.loads(event.value)["event_id"])
            self.queues.setdefault(event.key, deque()).append((event_id, event))
        self.admission = deque(self.queues)  # shoppers by their first event
        self.in_flight = in_flight
        self.waiting: dict[str, bytes] = {}  # event id sent -> its shopper
        self._ready: list[ReplayEvent] = []
        self._admit()

    def ready(self) -> list[ReplayEvent]:
        """The events to send now (each returned once)."""
        out, self._ready = self._ready, []
        return out

    def answered(self, event_id: str) -> None:
        """The list for ``event_id`` is back: that shopper's next event may go."""
        shopper = self.waiting.pop(event_id, None)
        if shopper is None:
            return  # not one of ours, or a repeat
        if self.queues[shopper]:
            self._send_next(shopper)
        else:
            del self.queues[shopper]
            self._admit()

    @property
    def done(self) -> bool:
        """Every event sent and answered."""
        return not self.waiting and not self.queues

    def _admit(self) -> None:
        while self.admission and len(self.waiting) < self.in_flight:
            self._send_next(self.admission.popleft())

    def _send_next(self, shopper: bytes) -> None:
        event_id, event = self.queues[shopper].popleft()
        self.waiting[event_id] = shopper
        self._ready.append(event)


def served_metrics(lists: Mapping[str, ServedList], targets: Mapping[str, Target],
                   universe: list[str], trained: Collection[str],
                   categories: Mapping[str, str] | None = None, k: int = 20
                   ) -> dict[str, Any]:
    """The ``evaluate`` metrics over every case that got a list, plus what only the served
    path has: fallback share, cases without a list, where the hits came from.

    ``universe`` is the catalog ``evaluate`` ranks (its size is the coverage's denominator);
    ``trained`` the model's item vocabulary (a target outside it is a cold target);
    ``categories`` item -> category for ILD@K and categories@K.
    """
    cases = [event_id for event_id in targets if event_id in lists]
    position = {item: n for n, item in enumerate(universe)}
    extra: dict[str, int] = {}  # listed items the universe lacks (e.g. catalog-only ones)

    def pos(item: str) -> int:
        found = position.get(item)
        if found is None:
            found = extra.setdefault(item, len(universe) + len(extra))
        return found

    grid = np.full((len(cases), k), -1, dtype=np.int64)
    for row, event_id in enumerate(cases):
        items = lists[event_id].items[:k]
        grid[row, : len(items)] = [pos(i) for i in items]
    wanted = np.fromiter((position.get(targets[e].item_id, -1) for e in cases),
                         dtype=np.int64, count=len(cases))
    out: dict[str, Any] = {"n_cases": len(cases), "cases_without_list": len(targets) - len(cases)}
    out.update(_rounded(relevance_metrics(grid, wanted, k)))
    out[f"catalog_coverage@{k}"] = round(catalog_coverage(grid, len(universe)), 4)
    if categories is not None:
        codes: dict[str, int] = {}
        by_pos = {p: codes.setdefault(categories[i], len(codes))
                  for i, p in (*position.items(), *extra.items()) if i in categories}
        cats = np.vectorize(lambda p: by_pos.get(int(p), -1), otypes=[np.int64])(grid) \
            if grid.size else grid
        out[f"ILD@{k}"] = round(intra_list_diversity(cats), 4)
        out[f"categories@{k}"] = round(distinct_categories(cats), 4)
    out["fallback_share"] = round(
        sum(lists[e].fallback for e in cases) / len(cases), 4) if cases else 0.0
    cold = np.fromiter((targets[e].item_id not in trained for e in cases), dtype=bool,
                       count=len(cases))
    repeat = np.fromiter((targets[e].repeat for e in cases), dtype=bool, count=len(cases))
    for name, only in (("cold_targets", cold), ("repeat_targets", repeat),
                       ("new_targets", ~repeat)):
        if only.any():
            out[name] = {"n_cases": int(only.sum()),
                         **_rounded(relevance_metrics(grid[only], wanted[only], k))}
    out["hits_by_reason"] = _hits_by_reason(lists, targets, cases, k)
    return out


def _hits_by_reason(lists: Mapping[str, ServedList], targets: Mapping[str, Target],
                    cases: list[str], k: int) -> dict[str, dict[str, float]]:
    """Per reason: its share of the list slots and of the hits (in %): whether trending or
    new items earn their places, or take them from better candidates."""
    slots: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    for event_id in cases:
        served = lists[event_id]
        slots.update(served.reasons[:k])
        target = targets[event_id].item_id
        for item, reason in zip(served.items[:k], served.reasons[:k], strict=False):
            if item == target:
                hits[reason] += 1
                break
    total_slots, total_hits = sum(slots.values()), sum(hits.values())
    return {reason: {"share_of_slots": round(100.0 * n / total_slots, 2),
                     "share_of_hits": round(100.0 * hits[reason] / total_hits, 2)
                     if total_hits else 0.0}
            for reason, n in slots.most_common()}


def _rounded(metrics: Mapping[str, float]) -> dict[str, float]:
    return {name: round(value, 4) for name, value in metrics.items()}
