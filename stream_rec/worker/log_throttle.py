"""Full log records (tracebacks) at most once per kind and interval.

A fault that one message triggers usually repeats for every similar message: a catalog with
thousands of such items would otherwise fill the log with identical tracebacks and hide the
one line per message that says which message it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class OncePerInterval:
    """``allow(kind)`` is True the first time and then at most once per ``interval_s``."""

    def __init__(self, interval_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._last: dict[object, float] = {}

    def allow(self, kind: object) -> bool:
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval_s:
            return False
        self._last[kind] = now
        return True
