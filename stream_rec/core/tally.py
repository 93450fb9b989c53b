"""A shopper's own figures in each experiment arm, kept in their state.

The experiment report needs more than totals: one shopper's events are not independent, so
its tests work on per-shopper figures (``stream_rec/core/stats.py``). Each shopper's state
keeps, for the last few arms they were in, how many lists, impressions, clicks, add-to-carts,
purchases and how much revenue and diversity they got. Because the tally lives in the state
record, it is written atomically with the state it follows: a crash, a replay or a rebalance
can neither lose nor double-count it, and the report adds up the latest state of every
shopper (the ``user-state`` changelog).

A forgotten or expired shopper takes their tally with them (docs/operations.md says so).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from stream_rec.core.state import UserState

TALLY_FIGURES: tuple[str, ...] = (
    "lists",  # lists sent in the arm
    "impressions",
    "impressed_items",
    "clicks",  # attributed views and clicks
    "add_to_carts",
    "purchases",
    "revenue",  # price x quantity of attributed purchases with a price
    "ild_sum",  # ILD of impressed lists, summed over those with a countable pair
    "ild_lists",
    "categories_sum",  # distinct categories of impressed lists, summed over impressions
)
FIGURE_INDEX = {name: k for k, name in enumerate(TALLY_FIGURES)}
TALLIES_KEPT = 4  # arms per shopper: a bandit's re-weighting may move a shopper now and then


def arm_key(group: str) -> str | None:
    """``experiment|arm`` of a list group (``core/attribution.group_key``), None outside
    experiments."""
    parts = group.split("|")
    if len(parts) != 4 or not parts[2]:
        return None
    return f"{parts[2]}|{parts[3]}"


def add_to_tally(state: UserState, group: str, amounts: dict[str, float]) -> UserState:
    """The state with ``amounts`` added to the shopper's tally in the group's arm (unchanged
    when the group is in no experiment)."""
    key = arm_key(group)
    if key is None or not amounts:
        return state
    kept = dict(state.tallies)
    figures = _full(kept.pop(key, ()))
    for name, amount in amounts.items():
        figures[FIGURE_INDEX[name]] += amount
    kept[key] = tuple(figures)  # re-inserted: the arm used last is kept longest
    return state.evolve(tallies=tuple(kept.items())[-TALLIES_KEPT:])


def tally_of(state: UserState, experiment: str, arm: str) -> dict[str, float] | None:
    """The shopper's figures in one arm, or None when they were never in it."""
    for key, figures in state.tallies:
        if key == f"{experiment}|{arm}":
            return dict(zip(TALLY_FIGURES, _full(figures), strict=True))
    return None


def _full(figures: Sequence[float]) -> list[float]:
    """One number per figure (a record written by another version may have fewer)."""
    width = len(TALLY_FIGURES)
    return (list(figures) + [0.0] * width)[:width]


def list_diversity(categories: Sequence[str | None]) -> tuple[float | None, int]:
    """(ILD, distinct categories) of one displayed list: the share of item pairs whose
    categories differ (pairs with an unknown side left out; None without a countable pair),
    and how many known categories it holds. The same definitions as the offline
    ``ILD@K`` and ``categories@K`` (``core/metrics.py``)."""
    known = [c for c in categories if c is not None]
    n = len(known)
    pairs = n * (n - 1) // 2
    counts: dict[str, int] = {}
    for category in known:
        counts[category] = counts.get(category, 0) + 1
    if not pairs:
        return None, len(counts)
    same = sum(c * (c - 1) // 2 for c in counts.values())
    return (pairs - same) / pairs, len(counts)


def tallies_in(raw: bytes, experiment_id: str) -> list[dict[str, Any]] | None:
    """The shopper's tallies in an experiment's arms, from stored state bytes (the
    ``user-state`` changelog): ``{"arm": name, figure: amount, ...}`` per arm; None when they
    have none (or the record is unreadable: a report must not stop at one bad record)."""
    try:
        doc = orjson.loads(raw)
        entries = doc.get("x", ()) if isinstance(doc, dict) else ()
        out = []
        for key, figures in entries:
            experiment, _, arm = str(key).partition("|")
            if experiment == experiment_id:
                out.append({"arm": arm, **dict(zip(TALLY_FIGURES, _full(
                    [float(f) for f in figures]), strict=True))})
    except (ValueError, TypeError, orjson.JSONDecodeError):
        return None
    return out or None
