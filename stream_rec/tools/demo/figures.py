"""The demo's headline figures from the worker's Prometheus text (pure: no I/O here).

Rates and the p99 latency are over a sliding window of samples (the last ~10 s), so they show
what the worker does now rather than since it started. The latency histogram only knows
buckets, so p99 is the upper bound of the bucket that holds it ("<= 20 ms"). The worker
exports the histogram in seconds (``stream_rec_recommendation_latency_seconds``); the figures
are in milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

LATENCY = "stream_rec_recommendation_latency_seconds"


@dataclass(frozen=True)
class MetricsSample:
    """One scrape: unlabelled counters, cumulative latency buckets (le in ms, count), model."""

    at_s: float  # a monotonic clock reading
    counters: dict[str, float]
    latency_buckets: tuple[tuple[float, float], ...]
    model_version: str | None


def parse_metrics(text: str, at_s: float) -> MetricsSample:
    """One sample of the worker's /metrics text: counters, latency buckets, model version."""
    counters: dict[str, float] = {}
    buckets: list[tuple[float, float]] = []
    model: str | None = None
    for sample in _samples(text):
        name, found, value = sample.name, sample.labels, float(sample.value)
        if name == f"{LATENCY}_bucket" and "le" in found:
            # float("+Inf") is inf; seconds to ms, rounded off the float error of the product
            buckets.append((round(float(found["le"]) * 1000, 6), value))
        elif name == "stream_rec_model_info":
            model = None if found.get("version") in (None, "none") else found["version"]
        elif not found:
            counters[name] = value
    buckets.sort()
    return MetricsSample(at_s, counters, tuple(buckets), model)


def _samples(text: str) -> Iterator[Sample]:
    """The samples of a /metrics page; on a malformed line it stops, with the families before."""
    try:
        for family in text_string_to_metric_families(text):
            yield from family.samples
    except ValueError:
        return


def latency_quantile(buckets: Sequence[tuple[float, float]], q: float) -> float | None:
    """Upper bound of the bucket holding the q-quantile; None without observations."""
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return None
    for bound, cumulative in buckets:
        if cumulative >= q * total:
            return bound
    return math.inf


def window_figures(window: Sequence[MetricsSample]) -> dict[str, Any]:
    """Totals of the newest sample; rates and p99 between the oldest and the newest."""
    if not window:
        return {"events_in": None, "lists_out": None, "dead_letters": None,
                "events_per_s": None, "lists_per_s": None, "p99_ms": None, "p99_label": "–",
                "model_version": None}
    first, last = window[0], window[-1]
    span = last.at_s - first.at_s

    def total(name: str) -> float:
        return last.counters.get(f"stream_rec_{name}_total", 0.0)

    def rate(name: str) -> float | None:
        if span <= 0:
            return None
        key = f"stream_rec_{name}_total"
        return max(last.counters.get(key, 0.0) - first.counters.get(key, 0.0), 0.0) / span

    recent = _bucket_difference(last.latency_buckets, first.latency_buckets) \
        if span > 0 else last.latency_buckets
    p99 = latency_quantile(recent, 0.99)
    return {"events_in": int(total("events_in")), "lists_out": int(total("recommendations")),
            "dead_letters": int(total("dlq")), "events_per_s": _round(rate("events_in")),
            "lists_per_s": _round(rate("recommendations")),
            "p99_ms": None if p99 is None or math.isinf(p99) else p99,
            "p99_label": _latency_label(p99, last.latency_buckets),
            "model_version": last.model_version}


def _bucket_difference(new: Sequence[tuple[float, float]],
                       old: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    before = dict(old)
    return [(le, count - before.get(le, 0.0)) for le, count in new]


def _latency_label(p99: float | None, buckets: Sequence[tuple[float, float]]) -> str:
    if p99 is None:
        return "–"
    if math.isinf(p99):
        finite = [le for le, _ in buckets if not math.isinf(le)]
        return f"> {finite[-1]:g} ms" if finite else "–"
    return f"≤ {p99:g} ms"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
