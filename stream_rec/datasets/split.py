"""Hold-out by time: the most recent slice of sessions becomes the test split."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace

from stream_rec.datasets.types import Dataset, Session


def split_by_time(sessions: Sequence[Session], holdout_fraction: float
                  ) -> tuple[list[Session], list[Session]]:
    """(train, test): test holds the sessions that start in the last ``holdout_fraction`` of
    events by time, so a model is always judged on what happened after what it learned from.
    """
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    ordered = sorted(sessions, key=lambda s: (s.events[0].ts_ms, s.session_id))
    stamps = sorted(e.ts_ms for s in ordered for e in s.events)
    if not stamps:
        return [], []
    cut = stamps[min(len(stamps) - 1, int(len(stamps) * (1.0 - holdout_fraction)))]
    train = [s for s in ordered if s.events[0].ts_ms < cut]
    test = [s for s in ordered if s.events[0].ts_ms >= cut]
    return train, test


def hide_items(dataset: Dataset, fraction: float, seed: int = 0) -> Dataset:
    """A copy whose training split never mentions a random ``fraction`` of the items.

    For cold-start experiments: the hidden items stay in the catalog and in the test split,
    so the test cases that target them measure how well a model ranks items it has never
    seen (through their attributes). Sessions left with no events are dropped.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    items = sorted({e.item_id for s in dataset.train for e in s.events})
    rng = random.Random(seed)
    hidden = set(rng.sample(items, int(round(fraction * len(items)))))
    train = []
    for session in dataset.train:
        events = tuple(e for e in session.events if e.item_id not in hidden)
        if events:
            train.append(replace(session, events=events))
    return replace(dataset, train=tuple(train))
