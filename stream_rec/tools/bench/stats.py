"""Percentiles and rates for benchmark reports (pure, no numpy needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks.

    The same definition as numpy's default ("linear"), so numbers compare with other tools.
    Raises ValueError on an empty input: a latency report without samples is a bug upstream.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0..100, not {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary(latencies_ms: Sequence[float], digits: int = 2) -> dict[str, float | None]:
    """``{"p50", "p95", "p99"}`` in ms, rounded; None each when there are no samples."""
    if not latencies_ms:
        return {"p50": None, "p95": None, "p99": None}
    ordered = sorted(latencies_ms)
    return {f"p{q}": round(percentile(ordered, q), digits) for q in (50, 95, 99)}


def per_second(count: int, seconds: float) -> float | None:
    """``count / seconds`` rounded to 0.1, or None when no time passed."""
    return round(count / seconds, 1) if seconds > 0 else None
