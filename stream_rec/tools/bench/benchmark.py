"""One benchmark run: the pipeline and the two passthrough baselines, same events, same broker.

Each target gets its own topics with the same partition count, and the same event sequence
(same keys, so the same partitions carry the same load). Per target: start the process, send a
warm-up and wait for all of it (assignment done, caches warm), then the throughput phase (all
events as fast as the client can send; the clock runs from the first send to the last output),
and for the pipeline a latency phase at the offered rate. Stage times come from the worker's
/metrics around the throughput phase; memory from /proc at the end.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stream_rec.config import Settings
from stream_rec.tools.bench.harness import Flow
from stream_rec.tools.bench.live_swap import LiveSwap
from stream_rec.tools.bench.passthrough import AiokafkaPassthrough, FaustPassthrough
from stream_rec.tools.bench.pipeline import PipelineTarget, pipeline_settings
from stream_rec.tools.bench.probes import (
    Memory,
    StageTotals,
    parse_counter,
    parse_stage_totals,
    read_cpu_seconds,
    read_memory,
    read_metrics_text,
)
from stream_rec.tools.bench.processes import Target
from stream_rec.tools.bench.profiler import Profiler
from stream_rec.tools.bench.report import bench_result
from stream_rec.tools.bench.startup_log import (
    process_start_wall,
    read_log,
    startup_times,
)
from stream_rec.tools.bench.stats import latency_summary, per_second
from stream_rec.tools.bench.topics import create_topics, run_marker
from stream_rec.tools.bench.workload import DEFAULT_DATA, BenchEvent, ShopperStream, Workload
from stream_rec.topics import wait_for_topics

log = logging.getLogger(__name__)
TARGETS = ("pipeline", "faust_passthrough", "aiokafka_passthrough")
CURVE_SHARES = (0.25, 0.5, 0.75, 0.9)


@dataclass(frozen=True)
class BenchPlan:
    """What to measure. Counts are events; rates events/s; times seconds."""

    events: int = 20_000
    rate: float = 1000.0
    latency_events: int | None = None  # None: as many as ``events``
    warmup_events: int = 500
    concurrency: int = 1000  # shoppers with an open session at any moment
    data: str = DEFAULT_DATA
    seed: int = 0
    targets: tuple[str, ...] = TARGETS
    profile: Path | None = None  # py-spy output for the pipeline's throughput phase
    # The pipeline's latency at several offered rates, events/s; "auto": at CURVE_SHARES of
    # the throughput phase's rate (its capacity), measured in the same run.
    latency_curve: tuple[float, ...] | str | None = None
    # Last, ask the worker to swap to a copy of its model while traffic flows at ``rate``
    # (``live_swap``): its peak memory and the latency meanwhile.
    hot_swap: bool = False

    def phase_timeout_s(self, n: int) -> float:
        """Generous: a phase fails only if the target manages under ~50 events/s."""
        return 300.0 + n / 50.0


@dataclass
class TargetRun:
    """What one target did. ``checks`` is the accounting that makes the numbers trustworthy."""

    events_per_s: float | None = None
    latencies_ms: list[float] = field(default_factory=list)
    stages: dict[str, StageTotals | None] = field(default_factory=dict)
    memory: Memory | None = None
    health: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, int] = field(default_factory=dict)
    cpu_ms_per_event: float | None = None  # the target process's CPU time, throughput phase
    # the latency curve: (offered rate, events/s handled, latencies in ms) per rate
    curve: list[tuple[float, float | None, list[float]]] = field(default_factory=list)
    # seconds from the process's start to its catalog read, model served, /health ready
    startup: dict[str, float | None] = field(default_factory=dict)
    swap: dict[str, Any] | None = None  # the hot swap under traffic (``plan.hot_swap``)
    # the latency phase's latencies in parts (``Ledger.latency_parts_ms``), when the outputs
    # say when and how fast the target made them (the pipeline's lists do)
    latency_parts: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class BenchRun:
    """A finished benchmark: the JSON result and what each target did."""

    result: dict[str, Any]
    targets: dict[str, TargetRun]


def _stderr(line: str) -> None:
    print(f"bench: {line}", file=sys.stderr, flush=True)


def curve_rates(plan: BenchPlan, capacity: float | None) -> list[float]:
    """The offered rates of the latency curve (none without ``plan.latency_curve``)."""
    if plan.latency_curve is None:
        return []
    if plan.latency_curve == "auto":
        return [round(share * capacity, 1) for share in CURVE_SHARES] if capacity else []
    return [float(r) for r in plan.latency_curve]


async def drive(target: Target, bootstrap: str, warmup: Sequence[BenchEvent],
                measured: Sequence[BenchEvent], at_rate: Sequence[BenchEvent], rate: float,
                plan: BenchPlan, probe: Callable[[str], None] = lambda _: None,
                more: Callable[[int, str], list[BenchEvent]] | None = None,
                swap: Callable[[], dict[str, Any]] | None = None) -> TargetRun:
    """Warm-up, throughput phase, then (if ``at_rate``) the latency phase, and (with ``more``
    to draw events from) the latency curve and the hot swap (``swap``), on one ``Flow``."""
    run = TargetRun()
    curve_events: list[BenchEvent] = []
    async with Flow(bootstrap, target.in_topic, target.out_topic, target.partitions) as flow:
        await flow.run_phase(warmup, None, plan.phase_timeout_s(len(warmup)),
                             f"{target.name} warm-up", target.check_alive)
        probe("before")
        await flow.run_phase(measured, None, plan.phase_timeout_s(len(measured)),
                             f"{target.name} throughput", target.check_alive)
        probe("after_throughput")
        ids = [e.event_id for e in measured]
        run.events_per_s = per_second(len(ids), flow.ledger.span_s(ids))
        if at_rate:
            await flow.run_phase(at_rate, rate, plan.phase_timeout_s(len(at_rate)),
                                 f"{target.name} latency @ {rate:g}/s", target.check_alive)
            probe("end")
            run.latencies_ms = flow.ledger.latencies_ms(e.event_id for e in at_rate)
            run.latency_parts = flow.ledger.latency_parts_ms(e.event_id for e in at_rate)
        draw = more
        for offered in curve_rates(plan, run.events_per_s) if draw is not None else []:
            assert draw is not None
            # Enough events for a stable p99 at any rate, and at least ~10 s of it.
            phase = draw(max(plan.latency_events or 0, int(offered * 10), 1000),
                         f"curve-{offered:g}")
            await flow.run_phase(phase, offered, plan.phase_timeout_s(len(phase)),
                                 f"{target.name} latency curve @ {offered:g}/s",
                                 target.check_alive)
            phase_ids = [e.event_id for e in phase]
            run.curve.append((offered, per_second(len(phase_ids),
                                                  flow.ledger.span_s(phase_ids)),
                              flow.ledger.latencies_ms(phase_ids)))
            curve_events += phase
        if swap is not None and draw is not None:
            run.swap, swap_events = await swap_under_traffic(flow, target, swap, draw, plan)
            curve_events += swap_events
        ledger = flow.ledger
        every = [*warmup, *measured, *at_rate, *curve_events]
        run.checks = {"sent": len(ledger.sent), "matched": len(ledger.arrived),
                      "missing": len(ledger.missing(e.event_id for e in every)),
                      "duplicates": ledger.duplicates, "unknown": ledger.unknown}
    return run


async def swap_under_traffic(flow: Flow, target: Target, swap: Callable[[], dict[str, Any]],
                             draw: Callable[[int, str], list[BenchEvent]], plan: BenchPlan
                             ) -> tuple[dict[str, Any], list[BenchEvent]]:
    """Run ``swap`` (blocking) in a thread while events flow at ``plan.rate`` in rounds of
    about two seconds, until it returns and one more round has passed (the first batches on
    the new model build its caches); its result with the latency of those events and the
    resident memory after them."""
    task = asyncio.ensure_future(asyncio.to_thread(swap))
    events: list[BenchEvent] = []

    async def one_round() -> None:
        phase = draw(max(int(plan.rate * 2), 50), "swap")
        await flow.run_phase(phase, plan.rate, plan.phase_timeout_s(len(phase)),
                             f"{target.name} during a hot swap", target.check_alive)
        events.extend(phase)

    try:
        while not task.done():
            await one_round()
        await one_round()
    finally:
        if not task.done():  # a failed round: the thread ends at its own timeout
            task.cancel()
    result = dict(await task)
    result["events"] = len(events)
    result["latency_ms"] = latency_summary(
        flow.ledger.latencies_ms(e.event_id for e in events))
    if target.pid is not None:
        result["rss_after_mb"] = round(read_memory(target.pid).rss_mb, 1)
    _stderr(f"{target.name}: hot swap {result}")
    return result, events


def mean_batch(before: str | None, after: str | None) -> float | None:
    """Events per ``take_events`` batch between two /metrics pages (None if not exported)."""
    if before is None or after is None:
        return None
    counts = [parse_counter(page, name) for page in (before, after)
              for name in ("stream_rec_events_in_total", "stream_rec_batches_total")]
    if any(c is None for c in counts):
        return None
    events_before, batches_before, events_after, batches_after = (float(c or 0) for c in counts)
    batches = batches_after - batches_before
    return (events_after - events_before) / batches if batches > 0 else None


def measure(target: Target, bootstrap: str, warmup: Sequence[BenchEvent],
            measured: Sequence[BenchEvent], at_rate: Sequence[BenchEvent], plan: BenchPlan,
            base_url: Callable[[], str | None] = lambda: None,
            profiler: Profiler | None = None,
            more: Callable[[int, str], list[BenchEvent]] | None = None,
            on_started: Callable[[], None] = lambda: None,
            swap: Callable[[], dict[str, Any]] | None = None) -> TargetRun:
    """Start ``target``, drive it, read its memory, stop it (always); ``on_started`` runs
    as soon as ``target.start()`` returns (the target is up)."""
    pages: dict[str, str | None] = {}
    cpu: dict[str, float | None] = {}

    def probe(moment: str) -> None:
        url = base_url()
        pages[moment] = read_metrics_text(url) if url else None
        cpu[moment] = read_cpu_seconds(target.pid) if target.pid is not None else None
        if profiler is not None and target.pid is not None:
            if moment == "before":
                profiler.start(target.pid)
            elif moment == "after_throughput":
                profiler.stop()
                _stderr(f"profile of the throughput phase: {profiler.path}")

    _stderr(f"starting {target.name} (load average {os.getloadavg()[0]:.1f} on "
            f"{os.cpu_count()} CPUs)")
    try:
        target.start()
        on_started()
        run = asyncio.run(drive(target, bootstrap, warmup, measured, at_rate, plan.rate, plan,
                                probe, more, swap))
        if target.pid is not None:
            run.memory = read_memory(target.pid)
    finally:
        if profiler is not None:
            profiler.stop()
        target.stop()
    run.stages = {k: parse_stage_totals(v) if v else None for k, v in pages.items()}
    batch = mean_batch(pages.get("before"), pages.get("after_throughput"))
    if batch is not None:
        _stderr(f"{target.name}: {batch:.1f} events per batch in the throughput phase")
    before, after = cpu.get("before"), cpu.get("after_throughput")
    if before is not None and after is not None and run.events_per_s:
        run.cpu_ms_per_event = round((after - before) * 1000.0 / len(measured), 3)
    _stderr(f"{target.name}: {run.events_per_s} events/s, {run.cpu_ms_per_event} ms CPU per "
            f"event in its process; checks {run.checks}")
    return run


def _measure_pipeline(pipeline: PipelineTarget, bootstrap: str, warmup: Sequence[BenchEvent],
                      measured: Sequence[BenchEvent], at_rate: Sequence[BenchEvent],
                      plan: BenchPlan,
                      more: Callable[[int, str], list[BenchEvent]] | None = None) -> TargetRun:
    profiler = Profiler(plan.profile) if plan.profile is not None else None
    moments: dict[str, float | None] = {}

    def started() -> None:  # the worker is healthy now; its start time is in /proc
        moments["healthy"] = time.time()
        moments["started"] = (process_start_wall(pipeline.pid) if pipeline.pid is not None
                              else None)

    swap = (LiveSwap(pipeline.settings, lambda: pipeline.pid,
                     lambda: pipeline.worker.get_json("/health/"))
            if plan.hot_swap else None)
    run = measure(pipeline, bootstrap, warmup, measured, at_rate, plan,
                  base_url=lambda: pipeline.base_url, profiler=profiler, more=more,
                  on_started=started, swap=swap)
    run.health = pipeline.health
    run.startup = startup_times(read_log(pipeline.worker.log_path),
                                pipeline.settings.items_topic, moments.get("started"),
                                moments.get("healthy"))
    _stderr(f"pipeline start-up, seconds from the worker process's start: {run.startup}")
    return run


def run_benchmark(plan: BenchPlan, settings: Settings, workload: Workload, run_id: str,
                  work_dir: Path, registry_dir: Path) -> BenchRun:
    """Measure every target in ``plan.targets``; the caller owns topics and clean-up."""
    stream = ShopperStream(workload, run_id, plan.concurrency, plan.seed)
    warmup = stream.take(plan.warmup_events, "warmup")
    measured = stream.take(plan.events, "throughput")
    at_rate = stream.take(plan.latency_events if plan.latency_events is not None
                          else plan.events, "latency")
    marker = run_marker(run_id)
    runs: dict[str, TargetRun] = {}
    pipeline_cfg = pipeline_settings(settings, f"{marker}-pipeline", work_dir, registry_dir)
    for name in plan.targets:
        if name == "pipeline":
            runs[name] = _measure_pipeline(PipelineTarget(pipeline_cfg, workload, work_dir),
                                           settings.broker, warmup, measured, at_rate, plan,
                                           more=stream.take)
            continue
        target: Target
        if name == "faust_passthrough":
            target = FaustPassthrough(settings, f"{marker}-faust", work_dir)
        elif name == "aiokafka_passthrough":
            target = AiokafkaPassthrough(settings, f"{marker}-aiokafka", work_dir)
        else:
            raise ValueError(f"unknown bench target {name!r}; choose from {TARGETS}")
        create_topics(settings, [target.in_topic, target.out_topic], target.partitions)
        wait_for_topics(settings, [target.in_topic, target.out_topic])
        runs[name] = measure(target, settings.broker, warmup, measured, (), plan)
    result = bench_result(plan, pipeline_cfg, runs, catalog_size=len(workload.catalog))
    return BenchRun(result, runs)
