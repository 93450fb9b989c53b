"""Hold-out by time: the most recent slice of sessions becomes the test split."""

from __future__ import annotations

from collections.abc import Sequence

from stream_rec.datasets.types import Session


def split_by_time(sessions: Sequence[Session], holdout_fraction: float
                  ) -> tuple[list[Session], list[Session]]:
    """(train, test): test holds the sessions that start in the last ``holdout_fraction`` of
    events by time, so a model is always judged on what happened after what it learned from.
    """
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    ordered = sorted(sessions, key=lambda s: (s.events[0].ts_ms, s.session_id))
    stamps = sorted(e.ts_ms for s in ordered for e in s.events)
    if not stamps:
        return [], []
    cut = stamps[min(len(stamps) - 1, int(len(stamps) * (1.0 - holdout_fraction)))]
    train = [s for s in ordered if s.events[0].ts_ms < cut]
    test = [s for s in ordered if s.events[0].ts_ms >= cut]
    return train, test
