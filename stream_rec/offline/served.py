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

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
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
from stream_rec.offline.replay import replay_event_id


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
