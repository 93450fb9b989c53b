"""The worker's counters and latency histogram, rendered as Prometheus text."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from stream_rec.core.attribution import split_group
from stream_rec.serving.stage_clock import StageClock
from stream_rec.worker.heap import collections_by_generation

LATENCY_BUCKETS_MS: tuple[float, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


@dataclass
class Histogram:
    """A latency histogram as Prometheus keeps one: a count per bucket, their sum and count."""

    buckets: tuple[float, ...] = LATENCY_BUCKETS_MS
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))
    total: float = 0.0
    n: int = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.n += 1

    def quantile(self, q: float) -> float:
        """Upper bound of the bucket holding the q-quantile (0 when empty)."""
        if not self.n:
            return 0.0
        target, seen = q * self.n, 0
        for bound, count in zip((*self.buckets, float("inf")), self.counts, strict=True):
            seen += count
            if seen >= target:
                return bound
        return float("inf")


@dataclass
class WorkerMetrics:
    """Everything the worker counts and exports on /metrics, and the model it serves."""

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
    # model versions served to experiment arms beside the main one -> resident bytes they
    # added when loaded
    arm_model_bytes: dict[str, int] = field(default_factory=dict)
    stages: StageClock = field(default_factory=StageClock)
    latency_ms: Histogram = field(default_factory=Histogram)
    model_version: str = ""
    # Why no model serves ("no_model", "refused"; empty while one does) and the last refusal.
    model_unservable: str = ""
    model_refusal: str = ""
    consumer_lag: dict[str, int] = field(default_factory=dict)  # "topic:partition" -> messages
    commit_stalls: dict[str, int] = field(default_factory=dict)  # "topic:partition" -> offsets
    # online figures of this worker's partitions, by list group (serving/online_metrics.py)
    online: dict[str, dict[str, float]] = field(default_factory=dict)

    def render(self) -> str:
        """Prometheus text exposition format (version 0.0.4)."""
        lines: list[str] = []

        def counter(name: str, value: float, help_text: str) -> None:
            lines.extend([f"# HELP stream_rec_{name} {help_text}",
                          f"# TYPE stream_rec_{name} counter", f"stream_rec_{name} {value}"])

        counter("events_in_total", self.events_in,
                "Messages read from the events topic (repeats: events_redelivered_total).")
        counter("events_valid_total", self.events_valid, "Events that passed validation.")
        counter("events_duplicate_total", self.events_duplicate,
                "Events whose event_id was already applied (state left unchanged).")
        counter("dlq_total", self.dlq, "Messages sent to the dead-letter topic.")
        counter("recommendations_total", self.recommendations_out, "Lists published.")
        counter("fallback_lists_total", self.fallback_lists, "Lists made without a model.")
        counter("catalog_rejected_total", self.catalog_rejected, "Invalid catalog messages.")
        counter("model_swaps_total", self.model_swaps, "Models loaded and swapped in.")
        counter("model_rejected_total", self.model_rejected, "Model versions refused.")
        counter("batches_total", self.batches, "Event batches processed.")
        counter("forget_requests_total", self.forget_requests, "Forget-user requests applied.")
        counter("produce_failed_total", self.produce_failed,
                "Recommendation messages the producer failed to deliver.")
        counter("offsets_skipped_total", self.offsets_skipped,
                "Event offsets the consumer jumped over (see docs/operations.md).")
        counter("events_redelivered_total", self.events_redelivered,
                "Messages delivered again in one consumer generation, passed over.")
        counter("commit_repairs_total", self.commit_repairs,
                "Group rejoins that restarted offset commits which had stopped.")
        counter("internal_errors_total", self.internal_errors,
                "Messages whose handling raised an unexpected error (each sent to the DLQ).")
        counter("events_clamped_total", self.events_clamped,
                "Events whose time lay too far ahead of the worker's clock (clamped).")
        counter("state_unreadable_total", self.state_unreadable,
                "Stored shopper states that could not be read (the shopper started afresh).")
        counter("experiments_rejected_total", self.experiments_rejected,
                "Experiment definitions refused (the experiment stays as it was).")
        counter("bandit_steps_total", self.bandit_steps,
                "New weights of thompson experiments this worker published (as the leader).")
        counter("impressions_total", self.impressions,
                "Impressions applied (lists the storefront displayed; duplicates excluded).")
        counter("states_expired_total", self.states_expired,
                "Shoppers deleted after state_expiry_days without activity.")
        lines += ["# HELP stream_rec_stage_seconds_total Time spent per pipeline stage.",
                  "# TYPE stream_rec_stage_seconds_total counter"]
        for stage, seconds in self.stages.seconds.items():
            lines.append(f'stream_rec_stage_seconds_total{{stage="{stage}"}} {seconds:.6f}')
        counter("stage_events_total", self.stages.events, "Events the stage times cover.")
        name = "stream_rec_recommendation_latency_ms"
        lines += [f"# HELP {name} Time from taking an event off the topic to its list, in ms.",
                  f"# TYPE {name} histogram"]
        cumulative = 0
        for bound, count in zip(self.latency_ms.buckets, self.latency_ms.counts, strict=False):
            cumulative += count
            lines.append(f'{name}_bucket{{le="{bound:g}"}} {cumulative}')
        lines += [f'{name}_bucket{{le="+Inf"}} {self.latency_ms.n}',
                  f"{name}_sum {self.latency_ms.total:.3f}", f"{name}_count {self.latency_ms.n}"]
        lines += ["# HELP stream_rec_gc_collections_total Python garbage collections run, by "
                  "generation (2 = full; see stream_rec/worker/heap.py).",
                  "# TYPE stream_rec_gc_collections_total counter"]
        for generation, count in enumerate(collections_by_generation()):
            lines.append(f'stream_rec_gc_collections_total{{generation="{generation}"}} {count}')
        lines += ["# HELP stream_rec_model_info The model version being served.",
                  "# TYPE stream_rec_model_info gauge",
                  f'stream_rec_model_info{{version="{self.model_version or "none"}"}} 1',
                  "# HELP stream_rec_model_servable 1 while a model serves, 0 while lists are "
                  "fallback lists (the reason: stream_rec_model_unservable_info, /health/).",
                  "# TYPE stream_rec_model_servable gauge",
                  f"stream_rec_model_servable {1 if self.model_version else 0}"]
        if self.model_unservable:
            lines += ["# HELP stream_rec_model_unservable_info Why no model serves.",
                      "# TYPE stream_rec_model_unservable_info gauge",
                      f'stream_rec_model_unservable_info{{reason="{self.model_unservable}"}} 1']
        lines += ["# HELP stream_rec_model_arm_resident_bytes Resident memory a model version "
                  "served to an experiment arm (beside the main model) added when it loaded.",
                  "# TYPE stream_rec_model_arm_resident_bytes gauge"]
        for version, size in sorted(self.arm_model_bytes.items()):
            lines.append(f'stream_rec_model_arm_resident_bytes{{version="{_label(version)}"}} '
                         f"{size}")
        lines += ["# HELP stream_rec_consumer_lag Events not yet processed, per partition.",
                  "# TYPE stream_rec_consumer_lag gauge"]
        for tp, lag in sorted(self.consumer_lag.items()):
            lines.append(f"stream_rec_consumer_lag{{{_tp_labels(tp)}}} {lag}")
        lines += ["# HELP stream_rec_commit_stalled Offsets missing before a partition's first "
                  "acked one, holding back its commits (docs/operations.md).",
                  "# TYPE stream_rec_commit_stalled gauge"]
        for tp, missing in sorted(self.commit_stalls.items()):
            lines.append(f"stream_rec_commit_stalled{{{_tp_labels(tp)}}} {missing}")
        lines += _online_lines(self.online)
        return "\n".join(lines) + "\n"


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


def _online_lines(online: dict[str, dict[str, float]]) -> list[str]:
    """Per-group online figures of this worker's partitions (sum over workers for totals)."""
    lines: list[str] = []
    for figure, help_text in ONLINE_HELP.items():
        name = f"stream_rec_online_{figure}_total"
        lines += [f"# HELP {name} {help_text}, by the model, policy and experiment arm of the "
                  "list, over this worker's partitions.", f"# TYPE {name} counter"]
        for group, figures in sorted(online.items()):
            labels = ",".join(f'{k}="{_label(v)}"' for k, v in split_group(group).items())
            lines.append(f"{name}{{{labels}}} {figures.get(figure, 0.0):g}")
    name = "stream_rec_online_distinct_items"
    lines += [f"# HELP {name} Distinct items impressed (HyperLogLog estimate, about 3 % off), "
              "by the model, policy and experiment arm of the list, over this worker's "
              "partitions (workers' figures overlap: they do not add up).",
              f"# TYPE {name} gauge"]
    for group, figures in sorted(online.items()):
        if "distinct_items" in figures:
            labels = ",".join(f'{k}="{_label(v)}"' for k, v in split_group(group).items())
            lines.append(f"{name}{{{labels}}} {figures['distinct_items']:g}")
    return lines


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def _tp_labels(tp: str) -> str:
    """Prometheus labels for a "topic:partition" key."""
    topic, _, partition = tp.rpartition(":")
    return f'topic="{topic}",partition="{partition}"'


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
