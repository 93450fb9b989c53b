"""Logging unexpected errors without flooding: one traceback per exception type and minute.

A fault that one message triggers usually repeats for every similar message: a stream or a
catalog with thousands of them would otherwise fill the log with identical tracebacks and hide
the one line per message that says which message it was.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

REPEAT_AFTER_S = 60.0


class OncePerInterval:
    """``allow(kind)`` is True the first time and then at most once per ``interval_s``."""

    def __init__(self, interval_s: float = REPEAT_AFTER_S,
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


class ErrorSampler:
    """Logs an exception with its traceback the first time its type is seen in a window of
    ``every_s`` seconds, and counts the rest (the count appears with the next traceback)."""

    def __init__(self, log: logging.Logger, every_s: float = REPEAT_AFTER_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._log = log
        self._due = OncePerInterval(every_s, clock)
        self._suppressed: dict[str, int] = {}

    def report(self, exc: BaseException, what: str) -> bool:
        """Log ``exc`` (raised while handling ``what``) if its type is due; True if logged."""
        kind = type(exc).__name__
        if not self._due.allow(kind):
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return False
        more = self._suppressed.pop(kind, 0)
        self._log.error("internal error (%s) while handling %s%s", kind, what,
                        f"; {more} more of this type since the last report" if more else "",
                        exc_info=exc)
        return True
