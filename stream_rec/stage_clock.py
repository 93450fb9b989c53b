"""Per-stage wall time of the recommendation pipeline (decode, state, retrieval, ...)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

STAGES: tuple[str, ...] = ("decode_validate", "state", "retrieval", "scoring", "reranking",
                           "encode_produce")


@dataclass
class StageClock:
    """Wall time spent per pipeline stage, summed over events (for the per-event breakdown)."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    events: int = 0

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def count(self, events: int) -> None:
        self.events += events

    def per_event_us(self) -> dict[str, float]:
        n = max(self.events, 1)
        return {name: round(total / n * 1e6, 1) for name, total in self.seconds.items()}
