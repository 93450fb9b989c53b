"""The measured pipeline: one real worker process (`stream-rec worker`) on the run's topics.

The worker is configured only through ``STREAM_REC_*`` variables (``WorkerProcess``), exactly
as an operator runs it, with the bench's broker, topics, consumer group, state folder and model
registry; every other setting comes from the caller's environment, so a tuning experiment is
``STREAM_REC_BATCH_MAX_EVENTS=512 stream-rec bench ...``.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from stream_rec.config import Settings
from stream_rec.connection import kafka_python_config
from stream_rec.offline.progress import Progress
from stream_rec.tools.bench.harness import BenchError
from stream_rec.tools.bench.processes import free_port
from stream_rec.tools.bench.workload import Workload, catalog_messages
from stream_rec.tools.worker_process import WorkerProcess
from stream_rec.topics import ensure_topics, wait_for_topics


def pipeline_settings(settings: Settings, prefix: str, work_dir: Path,
                      registry_dir: Path) -> Settings:
    """The run's own topics, group and state; the caller's settings for everything else."""
    return settings.with_overrides(
        app_id=prefix, events_topic=f"{prefix}.events", dlq_topic=f"{prefix}.dlq",
        items_topic=f"{prefix}.items", recommendations_topic=f"{prefix}.recs",
        model_updates_topic=f"{prefix}.models", experiments_topic=f"{prefix}.experiments",
        state_dir=str(work_dir / f"{prefix}-state"),
        registry_dir=str(registry_dir), web_host="127.0.0.1", web_port=free_port())


def publish_catalog(settings: Settings, workload: Workload) -> int:
    """Every item of the workload into the (compacted) catalog topic; returns the count."""
    producer = KafkaProducer(**kafka_python_config(settings), linger_ms=20, acks="all")
    progress = Progress(len(workload.catalog), "bench: catalog", unit="items")
    try:
        for key, value in catalog_messages(workload):
            producer.send(settings.items_topic, key=key, value=value)
            progress.update()
        producer.flush()
    finally:
        producer.close()
        progress.close()
    return len(workload.catalog)


HEALTH_EVERY_S = 2.0
FAILING_FOR_S = 30.0


def _error_body(exc: Exception) -> Any:
    """The JSON body of an HTTP error response (/health/ answers 503 with one), else None."""
    if isinstance(exc, urllib.error.HTTPError):
        try:
            return json.loads(exc.read())
        except (OSError, ValueError):
            return None
    return None


class PipelineTarget:
    """The real worker: start it on a published catalog, wait for /health, stop it."""

    name = "pipeline"

    def __init__(self, settings: Settings, workload: Workload, work_dir: Path) -> None:
        self.settings = settings
        self.workload = workload
        self.in_topic = settings.events_topic
        self.out_topic = settings.recommendations_topic
        self.partitions = settings.partitions
        self.worker = WorkerProcess(settings, work_dir / "pipeline-worker.log")
        self.health: dict[str, Any] = {}
        self._failing_since: float | None = None
        self._failure = ""
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch_health, daemon=True,
                                         name="bench-health-watch")

    @property
    def pid(self) -> int | None:
        return self.worker.proc.pid if self.worker.proc is not None else None

    @property
    def base_url(self) -> str:
        return self.worker.base_url

    def start(self) -> None:
        ensure_topics(self.settings)
        wait_for_topics(self.settings, [self.settings.items_topic, self.in_topic,
                                        self.out_topic])
        publish_catalog(self.settings, self.workload)
        try:
            self.worker.start(wait_s=0)
            self.health = self.worker.wait_healthy(600.0)
        except (RuntimeError, TimeoutError) as exc:
            raise BenchError(f"the worker did not become healthy: {exc}") from exc
        self._watcher.start()

    def check_alive(self) -> None:
        """Raise when the worker exited, or when its /health/ has said ``failing`` (its
        events agent crash-looping) for ``FAILING_FOR_S``: its lists would never come."""
        proc = self.worker.proc
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"the worker exited with {proc.returncode}; its log ends:\n"
                             f"{self.worker.log_tail(3000)}")
        since = self._failing_since
        if since is not None and time.monotonic() - since >= FAILING_FOR_S:
            raise BenchError(f"the worker's events agent keeps failing ({self._failure}); "
                             f"its log ends:\n{self.worker.log_tail(3000)}")

    def _watch_health(self) -> None:
        """On its own thread, so that a slow answer never holds up the client's clock."""
        while not self._stopping.wait(HEALTH_EVERY_S):
            try:
                body = self.worker.get_json("/health/")
            except (OSError, ValueError) as exc:  # a 503 comes back as an HTTPError
                body = _error_body(exc)
            if isinstance(body, dict) and body.get("status") == "failing":
                self._failure = str(body.get("detail") or body.get("reason"))
                self._failing_since = self._failing_since or time.monotonic()
            else:
                self._failing_since = None

    def stop(self) -> None:
        self._stopping.set()
        self.worker.stop()
