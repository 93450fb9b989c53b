"""Durations on the command line: ``500ms``, ``90s``, ``30m``, ``1h``, ``7d`` (or plain ms)."""

from __future__ import annotations

import re

from stream_rec.errors import UserError

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$", re.IGNORECASE)


def parse_duration_ms(text: str) -> int:
    """Milliseconds in a duration string; a bare number is milliseconds."""
    match = _PATTERN.match(text)
    if not match:
        raise UserError(f"not a duration: {text!r} (try 90s, 30m, 1h, 7d)")
    value = float(match.group(1)) * _UNITS_MS[(match.group(2) or "ms").lower()]
    if value <= 0:
        raise UserError(f"duration must be positive: {text!r}")
    return int(value)
