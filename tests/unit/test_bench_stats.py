"""Percentiles and the /proc and /metrics parsers the bench reads the worker with."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream_rec.serving.stage_clock import STAGES
from stream_rec.tools.bench.benchmark import mean_batch
from stream_rec.tools.bench.probes import (
    StageTotals,
    parse_consumer_lag,
    parse_counter,
    parse_cpu_seconds,
    parse_proc_status,
    parse_stage_totals,
    stage_us_per_event,
)
from stream_rec.tools.bench.stats import latency_summary, per_second, percentile
from stream_rec.worker.metrics import WorkerMetrics


@given(st.lists(st.floats(0, 1e6), min_size=1, max_size=200), st.floats(0, 100))
def test_percentile_matches_numpy_linear(values: list[float], q: float) -> None:
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-9,
                                                  abs=1e-9)


def test_percentile_edges() -> None:
    assert percentile([5.0], 99) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_latency_summary() -> None:
    summary = latency_summary([float(n) for n in range(1, 101)])
    assert summary == {"p50": 50.5, "p95": 95.05, "p99": 99.01}
    assert latency_summary([]) == {"p50": None, "p95": None, "p99": None}
    assert per_second(300, 1.5) == 200.0 and per_second(3, 0.0) is None


def test_proc_status() -> None:
    text = "Name:\tpython\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t4\n"
    memory = parse_proc_status(text)
    assert (memory.rss_mb, memory.peak_mb) == (100.0, 200.0)
    with pytest.raises(ValueError):
        parse_proc_status("Name:\tzombie\n")


def test_proc_stat_with_a_nasty_command_name() -> None:
    fields = ["S"] + ["0"] * 10 + ["250", "50"] + ["0"] * 30  # utime=250, stime=50 ticks
    text = "1234 (py (thon) x) " + " ".join(fields)
    assert parse_cpu_seconds(text, 100) == pytest.approx(3.0)


def test_stage_totals_from_the_real_metrics_page() -> None:
    metrics = WorkerMetrics()
    metrics.stages.seconds["state"] = 0.5
    metrics.stages.seconds["reranking"] = 1.25
    metrics.stages.count(1000)
    totals = parse_stage_totals(metrics.render())
    assert totals is not None and totals.events == 1000
    assert totals.seconds["reranking"] == 1.25 and set(STAGES) <= set(totals.seconds)


def test_stage_us_per_event_between_two_readings() -> None:
    before = StageTotals({"state": 1.0, "scoring": 0.0}, 100)
    after = StageTotals({"state": 1.5, "scoring": 0.25}, 1100)
    us = stage_us_per_event(before, after)
    assert us is not None and list(us) == list(STAGES)
    assert us["state"] == 500.0 and us["scoring"] == 250.0
    assert us["retrieval"] is None  # a stage the worker does not time


def test_stages_absent_or_empty_are_none() -> None:
    assert parse_stage_totals("stream_rec_events_in_total 5\n") is None
    assert stage_us_per_event(None, StageTotals({}, 1)) is None
    same = StageTotals({"state": 1.0}, 10)
    assert stage_us_per_event(same, same) is None


def test_consumer_lag_from_the_real_metrics_page() -> None:
    metrics = WorkerMetrics()
    metrics.consumer_lag = {"events:0": 5, "events:1": 7, "other:0": 100}
    assert parse_consumer_lag(metrics.render(), "events") == 12
    assert parse_consumer_lag(metrics.render(), "missing") is None


def test_events_per_batch_from_two_metrics_pages() -> None:
    metrics = WorkerMetrics()
    metrics.events_in, metrics.batches = 100, 10
    before = metrics.render()
    metrics.events_in, metrics.batches = 1100, 14
    after = metrics.render()
    assert parse_counter(after, "stream_rec_batches_total") == 14
    assert parse_counter(after, "stream_rec_nothing_total") is None
    assert mean_batch(before, after) == 250.0
    assert mean_batch(before, before) is None and mean_batch(None, after) is None
