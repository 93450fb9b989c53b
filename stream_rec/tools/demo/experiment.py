"""The demo page's experiment panel: the report of the running A/B experiment, kept fresh.

Every few seconds a thread reads the experiments topic and, when an experiment runs, its
report (``stream-rec experiment report ID --json`` computes the same), and keeps the latest
answer for ``GET /api/experiment``: ``{"running": false}``, ``{"running": true, "report":
{...}}``, or ``{"running": false, "error": "..."}`` when reading failed. The reading function
is passed in, so the sampler runs without Kafka in the unit tests.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import Any

from stream_rec.config import Settings

log = logging.getLogger(__name__)

# Reads what the panel shows: {"running": False} or {"running": True, "report": {...}}.
ExperimentReader = Callable[[], dict[str, Any]]
NOT_RUNNING: dict[str, Any] = {"running": False}


def read_running_experiment(settings: Settings) -> dict[str, Any]:
    """The report of the first running experiment (by id), or ``{"running": False}``."""
    from stream_rec.commands.experiment import experiment_report
    from stream_rec.topics import read_experiments

    running = [e for e in read_experiments(settings).values() if e.running]
    if not running:
        return dict(NOT_RUNNING)
    first = min(running, key=lambda e: e.id)
    return {"running": True, "report": experiment_report(settings, first.id)}


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinity made None (JSON has neither; a browser's
    ``JSON.parse`` refuses the ``NaN`` that Python's ``json`` writes)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


class ExperimentSampler:
    """Calls ``read`` every ``every_s`` seconds in a thread and keeps its latest answer (or
    the error it raised, as text); no exception stops the thread."""

    def __init__(self, read: ExperimentReader, every_s: float = 5.0) -> None:
        self.read = read
        self.every_s = every_s
        self._latest: dict[str, Any] = dict(NOT_RUNNING)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-experiment", daemon=True)

    @classmethod
    def for_settings(cls, settings: Settings, every_s: float = 5.0) -> ExperimentSampler:
        """A sampler that reads the experiments topic and the workers' changelogs."""
        return cls(lambda: read_running_experiment(settings), every_s)

    def start(self) -> ExperimentSampler:
        """Start sampling (the first sample at once)."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling; waits for a read in progress for up to 10 s."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def latest(self) -> dict[str, Any]:
        """What ``GET /api/experiment`` answers: the latest sample."""
        with self._lock:
            return dict(self._latest)

    def sample_once(self) -> None:
        """Read once and keep the answer, or the error as text."""
        try:
            answer = self.read()
            if not isinstance(answer, dict):
                raise TypeError(f"the experiment reader returned {type(answer).__name__}")
            report = answer.get("report")
            if answer.get("running") and isinstance(report, dict):
                latest: dict[str, Any] = {"running": True, "report": json_safe(report)}
            else:
                latest = dict(NOT_RUNNING)
        except Exception as exc:  # Kafka away, topic missing, experiment just stopped: say so
            log.debug("experiment report not read: %s", exc, exc_info=True)
            latest = {"running": False, "error": str(exc) or type(exc).__name__}
        with self._lock:
            self._latest = latest

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample_once()
            except Exception:  # sample_once catches everything; this is the last guard
                log.exception("experiment sampler")
            self._stop.wait(self.every_s)
