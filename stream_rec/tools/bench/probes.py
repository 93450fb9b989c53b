"""What the bench reads from a running worker: memory from /proc, stage times from /metrics.

The parsers are pure (text in, numbers out) so they are unit-tested; the readers are thin.
The worker's stage counters are optional: a worker without them gives ``None`` stages, never
an error, so the bench runs against any worker version.
"""

from __future__ import annotations

import os
import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path

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


_STAGE_LINE = re.compile(r'^stream_rec_stage_seconds_total\{stage="([^"]+)"\}\s+(\S+)$')
_EVENTS_LINE = re.compile(r"^stream_rec_stage_events_total\s+(\S+)$")


def parse_stage_totals(metrics_text: str) -> StageTotals | None:
    """The stage counters of a Prometheus text page; None when the worker exports none."""
    seconds: dict[str, float] = {}
    events: float | None = None
    for line in metrics_text.splitlines():
        if m := _STAGE_LINE.match(line):
            seconds[m.group(1)] = float(m.group(2))
        elif m := _EVENTS_LINE.match(line):
            events = float(m.group(1))
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


_LAG_LINE = re.compile(r'^stream_rec_consumer_lag\{topic="([^"]+)",partition="[^"]*"\}\s+(\S+)$')


def parse_consumer_lag(metrics_text: str, topic: str) -> int | None:
    """The worker's own lag gauge summed over ``topic``'s partitions; None if not exported."""
    values = [float(m.group(2)) for line in metrics_text.splitlines()
              if (m := _LAG_LINE.match(line)) and m.group(1) == topic]
    return int(sum(values)) if values else None


def parse_counter(metrics_text: str, name: str) -> float | None:
    """The value of an unlabelled counter or gauge ``name``; None when the page lacks it."""
    for line in metrics_text.splitlines():
        metric, _, value = line.partition(" ")
        if metric == name:
            return float(value)
    return None


def read_metrics_text(base_url: str, timeout_s: float = 10.0) -> str | None:
    """The worker's /metrics page, or None when it does not answer."""
    try:
        with urllib.request.urlopen(base_url + "/metrics/", timeout=timeout_s) as response:
            return str(response.read().decode("utf-8", "replace"))
    except (OSError, ValueError):
        return None
