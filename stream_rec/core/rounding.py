"""Rounding floats for what stream-rec stores and sends, on the hot path."""

from __future__ import annotations

import math


def round6(value: float) -> float:
    """``value`` to 6 decimals (halves away from minus infinity), at a fraction of the cost of
    ``round(value, 6)``, which formats the number as decimal text: every event rounds its
    shopper's category scores and its list's item scores, dozens of values."""
    scaled = value * 1e6 + 0.5
    return math.floor(scaled) / 1e6 if math.isfinite(scaled) else value
