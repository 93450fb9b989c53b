"""Tracebacks at most once per kind and interval."""

from __future__ import annotations

from stream_rec.serving.error_log import OncePerInterval


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


def test_an_error_sampler_logs_each_type_once_per_window_and_counts_the_rest(caplog) -> None:
    import logging

    from stream_rec.serving.error_log import ErrorSampler

    now = [0.0]
    sampler = ErrorSampler(logging.getLogger("sampled"), every_s=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.ERROR, logger="sampled"):
        assert sampler.report(ValueError("a"), "m1")
        assert not sampler.report(ValueError("b"), "m2")
        assert sampler.report(KeyError("c"), "m3")  # another type has its own window
        now[0] = 61.0
        assert sampler.report(ValueError("d"), "m4")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3 and all(r.exc_info for r in caplog.records)
    assert "1 more of this type" in messages[-1]
