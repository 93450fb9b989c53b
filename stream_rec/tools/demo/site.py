"""What the demo page shows, gathered from the worker's read-only HTTP API and the traffic.

The page talks only to the demo process; the demo reads the worker's ``/metrics/``,
``/health/``, ``/users/{id}/state/`` and ``/users/{id}/recommendations/`` and writes nothing
there. A click from the page goes to Kafka as a storefront event, like any shop's would.
"""

from __future__ import annotations

import collections
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

from stream_rec.config import Settings
from stream_rec.tools.demo.api import ItemTable, click_event, shopper_view
from stream_rec.tools.demo.experiment import NOT_RUNNING, ExperimentSampler
from stream_rec.tools.demo.figures import MetricsSample, parse_metrics, window_figures
from stream_rec.tools.demo.traffic import EventSender, Shoppers, now_ms

ACTIVE_WINDOW_MS = 60_000  # a shopper with no event for a minute leaves the list


class WorkerClient:
    """GETs on the worker's HTTP API (with the bearer token when one is set)."""

    def __init__(self, settings: Settings) -> None:
        self.base_url = f"http://{settings.web_host}:{settings.web_port}"
        self.token = settings.http_token.reveal()

    def get(self, path: str) -> bytes | None:
        """The body, or None on 404 (no such shopper yet)."""
        request = urllib.request.Request(self.base_url + path)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def get_json(self, path: str) -> Any:
        body = self.get(path)
        return None if body is None else json.loads(body)


class FigureSampler:
    """Scrapes ``/metrics/`` every second in a thread and keeps the last ``window_s``."""

    def __init__(self, worker: WorkerClient, every_s: float = 1.0, window_s: float = 10.0):
        self.worker = worker
        self.every_s = every_s
        self.samples: collections.deque[MetricsSample] = collections.deque(
            maxlen=int(window_s / every_s) + 1)
        self.health: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-figures", daemon=True)

    def start(self) -> FigureSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def figures(self) -> dict[str, Any]:
        with self._lock:
            figures = window_figures(list(self.samples))
            health = dict(self.health)
        figures["worker_status"] = health.get("status", "unreachable")
        figures["model_version"] = figures["model_version"] or health.get("model_version")
        return figures

    def sample_once(self) -> None:
        try:
            text = (self.worker.get("/metrics/") or b"").decode()
            health = self._health()
        except (OSError, ValueError):
            return  # the worker is starting or stopping; the next second will tell
        with self._lock:
            self.samples.append(parse_metrics(text, time.monotonic()))
            self.health = health

    def _health(self) -> dict[str, Any]:
        try:
            body = self.worker.get_json("/health/")
        except urllib.error.HTTPError as exc:  # 503 while starting still has a body
            body = json.loads(exc.read() or b"{}")
        return body if isinstance(body, dict) else {}

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample_once()
            self._stop.wait(self.every_s)


class DemoSite:
    """The page's API: overview figures, one shopper's panel, the running experiment, and
    clicks."""

    def __init__(self, settings: Settings, worker: WorkerClient, sampler: FigureSampler,
                 sender: EventSender, shoppers: Shoppers, items: ItemTable,
                 data_name: str, experiments: ExperimentSampler | None = None) -> None:
        self.settings = settings
        self.worker = worker
        self.sampler = sampler
        self.experiments = experiments
        self.sender = sender
        self.shoppers = shoppers
        self.items = items
        self.data_name = data_name

    def overview(self) -> dict[str, Any]:
        return {**self.sampler.figures(), "policy": self.settings.rerank_policy,
                "data": self.data_name,
                "shoppers": self.shoppers.active(24, now_ms() - ACTIVE_WINDOW_MS)}

    def experiment(self) -> dict[str, Any]:
        """The running experiment's report, as last read (``{"running": False}`` without)."""
        if self.experiments is None:
            return dict(NOT_RUNNING)
        return self.experiments.latest()

    def shopper(self, user_id: str) -> dict[str, Any]:
        quoted = urllib.parse.quote(user_id, safe="")
        state = self.worker.get_json(f"/users/{quoted}/state/")
        recs = self.worker.get_json(f"/users/{quoted}/recommendations/")
        return shopper_view(user_id, state, recs, self.items)

    def click(self, body: bytes) -> dict[str, Any]:
        """Validate, then send; raises ``BadRequest`` for the page to show."""
        event = click_event(body, self.items, f"page:{uuid.uuid4().hex}", now_ms())
        self.sender.send_click(event)
        return {"event_id": event["event_id"], "user_id": event["user_id"],
                "item_id": event["item_id"], "type": event["type"]}
