"""Per-stage wall time of the recommendation pipeline (decode, state, retrieval, ...)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import TracebackType

STAGES: tuple[str, ...] = ("decode_validate", "state", "retrieval", "scoring", "reranking",
                           "encode_produce")


@dataclass
class StageClock:
    """Wall time spent per pipeline stage, summed over events (for the per-event breakdown)."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    events: int = 0

    def stage(self, name: str) -> _Timing:
        """``with clock.stage(name):`` adds the block's wall time to ``name``."""
        return _Timing(self.seconds, name)

    def count(self, events: int) -> None:
        self.events += events

    def per_event_us(self) -> dict[str, float]:
        n = max(self.events, 1)
        return {name: round(total / n * 1e6, 1) for name, total in self.seconds.items()}


class _Timing:
    """A plain context manager rather than ``@contextmanager``: the worker enters a stage twice
    per event, and a generator-based one costs about three times as much to enter and leave."""

    __slots__ = ("_seconds", "_name", "_start")

    def __init__(self, seconds: dict[str, float], name: str) -> None:
        self._seconds = seconds
        self._name = name
        self._start = 0.0

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        seconds = self._seconds
        seconds[self._name] = seconds.get(self._name, 0.0) + time.perf_counter() - self._start
