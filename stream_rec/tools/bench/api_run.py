"""A `stream-rec bench-api` run: broker, one real worker, events at a fixed rate, HTTP cells.

Built from the end-to-end bench's pieces: the broker and model handling of ``runner``, the
worker of ``pipeline`` (own topics, published catalog, waits for /health), the event stream of
``workload`` and the ``Flow`` of ``harness`` that sends events on a schedule and matches every
recommendation to its event. The ``EventFeed`` runs that ``Flow`` on its own event loop in a
background thread for the whole run, so the worker takes events while it answers HTTP.

Per cell the worker's CPU time is read from /proc before and after; the CPU that events alone
use per second is measured first (``baseline_s`` with no requests), and what a cell used beyond
that, over its requests, is ``worker_cpu_ms_per_request``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import http.client
import json
import logging
import random
import sys
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from stream_rec.config import Settings
from stream_rec.tools.bench.api import (
    ApiPlan,
    RequestPools,
    ShownList,
    api_result,
    attributed_cpu_ms,
    cell_summary,
    endpoint,
    endpoint_cpu_ms,
    machine,
    request_paths,
    shown_list,
    user_path,
)
from stream_rec.tools.bench.api_client import get_json, run_cell
from stream_rec.tools.bench.benchmark import BenchPlan
from stream_rec.tools.bench.harness import BenchError, Flow
from stream_rec.tools.bench.pipeline import PipelineTarget, pipeline_settings
from stream_rec.tools.bench.probes import read_cpu_seconds
from stream_rec.tools.bench.runner import (
    BenchOptions,
    in_session,
    model_registry,
)
from stream_rec.tools.bench.stats import latency_summary
from stream_rec.tools.bench.topics import run_marker
from stream_rec.tools.bench.workload import DEFAULT_DATA, ShopperStream, Workload, load_workload

log = logging.getLogger(__name__)
SHOWN_SAMPLE = 200  # stored lists read for the filtered re-rank's category and exclude
T = TypeVar("T")
CHUNK_S = 0.25  # events sent per round of the feed, in seconds of the schedule


@dataclass(frozen=True)
class ApiBenchOptions:
    """Everything the command line chooses; see `stream-rec bench-api --help`."""

    plan: ApiPlan
    data: str = DEFAULT_DATA
    broker: str | None = None  # None: $STREAM_REC_BROKER, else the local broker
    registry: Path | None = None  # None: the cached bench model (trained if needed)
    use_model: bool = True
    train_epochs: int = 1
    keep: bool = False
    keep_broker: bool = False


def _stderr(line: str) -> None:
    print(f"bench-api: {line}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class FeedSnapshot:
    """What the feed has seen so far; counts and times on ``time.monotonic``."""

    shoppers: tuple[str, ...]  # shoppers with at least one list, in order of their first
    items: tuple[str, ...]  # items the events named
    sent: int
    arrived: int


class EventFeed:
    """Events into the worker at ``rate`` per second, from a thread, until ``stop()``."""

    def __init__(self, target: PipelineTarget, stream: ShopperStream, rate: float) -> None:
        self.target, self.stream, self.rate = target, stream, rate
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flow: Flow | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="bench-api-feed", daemon=True)
        self._user_of: dict[str, str] = {}  # event id -> user, until its list arrives
        self._shoppers: dict[str, None] = {}
        self._items: dict[str, None] = {}

    def start(self, timeout_s: float = 60.0) -> None:
        """Start the thread; return once its producer and consumer are connected."""
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise BenchError(f"the event feed did not connect within {timeout_s:.0f} s")
        self.check()

    def check(self) -> None:
        """Raise what stopped the feed, if anything did."""
        if self._error is not None:
            raise BenchError(f"the event feed stopped: {self._error!r}") from self._error
        if self._ready.is_set() and not self._thread.is_alive() and not self._stop.is_set():
            raise BenchError("the event feed stopped")

    def stop(self) -> None:
        """Stop sending, close the clients, join the thread."""
        self._stop.set()
        self._thread.join(60.0)

    def _main(self) -> None:
        try:
            asyncio.run(self._feed())
        except BaseException as exc:  # reported to the main thread by check()
            self._error = exc
        finally:
            self._ready.set()

    async def _feed(self) -> None:
        target = self.target
        async with Flow(target.settings.broker, target.in_topic, target.out_topic,
                        target.partitions) as flow:
            self._loop, self._flow = asyncio.get_running_loop(), flow
            self._ready.set()
            chunk = max(1, round(self.rate * CHUNK_S))
            next_due = time.monotonic()
            while not self._stop.is_set():
                events = self.stream.take(chunk, "api")
                for event in events:
                    self._user_of[event.event_id] = event.key.decode()
                    self._items[json.loads(event.value)["item_id"]] = None
                next_due = await flow.send_at_rate(events, self.rate, start=next_due)
                target.check_alive()
                self._collect()

    def _collect(self) -> None:
        assert self._flow is not None
        arrived = self._flow.ledger.arrived
        done = [e for e in self._user_of if e in arrived]
        for event_id in done:
            self._shoppers[self._user_of.pop(event_id)] = None

    async def _snapshot(self) -> FeedSnapshot:
        assert self._flow is not None
        self._collect()
        ledger = self._flow.ledger
        return FeedSnapshot(tuple(self._shoppers), tuple(self._items), len(ledger.sent),
                            len(ledger.arrived))

    async def _window(self, t0: float, t1: float) -> dict[str, Any]:
        assert self._flow is not None
        ledger = self._flow.ledger
        sent = [e for e, at in ledger.sent.items() if t0 <= at <= t1]
        arrived = sum(1 for at in ledger.arrived.values() if t0 <= at <= t1)
        return {"sent": len(sent), "arrived": arrived,
                "in_flight": len(ledger.sent) - len(ledger.arrived),
                "latency_ms": latency_summary(ledger.latencies_ms(sent)),
                "duplicates": ledger.duplicates, "unknown": ledger.unknown}

    def _call(self, coro: Coroutine[Any, Any, T], timeout_s: float = 30.0) -> T:
        self.check()
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout_s)
        except concurrent.futures.TimeoutError as exc:
            raise BenchError("the event feed did not answer") from exc

    def snapshot(self) -> FeedSnapshot:
        """Shoppers with lists and items seen so far, and the counts."""
        return self._call(self._snapshot())

    def window(self, t0: float, t1: float) -> dict[str, Any]:
        """Events due and lists arrived between ``t0`` and ``t1``, and the events' latency."""
        return self._call(self._window(t0, t1))


def run(options: ApiBenchOptions) -> dict[str, Any]:
    """Run the benchmark and return its JSON-able result (``runner.in_session``: a broker,
    clean-up, SIGTERM stops it cleanly)."""
    return in_session(options.broker, options.keep, options.keep_broker,
                      lambda settings, run_id, work_dir: _measure(options, settings, run_id,
                                                                  work_dir))


def _measure(options: ApiBenchOptions, settings: Settings, run_id: str,
             work_dir: Path) -> dict[str, Any]:
    plan = options.plan
    registry = model_registry(
        BenchOptions(plan=BenchPlan(data=options.data), registry=options.registry,
                     use_model=options.use_model, train_epochs=options.train_epochs),
        work_dir)
    _stderr(f"loading {options.data}")
    workload = load_workload(options.data, settings)
    _stderr(f"{len(workload.sessions)} sessions, {len(workload.catalog)} catalog items; "
            f"model registry {registry}")
    cfg = pipeline_settings(settings, f"{run_marker(run_id)}-api", work_dir, registry)
    target = PipelineTarget(cfg, workload, work_dir)
    stream = ShopperStream(workload, run_id, plan.open_sessions, plan.seed)
    try:
        _stderr(f"starting the worker (HTTP on {cfg.web_host}:{cfg.web_port})")
        target.start()
        _stderr(f"worker ready: model {target.health.get('model_version') or 'none (fallback)'}"
                f", {target.health.get('catalog_items')} catalog items")
        feed = EventFeed(target, stream, plan.rate)
        feed.start()
        try:
            return _cells(options, cfg, target, feed, workload, run_id)
        finally:
            feed.stop()
    finally:
        target.stop()


def _wait_for_shoppers(plan: ApiPlan, target: PipelineTarget, feed: EventFeed) -> None:
    deadline = time.monotonic() + plan.shoppers_timeout_s
    last = -1
    while True:
        snap = feed.snapshot()
        if len(snap.shoppers) >= plan.min_shoppers:
            _stderr(f"{len(snap.shoppers)} shoppers have lists ({snap.sent} events sent, "
                    f"{snap.arrived} lists back)")
            return
        if time.monotonic() > deadline:
            raise BenchError(f"only {len(snap.shoppers)} of {plan.min_shoppers} shoppers have "
                             f"a list after {plan.shoppers_timeout_s:.0f} s ({snap.sent} events "
                             f"sent, {snap.arrived} lists back)")
        if len(snap.shoppers) // 100 != last // 100:
            _stderr(f"waiting for shoppers with lists: {len(snap.shoppers)} of "
                    f"{plan.min_shoppers}")
            last = len(snap.shoppers)
        target.check_alive()
        time.sleep(0.5)


def _headers(settings: Settings) -> dict[str, str]:
    token = settings.http_token
    return {"Authorization": f"Bearer {token.reveal()}"} if token else {}


def _baseline_cpu_per_s(pid: int | None, seconds: float) -> float | None:
    if pid is None:
        return None
    before, t0 = read_cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    after, t1 = read_cpu_seconds(pid), time.monotonic()
    if before is None or after is None:
        return None
    return (after - before) / (t1 - t0)


def _read_shown(host: str, port: int, headers: dict[str, str], shoppers: tuple[str, ...],
                workload: Workload, rng: random.Random) -> list[ShownList]:
    sample = rng.sample(shoppers, min(SHOWN_SAMPLE, len(shoppers)))
    conn = http.client.HTTPConnection(host, port, timeout=10.0)
    shown = []
    try:
        for user in sample:
            body = get_json(host, port, user_path(user), headers, conn)
            if body is not None:
                shown.append(shown_list(user, body, workload.attributes))
    finally:
        conn.close()
    return shown


def _cells(options: ApiBenchOptions, cfg: Settings, target: PipelineTarget, feed: EventFeed,
           workload: Workload, run_id: str) -> dict[str, Any]:
    plan = options.plan
    host, port, headers = cfg.web_host, cfg.web_port, _headers(cfg)
    rng = random.Random(plan.seed)
    machine_info = machine()  # the load before this run's requests
    _wait_for_shoppers(plan, target, feed)
    _stderr(f"measuring the worker's CPU with events only for {plan.baseline_s:g} s")
    baseline = _baseline_cpu_per_s(target.pid, plan.baseline_s)
    snap = feed.snapshot()
    shown = _read_shown(host, port, headers, snap.shoppers, workload, rng)
    has_categories = any(s.category for s in shown)
    notes = []
    if not has_categories:
        notes.append("the dataset's items have no categories: rerank_filtered asks for "
                     "category=none, which no item passes (it measures the filters and an "
                     "empty re-rank)")
    pools = RequestPools(snap.shoppers, snap.items, shown,
                         new_prefix=f"never-seen-{run_id}")
    endpoints: dict[str, dict[str, dict[str, Any]]] = {}
    cpu_by_endpoint: dict[str, float | None] = {}
    t_start = time.monotonic()
    for name in plan.endpoints:
        spec = endpoint(name)
        snap = feed.snapshot()  # shoppers keep arriving: draw from all seen so far
        pools.shoppers, pools.items = snap.shoppers, snap.items
        if plan.warmup_requests:
            warm = run_cell(host, port, request_paths(spec, pools, plan.warmup_requests, rng),
                            1, plan.cell_timeout_s, headers)
            if warm.errors:
                _stderr(f"{name}: {warm.errors} of the warm-up requests failed "
                        f"({warm.statuses}); first: {warm.first_error}")
        cells: dict[str, dict[str, Any]] = {}
        usage: dict[str, tuple[float, float | None]] = {}
        for concurrency in plan.concurrency:
            paths = request_paths(spec, pools, plan.requests, rng)
            feed.check()
            cpu0 = read_cpu_seconds(target.pid) if target.pid is not None else None
            own0 = time.process_time()
            cell = run_cell(host, port, paths, concurrency, plan.cell_timeout_s, headers,
                            plan.request_rate)
            own = time.process_time() - own0
            cpu1 = read_cpu_seconds(target.pid) if target.pid is not None else None
            target.check_alive()
            cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
            done = len(cell.latencies_ms) + cell.errors
            summary = cell_summary(cell.latencies_ms, cell.errors, cell.wall_s,
                                   attributed_cpu_ms(cpu, cell.wall_s, baseline, done),
                                   own, cell.stopped_by_timeout)
            cells[str(concurrency)] = summary
            usage[str(concurrency)] = (cell.wall_s, cpu)
            _stderr(f"{name} x{concurrency}: {done} requests, {cell.errors} errors, "
                    f"{summary['requests_per_s']}/s, p50 {summary['p50_ms']} p99 "
                    f"{summary['p99_ms']} ms" + (f"; first error: {cell.first_error}"
                                                 if cell.first_error else ""))
        endpoints[name] = cells
        cpu_by_endpoint[name] = endpoint_cpu_ms(cells, usage, baseline)
    t_end = time.monotonic()
    window = feed.window(t_start, t_end)
    span = t_end - t_start
    offered = round(window["sent"] / span, 1) if span > 0 else None
    handled = round(window["arrived"] / span, 1) if span > 0 else None
    with contextlib.suppress(OSError):
        target.health = target.worker.get_json("/health/")
    machine_info["load_avg_1m_end"] = machine()["load_avg_1m"]
    return api_result(
        endpoints, offered, handled, cpu_by_endpoint, machine_info,
        rate=plan.rate, request_rate=plan.request_rate, requests_per_cell=plan.requests,
        concurrency=list(plan.concurrency),
        cell_timeout_s=plan.cell_timeout_s, measured_s=round(span, 1),
        event_latency_ms=window["latency_ms"], events_in_flight_end=window["in_flight"],
        worker_cpu_ms_per_s_events_only=None if baseline is None else round(baseline * 1000, 1),
        shoppers_with_lists=len(pools.shoppers), items_seen=len(pools.items),
        catalog_items=target.health.get("catalog_items"),
        model_version=target.health.get("model_version"), pool_kept=cfg.pool_kept,
        rerank_policy=cfg.rerank_policy, data=options.data, notes=notes)
