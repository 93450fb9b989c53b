"""Noticing a partition whose offset commits have stopped, and deciding when to repair it.

Faust commits a partition's offsets from the offsets its agent has acked. Two states stop
those commits for good, though the events keep flowing and their lists go out: acked offsets
that start past a gap after the committed one (``commit_stall``), and a committed offset
recorded past what the worker processed (``commit_ahead``; Faust ignores acks below it).
Either way a restart would process the uncommitted stretch again, so nothing is lost, but
the group's lag stays up and the stretch grows until then. ``CommitWatch`` tells the lag
timer when such a state has lasted long enough to warn, and when to repair it by rejoining
the group: the rebalance that follows resumes every partition from its committed offset,
as a restart would, without one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import NamedTuple


class Problem(NamedTuple):
    """Why one partition's commits cannot advance."""

    kind: str  # "stalled" (acked offsets start past a gap) or "ahead" (see commit_ahead)
    committed: int | None  # Faust's committed offset for the partition
    offsets: int  # offsets missing ("stalled") or past the processed events ("ahead")


def commit_stall(committed: int | None, first_acked: int | None) -> int:
    """Offsets missing between a partition's committed offset and its first acked one.

    Faust commits a partition only when its acked offsets continue from the committed one
    (it lets a single missing offset pass). Anything more and no later event of the partition
    is committed until the next rebalance: a restart would process them all again. Nonzero
    for a moment is normal (right after a rebalance, events fetched before it are acked
    first); nonzero for long means events that never reached the agent.
    """
    if committed is None or first_acked is None:
        return 0
    gap = first_acked - committed
    return gap if gap > 1 else 0


def commit_ahead(committed: int | None, processed: tuple[int, int] | None,
                 generation: int) -> int:
    """How far Faust's committed offset is past the next event this worker will process.

    Within one generation the committed offset follows the processed events, never leads
    them: Faust ignores acks below it, so a lead that lasts means the events in between
    will never be committed by this worker (a commit recorded that did not happen).
    """
    if committed is None or processed is None or processed[0] != generation:
        return 0
    return max(0, committed - (processed[1] + 1))


@dataclass
class CommitWatch:
    """How many lag ticks in a row each partition has shown the same commit problem."""

    repair_after_ticks: int  # 0: never repair, only report
    min_repair_interval_s: float = 60.0  # a problem that survives a repair waits this long
    _runs: dict[str, tuple[Problem, int]] = field(default_factory=dict)
    _last_repair: float = float("-inf")

    def observe(self, partition: str, problem: Problem | None) -> int:
        """Record this tick's problem for ``partition`` (None: healthy); ticks it has lasted."""
        if problem is None:
            self._runs.pop(partition, None)
            return 0
        previous = self._runs.get(partition)
        ticks = previous[1] + 1 if previous is not None and previous[0] == problem else 1
        self._runs[partition] = (problem, ticks)
        return ticks

    def forget_others(self, partitions: set[str]) -> None:
        """Drop partitions no longer assigned."""
        for name in set(self._runs) - partitions:
            del self._runs[name]

    def should_repair(self, now: float | None = None) -> bool:
        """Whether some problem has lasted long enough, and no repair ran too recently."""
        if not self.repair_after_ticks:
            return False
        now = time.monotonic() if now is None else now
        if now - self._last_repair < self.min_repair_interval_s:
            return False
        return any(ticks >= self.repair_after_ticks for _, ticks in self._runs.values())

    def repaired(self, now: float | None = None) -> None:
        self._last_repair = time.monotonic() if now is None else now
        self._runs.clear()


def commit_problem(committed: int | None, first_acked: int | None,
                   processed: tuple[int, int] | None, generation: int) -> Problem | None:
    """This tick's commit problem of one partition, or None when its commits can advance."""
    if missing := commit_stall(committed, first_acked):
        return Problem("stalled", committed, missing)
    if lead := commit_ahead(committed, processed, generation):
        return Problem("ahead", committed, lead)
    return None
