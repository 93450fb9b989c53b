"""Trending items: event counts that decay with a half-life, ranked without rescans.

Every count decays at the same rate, so ranking by ``sum(2 ** (ts / half_life))`` over an item's
events is the same as ranking by the decayed counts at any moment. Scores are kept relative to
a reference time that moves forward (and rescales all scores) before they could overflow.

The ranking is kept up to date incrementally: scores only ever grow (relative to each other),
so an item that was outside the top list and has not been touched since cannot have passed
anything in it. Re-ranking the last top list together with the items touched since is exact,
and costs the number of events since the last call instead of a scan of the whole catalog.
A few items touched since (a small batch) are moved within the kept list one at a time, by
bisection, instead of ranking the whole list again: ~10 us against ~150 us a call for the 256
kept items.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, insort
from collections.abc import Iterable
from dataclasses import dataclass, field

from stream_rec.core.state import TYPE_WEIGHT

_REBASE_AFTER = 512.0  # in half-lives: 2**512 is still far from float overflow


@dataclass
class Trending:
    """Time-decayed popularity per item; ``half_life_ms`` sets how fast the past fades."""

    half_life_ms: float = 3_600_000.0
    max_items: int = 100_000
    _scores: dict[str, float] = field(default_factory=dict)
    _ref_ms: float | None = None
    # The kept top list as (raw score, item), ascending (the best last), and each kept item's
    # score as it stands in that list.
    _top: list[tuple[float, str]] | None = None
    _kept: dict[str, float] = field(default_factory=dict)
    _top_size: int = 256
    _touched: set[str] = field(default_factory=set)

    def add(self, item_id: str, ts_ms: int, type_code: int = 0) -> None:
        if self._ref_ms is None:
            self._ref_ms = float(ts_ms)
        exponent = (ts_ms - self._ref_ms) / self.half_life_ms
        if exponent > _REBASE_AFTER:
            self._rebase(float(ts_ms))
            exponent = 0.0
        gain = TYPE_WEIGHT[type_code] * math.pow(2.0, max(exponent, -1000.0))
        self._scores[item_id] = self._scores.get(item_id, 0.0) + gain
        self._touched.add(item_id)
        if len(self._scores) > 2 * self.max_items:
            self._scores = dict(heapq.nlargest(self.max_items, self._scores.items(),
                                               key=lambda kv: kv[1]))
            self._top = None

    def top(self, n: int) -> list[tuple[str, float]]:
        """The n most popular items now, with scores scaled so the first is 1.0."""
        scores = self._scores
        if self._top is None or n > self._top_size:
            self._top_size = max(n, self._top_size)
            self._rank(scores)
        elif len(self._touched) * 8 <= self._top_size:
            self._move_touched()
        elif self._touched:
            self._rank(self._touched.union(self._kept))
        top = self._top
        assert top is not None
        peak = top[-1][0] if top else 1.0
        return [(item, score / peak) for score, item in reversed(top[-n:])] if n else []

    def _rank(self, pool: Iterable[str]) -> None:
        """The kept list from the best of ``pool`` (all items, or the kept and touched)."""
        scores = self._scores
        best = heapq.nlargest(self._top_size, ((scores[i], i) for i in pool))
        self._top = best[::-1]
        self._kept = {item: score for score, item in best}
        self._touched = set()

    def _move_touched(self) -> None:
        """Each touched item out of the kept list and back in at its new score, if it still
        ranks among the best ``_top_size`` (scores only grow, so no untouched item can)."""
        top, kept, scores = self._top, self._kept, self._scores
        assert top is not None
        for item in self._touched:
            old = kept.pop(item, None)
            if old is not None:
                del top[bisect_left(top, (old, item))]
            entry = (scores[item], item)
            if len(top) < self._top_size or entry > top[0]:
                insort(top, entry)
                kept[item] = entry[0]
                if len(top) > self._top_size:
                    del kept[top.pop(0)[1]]
        self._touched = set()

    def __len__(self) -> int:
        return len(self._scores)

    def _rebase(self, new_ref_ms: float) -> None:
        assert self._ref_ms is not None
        factor = math.pow(2.0, -(new_ref_ms - self._ref_ms) / self.half_life_ms)
        self._scores = {k: v * factor for k, v in self._scores.items() if v * factor > 1e-300}
        self._ref_ms = new_ref_ms
        self._top = None  # its raw scores are on the old scale
