"""What the bench reads from a running worker: memory from /proc, stage times from /metrics.

The parsers are pure (text in, numbers out) so they are unit-tested; the readers are thin.
The worker's stage counters are optional: a worker without them gives ``None`` stages, never
an error, so the bench runs against any worker version.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from stream_rec.serving.stage_clock import STAGES


@dataclass(frozen=True)
class Memory:
    """Resident memory of one process, in MB (2**20 bytes)."""

    rss_mb: float  # VmRSS: now
    peak_mb: float  # VmHWM: the high-water mark since the process started


def parse_proc_status(text: str) -> Memory:
    """VmRSS and VmHWM from the text of ``/proc/<pid>/status`` (values in kB)."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in {"VmRSS", "VmHWM"}:
            values[name] = float(rest.split()[0]) / 1024.0
    if "VmRSS" not in values:
        raise ValueError("no VmRSS line: not a /proc/<pid>/status of a live process")
    return Memory(rss_mb=values["VmRSS"], peak_mb=values.get("VmHWM", values["VmRSS"]))


def read_memory(pid: int) -> Memory:
    """The process's memory now; raises OSError when it is gone."""
    return parse_proc_status(Path(f"/proc/{pid}/status").read_text())


def reset_peak(pid: int) -> bool:
    """Start the process's peak (VmHWM) again from its current resident size; False where
    Linux does not allow it (then peaks count from the start of the process)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def parse_cpu_seconds(stat_text: str, ticks_per_s: float) -> float:
    """User + system CPU seconds from the text of ``/proc/<pid>/stat``."""
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = stat_text[stat_text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / ticks_per_s  # utime, stime (fields 14, 15)


def read_cpu_seconds(pid: int) -> float | None:
    """CPU seconds the process has used so far; None when it is gone."""
    try:
        return parse_cpu_seconds(Path(f"/proc/{pid}/stat").read_text(),
                                 os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class StageTotals:
    """Cumulative stage seconds and the events they cover, as the worker exports them."""

    seconds: dict[str, float]
    events: float


def metric_samples(metrics_text: str) -> Iterator[Sample]:
    """The samples of a Prometheus text page, parsed by ``prometheus_client`` (labels in any
    order, escaped values decoded); on a malformed line it stops, with the families before."""
    try:
        for family in text_string_to_metric_families(metrics_text):
            yield from family.samples
    except ValueError:
        return


def parse_stage_totals(metrics_text: str) -> StageTotals | None:
    """The stage counters of a Prometheus text page; None when the worker exports none."""
    seconds: dict[str, float] = {}
    events: float | None = None
    for sample in metric_samples(metrics_text):
        if sample.name == "stream_rec_stage_seconds_total" and "stage" in sample.labels:
            seconds[sample.labels["stage"]] = float(sample.value)
        elif sample.name == "stream_rec_stage_events_total" and not sample.labels:
            events = float(sample.value)
    if not seconds or events is None:
        return None
    return StageTotals(seconds, events)


def stage_us_per_event(before: StageTotals | None, after: StageTotals | None
                       ) -> dict[str, float | None] | None:
    """Microseconds per event in each stage between two readings (the run in between).

    Every stage the bench reports is present; a stage the worker does not time is None.
    None as a whole when either reading is missing or no event was counted in between.
    """
    if before is None or after is None:
        return None
    events = after.events - before.events
    if events <= 0:
        return None
    out: dict[str, float | None] = {}
    for stage in STAGES:
        if stage in after.seconds:
            spent = after.seconds[stage] - before.seconds.get(stage, 0.0)
            out[stage] = round(spent / events * 1e6, 1)
        else:
            out[stage] = None
    return out


def parse_consumer_lag(metrics_text: str, topic: str) -> int | None:
    """The worker's own lag gauge summed over ``topic``'s partitions; None if not exported."""
    values = [float(sample.value) for sample in metric_samples(metrics_text)
              if sample.name == "stream_rec_consumer_lag" and sample.labels.get("topic") == topic]
    return int(sum(values)) if values else None


def parse_counter(metrics_text: str, name: str) -> float | None:
    """The value of an unlabelled counter or gauge ``name``; None when the page lacks it."""
    for sample in metric_samples(metrics_text):
        if sample.name == name and not sample.labels:
            return float(sample.value)
    return None


def read_metrics_text(base_url: str, timeout_s: float = 10.0) -> str | None:
    """The worker's /metrics page, or None when it does not answer."""
    try:
        with urllib.request.urlopen(base_url + "/metrics/", timeout=timeout_s) as response:
            return str(response.read().decode("utf-8", "replace"))
    except (OSError, ValueError):
        return None
