"""How long a benchmarked worker took to start: read from its log and from /proc.

The worker logs, with a millisecond time stamp, when it has read the whole catalog topic
(``caught up with <items topic>``) and when its model serves (``now serving model version``).
Both are timed from the process's start (``/proc/<pid>/stat``), so they include the
interpreter's start and the imports (the same for every catalog size), and the catalog read
and the model load overlap (the model loads on a thread while the event loop reads the
catalog), so neither is the cost of its step alone: ``bench-core`` times those one by one.
"""

from __future__ import annotations

import os
import re
import time
from datetime import datetime
from pathlib import Path

STAMP = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})")
MODEL_SERVED = "now serving model version"


def process_start_wall(pid: int) -> float | None:
    """Epoch seconds at which process ``pid`` started (10 ms resolution); None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    # The command name (field 2) may hold spaces: count fields after its last ")".
    started_ticks = int(stat[stat.rindex(")") + 2:].split()[19])  # field 22, starttime
    return time.time() - (uptime - started_ticks / os.sysconf("SC_CLK_TCK"))


def read_log(path: Path) -> str:
    """A log file's whole text (empty when it cannot be read)."""
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def first_stamp(log_text: str, marker: str) -> float | None:
    """Epoch seconds of the first log line containing ``marker`` (local time stamps)."""
    for line in log_text.splitlines():
        if marker in line and (found := STAMP.search(line)):
            return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return None


def startup_times(log_text: str, items_topic: str, started: float | None,
                  healthy: float | None) -> dict[str, float | None]:
    """Seconds from the process's start to: the catalog read, the model serving, /health
    ready (None for what did not happen or was not seen)."""

    def since(moment: float | None) -> float | None:
        return None if moment is None or started is None else round(moment - started, 2)

    return {"catalog_read": since(first_stamp(log_text, f"caught up with {items_topic}")),
            "model_served": since(first_stamp(log_text, MODEL_SERVED)),
            "healthy": since(healthy)}
