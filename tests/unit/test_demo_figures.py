"""The demo page's figures, computed from what the worker's /metrics/ really renders."""

from __future__ import annotations

import math

from stream_rec.tools.demo.figures import latency_quantile, parse_metrics, window_figures
from stream_rec.worker.metrics import WorkerMetrics


def rendered(events: int, lists: int, latencies: list[float], model: str = "") -> str:
    metrics = WorkerMetrics(events_in=events, recommendations_out=lists, dlq=2,
                            model_version=model)
    for value in latencies:
        metrics.latency_ms.observe(value)
    metrics.consumer_lag["storefront.events:0"] = 5  # a labelled gauge must not count
    return metrics.render()


def test_parse_reads_counters_buckets_and_the_model_label() -> None:
    sample = parse_metrics(rendered(120, 118, [3.0, 4.0, 30.0], "20260101T000000Z"), 1.0)
    assert sample.counters["stream_rec_events_in_total"] == 120
    assert sample.counters["stream_rec_recommendations_total"] == 118
    assert "stream_rec_consumer_lag" not in sample.counters
    assert sample.model_version == "20260101T000000Z"
    assert dict(sample.latency_buckets)[5.0] == 2 and dict(sample.latency_buckets)[math.inf] == 3
    assert parse_metrics(rendered(0, 0, []), 0.0).model_version is None


def test_quantile_is_the_upper_bound_of_the_bucket_holding_it() -> None:
    buckets = [(1.0, 0.0), (5.0, 90.0), (20.0, 99.0), (50.0, 100.0), (math.inf, 100.0)]
    assert latency_quantile(buckets, 0.5) == 5.0
    assert latency_quantile(buckets, 0.99) == 20.0
    assert latency_quantile(buckets, 1.0) == 50.0
    assert latency_quantile([(1.0, 0.0), (math.inf, 0.0)], 0.99) is None
    assert latency_quantile([(1.0, 0.0), (math.inf, 4.0)], 0.99) == math.inf


def test_window_rates_and_p99_cover_only_the_window() -> None:
    # 1000 slow lists before the window, 100 fast ones inside it: p99 must be the fast one.
    old = parse_metrics(rendered(1000, 1000, [400.0] * 1000), at_s=10.0)
    new = parse_metrics(rendered(1100, 1100, [400.0] * 1000 + [3.0] * 100), at_s=20.0)
    figures = window_figures([old, new])
    assert figures["events_per_s"] == 10.0 and figures["lists_per_s"] == 10.0
    assert figures["p99_ms"] == 5.0 and figures["p99_label"] == "≤ 5 ms"
    assert figures["events_in"] == 1100 and figures["dead_letters"] == 2


def test_window_with_one_sample_or_none() -> None:
    only = window_figures([parse_metrics(rendered(10, 10, [9000.0] * 10), at_s=1.0)])
    assert only["events_per_s"] is None
    assert only["p99_ms"] is None and only["p99_label"] == "> 5000 ms"
    empty = window_figures([])
    assert empty["events_in"] is None and empty["p99_label"] == "–"
