"""Tracebacks at most once per kind and interval."""

from __future__ import annotations

from stream_rec.worker.log_throttle import OncePerInterval


def test_once_per_kind_and_interval() -> None:
    now = [100.0]
    throttle = OncePerInterval(60.0, clock=lambda: now[0])
    assert throttle.allow(KeyError)
    assert not throttle.allow(KeyError)
    assert throttle.allow(ValueError)  # another kind has its own minute
    now[0] += 59.9
    assert not throttle.allow(KeyError)
    now[0] += 0.1
    assert throttle.allow(KeyError)
    assert not throttle.allow(KeyError)
