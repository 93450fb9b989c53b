"""The Faust consumer subclass keeps Faust's livelock check from stopping the worker."""

from __future__ import annotations

from typing import Any

import pytest
from faust.types import TP

from stream_rec.worker.faust_compat import RewindingConsumer


class _Thread:
    """Stands in for Faust's consumer thread: its livelock check hits aiokafka's assertion."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.calls = 0

    def verify_event_path(self, now: float, tp: Any) -> None:
        self.calls += 1
        raise self.error


def _consumer(thread: _Thread) -> RewindingConsumer:
    consumer = object.__new__(RewindingConsumer)  # no app or broker needed for this method
    consumer._thread = thread  # type: ignore[assignment]
    return consumer


def test_a_partition_whose_position_is_being_reset_is_skipped() -> None:
    thread = _Thread(AssertionError())
    _consumer(thread).verify_event_path(0.0, TP("events", 0))
    assert thread.calls == 1


def test_other_failures_of_the_check_still_surface() -> None:
    with pytest.raises(RuntimeError):
        _consumer(_Thread(RuntimeError("broken"))).verify_event_path(0.0, TP("events", 0))
