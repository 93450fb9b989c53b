"""The worker's counters, gauges and latency histogram, exposed through ``prometheus_client``.

The hot path never touches ``prometheus_client``: the worker adds to the plain ``int`` fields of
``WorkerMetrics`` (and observes latencies into its bucket list), and ``WorkerCollector`` reads
them when ``/metrics/`` is scraped. Each ``WorkerMetrics`` has its own ``CollectorRegistry``
(with the process collector's ``process_*`` metrics and ``python_info``), so tests can build
several side by side; ``exposition`` is the body ``GET /metrics/`` answers (``render``, the
same as text).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from stream_rec.core.attribution import split_group
from stream_rec.serving.stage_clock import StageClock
from stream_rec.worker.heap import collections_by_generation

# The pipeline measures latency in milliseconds; the histogram is exported in seconds, as
# Prometheus conventions ask. Bounds in ms are whole numbers, so observing stays exact and
# cheap, and each bound / 1000 is the same double as the seconds literal (1 / 1000 == 0.001).
LATENCY_BUCKETS_MS: tuple[float, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
LATENCY_BUCKETS_SECONDS: tuple[float, ...] = tuple(b / 1000 for b in LATENCY_BUCKETS_MS)
LATENCY_METRIC = "stream_rec_recommendation_latency_seconds"
# What generate_latest writes (also what prometheus_client's own server answers a scraper that
# asks for no particular format with).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# Old name -> new name, for the metrics renamed when /metrics/ moved to prometheus_client
# (listed in docs/operations.md, "Metric names"). Every sample of a histogram is renamed with it
# (_bucket, _sum, _count), and its buckets are in seconds now.
RENAMED: dict[str, str] = {
    "stream_rec_recommendation_latency_ms": LATENCY_METRIC,
}


@dataclass
class Histogram:
    """A latency histogram kept cheaply: a count per bucket, their sum and count (in ms).

    ``observe`` is on the hot path (once per list), so it is a bisect and three additions; the
    collector turns the counts into a cumulative Prometheus histogram in seconds at scrape time.
    """

    buckets: tuple[float, ...] = LATENCY_BUCKETS_MS
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))
    total: float = 0.0
    n: int = 0

    def observe(self, value: float) -> None:
        """Count one observation of ``value`` milliseconds."""
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.n += 1

    def quantile(self, q: float) -> float:
        """Upper bound (ms) of the bucket holding the q-quantile (0 when empty)."""
        if not self.n:
            return 0.0
        target, seen = q * self.n, 0
        for bound, count in zip((*self.buckets, float("inf")), self.counts, strict=True):
            seen += count
            if seen >= target:
                return bound
        return float("inf")

    def family(self, name: str, help_text: str) -> HistogramMetricFamily:
        """The histogram as a Prometheus family in seconds: cumulative buckets, sum, count."""
        cumulative, buckets = 0, []
        for bound, count in zip(self.buckets, self.counts, strict=False):
            cumulative += count
            buckets.append((floatToGoString(bound / 1000), float(cumulative)))
        # The +Inf bucket is the count: the overflow slot adds to it.
        buckets.append(("+Inf", float(self.n)))
        return HistogramMetricFamily(name, help_text, buckets=buckets,
                                     sum_value=self.total / 1000)


@dataclass
class WorkerMetrics:
    """Everything the worker counts and exports on /metrics, and the model it serves.

    The fields are plain numbers the worker's code adds to; ``registry`` reads them when
    scraped (``WorkerCollector``).
    """

    content_type: ClassVar[str] = CONTENT_TYPE

    events_in: int = 0
    events_valid: int = 0
    events_duplicate: int = 0
    dlq: int = 0
    recommendations_out: int = 0
    fallback_lists: int = 0
    catalog_rejected: int = 0
    model_swaps: int = 0
    model_rejected: int = 0
    batches: int = 0
    forget_requests: int = 0
    produce_failed: int = 0
    offsets_skipped: int = 0
    events_redelivered: int = 0
    commit_repairs: int = 0
    internal_errors: int = 0
    events_clamped: int = 0
    state_unreadable: int = 0
    states_expired: int = 0
    impressions: int = 0
    experiments_rejected: int = 0
    bandit_steps: int = 0  # new weights this worker published as the group's leader
    agent_crashes: int = 0
    # The events agent's last crash ("Type: message"), until a batch is handled again.
    agent_failure: str = ""
    # model versions served to experiment arms beside the main one -> resident bytes they
    # added when loaded
    arm_model_bytes: dict[str, int] = field(default_factory=dict)
    stages: StageClock = field(default_factory=StageClock)
    latency_ms: Histogram = field(default_factory=Histogram)  # observed in ms, exported in s
    model_version: str = ""
    # Why no model serves ("no_model", "refused"; empty while one does) and the last refusal.
    model_unservable: str = ""
    model_refusal: str = ""
    consumer_lag: dict[str, int] = field(default_factory=dict)  # "topic:partition" -> messages
    commit_stalls: dict[str, int] = field(default_factory=dict)  # "topic:partition" -> offsets
    # online figures of this worker's partitions, by list group (serving/online_metrics.py)
    online: dict[str, dict[str, float]] = field(default_factory=dict)
    registry: CollectorRegistry = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(WorkerCollector(self))
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, ..._memory_bytes
        PlatformCollector(registry=self.registry)  # python_info

    def exposition(self) -> bytes:
        """The /metrics/ body: Prometheus text format 0.0.4 (``content_type``)."""
        return generate_latest(self.registry)

    def render(self) -> str:
        """The /metrics/ body as text."""
        return self.exposition().decode("utf-8")


COUNTERS: tuple[tuple[str, str, str], ...] = (
    # (metric name, WorkerMetrics field, help)
    ("stream_rec_events_in_total", "events_in",
     "Messages read from the events topic (repeats: events_redelivered_total)."),
    ("stream_rec_events_valid_total", "events_valid", "Events that passed validation."),
    ("stream_rec_events_duplicate_total", "events_duplicate",
     "Events whose event_id was already applied (state left unchanged)."),
    ("stream_rec_dlq_total", "dlq", "Messages sent to the dead-letter topic."),
    ("stream_rec_recommendations_total", "recommendations_out", "Lists published."),
    ("stream_rec_fallback_lists_total", "fallback_lists", "Lists made without a model."),
    ("stream_rec_catalog_rejected_total", "catalog_rejected", "Invalid catalog messages."),
    ("stream_rec_model_swaps_total", "model_swaps", "Models loaded and swapped in."),
    ("stream_rec_model_rejected_total", "model_rejected", "Model versions refused."),
    ("stream_rec_batches_total", "batches", "Event batches processed."),
    ("stream_rec_forget_requests_total", "forget_requests", "Forget-user requests applied."),
    ("stream_rec_produce_failed_total", "produce_failed",
     "Recommendation messages the producer failed to deliver."),
    ("stream_rec_offsets_skipped_total", "offsets_skipped",
     "Event offsets the consumer jumped over (see docs/operations.md)."),
    ("stream_rec_events_redelivered_total", "events_redelivered",
     "Messages delivered again in one consumer generation, passed over."),
    ("stream_rec_commit_repairs_total", "commit_repairs",
     "Group rejoins that restarted offset commits which had stopped."),
    ("stream_rec_internal_errors_total", "internal_errors",
     "Messages whose handling raised an unexpected error (each sent to the DLQ)."),
    ("stream_rec_events_clamped_total", "events_clamped",
     "Events whose time lay too far ahead of the worker's clock (clamped)."),
    ("stream_rec_state_unreadable_total", "state_unreadable",
     "Stored shopper states that could not be read (the shopper started afresh)."),
    ("stream_rec_experiments_rejected_total", "experiments_rejected",
     "Experiment definitions refused (the experiment stays as it was)."),
    ("stream_rec_bandit_steps_total", "bandit_steps",
     "New weights of thompson experiments this worker published (as the leader)."),
    ("stream_rec_impressions_total", "impressions",
     "Impressions applied (lists the storefront displayed; duplicates excluded)."),
    ("stream_rec_states_expired_total", "states_expired",
     "Shoppers deleted after state_expiry_days without activity."),
    ("stream_rec_agent_crashes_total", "agent_crashes",
     "Times the events agent stopped on an error and was restarted by Faust."),
)

ONLINE_HELP = {
    "lists": "Lists published",
    "impressions": "Impressions received",
    "impressed_items": "Items displayed, summed over impressions",
    "clicks": "Views and clicks attributed to a list",
    "add_to_carts": "Add-to-carts attributed to a list (through a click)",
    "purchases": "Purchases attributed to a list (through a click)",
    "revenue": "Price x quantity of attributed purchases that carry a price",
    "position_sum": "Sum of the list positions of attributed clicks",
    "positioned_clicks": "Attributed clicks whose position is known",
    "ild_sum": "Sum of the intra-list diversity (share of item pairs of different categories) "
               "of impressed lists",
    "ild_lists": "Impressed lists with a pair of items of known categories",
    "categories_sum": "Sum of the distinct categories of impressed lists",
}
GROUP_LABELS: tuple[str, ...] = ("model", "policy", "experiment", "arm")
TP_LABELS: tuple[str, ...] = ("topic", "partition")


class WorkerCollector(Collector):
    """Reads a ``WorkerMetrics`` when scraped and yields its Prometheus metric families."""

    def __init__(self, metrics: WorkerMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        """Every stream_rec_* family, from the current values of the worker's fields."""
        m = self.metrics
        for name, attribute, help_text in COUNTERS:
            yield CounterMetricFamily(name, help_text, value=getattr(m, attribute))
        stages = CounterMetricFamily("stream_rec_stage_seconds_total",
                                     "Time spent per pipeline stage.", labels=["stage"])
        for stage, seconds in list(m.stages.seconds.items()):
            stages.add_metric([stage], seconds)
        yield stages
        yield CounterMetricFamily("stream_rec_stage_events_total",
                                  "Events the stage times cover.", value=m.stages.events)
        yield m.latency_ms.family(LATENCY_METRIC, "Time from taking an event off the topic to "
                                                  "its list, in seconds.")
        gc_family = CounterMetricFamily(
            "stream_rec_gc_collections_total", "Python garbage collections run, by generation "
            "(2 = full; see stream_rec/worker/heap.py).", labels=["generation"])
        for generation, count in enumerate(collections_by_generation()):
            gc_family.add_metric([str(generation)], count)
        yield gc_family
        yield from _model_families(m)
        yield _per_partition("stream_rec_consumer_lag",
                             "Events not yet processed, per partition.", m.consumer_lag)
        yield _per_partition("stream_rec_commit_stalled", "Offsets missing before a partition's "
                             "first acked one, holding back its commits (docs/operations.md).",
                             m.commit_stalls)
        yield from _online_families(m.online)


def _model_families(m: WorkerMetrics) -> Iterator[Metric]:
    """The served model: its version, whether one serves and why not, the arms' memory."""
    yield InfoMetricFamily("stream_rec_model", "The model version being served.",
                           value={"version": m.model_version or "none"})
    yield GaugeMetricFamily("stream_rec_model_servable", "1 while a model serves, 0 while lists "
                            "are fallback lists (the reason: stream_rec_model_unservable_info, "
                            "/health/).", value=1 if m.model_version else 0)
    if m.model_unservable:
        yield InfoMetricFamily("stream_rec_model_unservable", "Why no model serves.",
                               value={"reason": m.model_unservable})
    arms = GaugeMetricFamily("stream_rec_model_arm_resident_bytes", "Resident memory a model "
                             "version served to an experiment arm (beside the main model) added "
                             "when it loaded.", labels=["version"])
    for version, size in sorted(m.arm_model_bytes.items()):
        arms.add_metric([version], size)
    yield arms


def _per_partition(name: str, help_text: str, values: dict[str, int]) -> GaugeMetricFamily:
    """A gauge labelled by topic and partition, from "topic:partition" keys."""
    family = GaugeMetricFamily(name, help_text, labels=TP_LABELS)
    for tp, value in sorted(values.items()):
        topic, _, partition = tp.rpartition(":")
        family.add_metric([topic, partition], value)
    return family


def _online_families(online: dict[str, dict[str, float]]) -> Iterator[Metric]:
    """Per-group online figures of this worker's partitions (sum over workers for totals)."""
    groups = [(tuple(split_group(group).values()), figures)
              for group, figures in sorted(online.items())]
    for figure, help_text in ONLINE_HELP.items():
        family = CounterMetricFamily(
            f"stream_rec_online_{figure}_total", f"{help_text}, by the model, policy and "
            "experiment arm of the list, over this worker's partitions.", labels=GROUP_LABELS)
        for labels, figures in groups:
            family.add_metric(labels, figures.get(figure, 0.0))
        yield family
    distinct = GaugeMetricFamily(
        "stream_rec_online_distinct_items", "Distinct items impressed (HyperLogLog estimate, "
        "about 3 % off), by the model, policy and experiment arm of the list, over this "
        "worker's partitions (workers' figures overlap: they do not add up).",
        labels=GROUP_LABELS)
    for labels, figures in groups:
        if "distinct_items" in figures:
            distinct.add_metric(labels, figures["distinct_items"])
    yield distinct


def partition_lag(highwater: int, committed: int | None, processed: tuple[int, int] | None,
                  generation: int) -> int:
    """Events of a partition not yet processed: highwater minus the next offset to process.

    ``processed`` is (consumer generation, offset) of the last event this worker processed from
    the partition. It only counts within the current generation: after a rebalance another
    worker may have gone further, and the committed offset is what this one resumes from.
    A partition never committed counts from offset 0.
    """
    next_offset = committed or 0
    if processed is not None and processed[0] == generation:
        next_offset = max(next_offset, processed[1] + 1)
    return max(0, highwater - next_offset)
