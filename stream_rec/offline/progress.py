"""A small progress line on stderr for long jobs (replay, benchmarks, evaluation)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``Progress(total, "replay")``; call ``update(n)``; ``close()`` prints the last line.

    Redraws at most every ``every_s`` seconds; on a terminal it rewrites one line, elsewhere
    (CI logs) it prints a new line each time.
    """

    def __init__(self, total: int | None, label: str, unit: str = "events",
                 stream: TextIO | None = None, every_s: float = 1.0) -> None:
        self.total, self.label, self.unit = total, label, unit
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self.done = 0
        self.started = time.monotonic()
        self._last_draw = 0.0

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last_draw >= self.every_s:
            self._draw(now, final=False)

    def close(self) -> None:
        self._draw(time.monotonic(), final=True)

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def _draw(self, now: float, final: bool) -> None:
        self._last_draw = now
        if self.total:
            share = min(1.0, self.done / self.total)
            bar = "#" * int(share * 30)
            text = (f"{self.label} [{bar:<30}] {self.done}/{self.total} {self.unit} "
                    f"({share:.0%}, {self.rate:,.0f}/s)")
        else:
            text = f"{self.label} {self.done} {self.unit} ({self.rate:,.0f}/s)"
        tty = self.stream.isatty()
        end = "\n" if final or not tty else ""
        self.stream.write(("\r" if tty else "") + text + end)
        self.stream.flush()
