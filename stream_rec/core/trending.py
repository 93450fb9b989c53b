"""Trending items: event counts that decay with a half-life, ranked without rescans.

Every count decays at the same rate, so ranking by ``sum(2 ** (ts / half_life))`` over an item's
events is the same as ranking by the decayed counts at any moment. Scores are kept relative to
a reference time that moves forward (and rescales all scores) before they could overflow.
"""

from __future__ import annotations

import heapq
import math
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
    _top_cache: list[tuple[str, float]] | None = None

    def add(self, item_id: str, ts_ms: int, type_code: int = 0) -> None:
        if self._ref_ms is None:
            self._ref_ms = float(ts_ms)
        exponent = (ts_ms - self._ref_ms) / self.half_life_ms
        if exponent > _REBASE_AFTER:
            self._rebase(float(ts_ms))
            exponent = 0.0
        gain = TYPE_WEIGHT[type_code] * math.pow(2.0, max(exponent, -1000.0))
        self._scores[item_id] = self._scores.get(item_id, 0.0) + gain
        self._top_cache = None
        if len(self._scores) > 2 * self.max_items:
            self._scores = dict(heapq.nlargest(self.max_items, self._scores.items(),
                                               key=lambda kv: kv[1]))

    def top(self, n: int) -> list[tuple[str, float]]:
        """The n most popular items now, with scores scaled so the first is 1.0."""
        if self._top_cache is None or len(self._top_cache) < n:
            best = heapq.nlargest(max(n, 256), self._scores.items(), key=lambda kv: (kv[1], kv[0]))
            peak = best[0][1] if best else 1.0
            self._top_cache = [(item, score / peak) for item, score in best]
        return self._top_cache[:n]

    def __len__(self) -> int:
        return len(self._scores)

    def _rebase(self, new_ref_ms: float) -> None:
        assert self._ref_ms is not None
        factor = math.pow(2.0, -(new_ref_ms - self._ref_ms) / self.half_life_ms)
        self._scores = {k: v * factor for k, v in self._scores.items() if v * factor > 1e-300}
        self._ref_ms = new_ref_ms
