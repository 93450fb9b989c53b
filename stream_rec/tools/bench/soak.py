"""`stream-rec bench --soak DURATION --rate R`: the full pipeline at a fixed rate, for long.

Shares the benchmark's pieces (workload, ``Flow``, ``PipelineTarget``, probes). Every
``sample_s`` it records consumer lag two ways, the worker's memory, and the counts so far:

- ``committed_lag``: end offsets of the events topic minus the worker group's committed
  offsets, from the broker (what an operator's lag monitor sees; it includes up to one commit
  interval of events that are already processed);
- ``worker_lag``: the worker's own ``stream_rec_consumer_lag`` gauge from /metrics (events
  not yet processed: the log end minus the next offset to process, refreshed every 5 s);
- ``in_flight``: events sent minus recommendations received, from the client (exact).

Lag that stays bounded and RSS that stops growing after warm-up are what a soak must show.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from stream_rec.tools.bench.harness import Flow
from stream_rec.tools.bench.pipeline import PipelineTarget
from stream_rec.tools.bench.probes import parse_consumer_lag, read_memory, read_metrics_text
from stream_rec.tools.bench.stats import latency_summary
from stream_rec.tools.bench.workload import DEFAULT_DATA, ShopperStream, Workload


@dataclass(frozen=True)
class SoakPlan:
    """Durations in seconds, rate in events/s."""

    duration_s: float
    rate: float = 500.0
    sample_s: float = 10.0
    warmup_s: float | None = None  # None: a fifth of the run, at most 60 s
    warmup_events: int = 500
    concurrency: int = 1000
    data: str = DEFAULT_DATA
    seed: int = 0
    give_up_behind_s: float = 60.0  # stop early once the worker is this far behind the input

    @property
    def rss_warmup_s(self) -> float:
        return self.warmup_s if self.warmup_s is not None else min(60.0, self.duration_s / 5)


@dataclass
class Sample:
    """One soak measurement: events sent and answered, consumer lag, the worker's memory."""

    t_s: float
    events_in: int
    recommendations_out: int
    committed_lag: int | None
    worker_lag: int | None  # the worker's own gauge (events not yet processed)
    rss_mb: float | None

    @property
    def in_flight(self) -> int:
        return self.events_in - self.recommendations_out

    def to_dict(self) -> dict[str, Any]:
        return {"t_s": round(self.t_s, 1), "events_in": self.events_in,
                "recommendations_out": self.recommendations_out, "in_flight": self.in_flight,
                "committed_lag": self.committed_lag, "worker_lag": self.worker_lag,
                "rss_mb": None if self.rss_mb is None else round(self.rss_mb, 1)}


@dataclass
class SoakState:
    """What a soak has recorded so far, and why it stopped early if it did."""

    samples: list[Sample] = field(default_factory=list)
    rss_start_mb: float | None = None
    gave_up: str | None = None  # why the soak stopped early, if it did


async def committed_lag(admin: AIOKafkaAdminClient, flow: Flow, group: str, topic: str,
                        partitions: int, timeout_s: float = 3.0) -> int | None:
    """Messages of ``topic`` not yet committed by ``group`` (None if the broker won't say)."""
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    try:
        # Bounded: a slow group coordinator must not stretch the sampling interval.
        ends = await asyncio.wait_for(flow.consumer.end_offsets(tps), timeout_s)
        committed = await asyncio.wait_for(
            admin.list_consumer_group_offsets(group, partitions=tps), timeout_s)
    except Exception:  # a lag probe must never end a soak; the sample just has no lag
        return None
    total = 0
    for tp in tps:
        meta = committed.get(tp)
        done = meta.offset if meta is not None and meta.offset >= 0 else 0
        total += max(0, ends.get(tp, 0) - done)
    return total


def _worker_lag(target: PipelineTarget) -> int | None:
    text = read_metrics_text(target.base_url, timeout_s=2.0)
    return parse_consumer_lag(text, target.in_topic) if text is not None else None


def _rss(pid: int | None) -> float | None:
    try:
        return read_memory(pid).rss_mb if pid is not None else None
    except (OSError, ValueError):
        return None


async def soak_drive(target: PipelineTarget, plan: SoakPlan, stream: ShopperStream,
                     state: SoakState) -> dict[str, Any]:
    """Warm up, send events at the plan's rate for its duration, sample as it goes, drain."""
    settings = target.settings
    async with Flow(settings.broker, target.in_topic, target.out_topic,
                    target.partitions) as flow:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.broker)
        await admin.start()
        try:
            warmup = stream.take(plan.warmup_events, "warmup")
            await flow.run_phase(warmup, None, 600.0, "soak warm-up", target.check_alive)
            total = round(plan.duration_s * plan.rate)
            sent_ids: list[str] = []
            t0 = time.monotonic()

            async def sample() -> None:
                state.samples.append(Sample(
                    time.monotonic() - t0, len(sent_ids),
                    sum(1 for e in sent_ids if e in flow.ledger.arrived),
                    await committed_lag(admin, flow, settings.app_id, settings.events_topic,
                                        settings.partitions, min(3.0, plan.sample_s)),
                    await asyncio.to_thread(_worker_lag, target), _rss(target.pid)))
                last = state.samples[-1]
                print(f"soak: t={last.t_s:.0f}s in={last.events_in} out="
                      f"{last.recommendations_out} in_flight={last.in_flight} committed_lag="
                      f"{last.committed_lag} worker_lag={last.worker_lag} "
                      f"rss={last.rss_mb and round(last.rss_mb)} MB", file=sys.stderr, flush=True)

            async def sampler() -> None:
                while True:
                    await sample()
                    await asyncio.sleep(plan.sample_s)

            sampling = asyncio.ensure_future(sampler())
            behind_limit = plan.rate * plan.give_up_behind_s
            drain_s: float | None = None
            try:
                next_due = t0
                chunk = max(1, int(plan.rate))  # one second of events at a time
                while len(sent_ids) < total:
                    events = stream.take(min(chunk, total - len(sent_ids)), "soak")
                    sent_ids.extend(e.event_id for e in events)
                    next_due = await flow.send_at_rate(events, plan.rate, start=next_due)
                    target.check_alive()
                    behind = len(sent_ids) + len(warmup) - len(flow.ledger.arrived)
                    if behind > behind_limit:
                        # Lag is not bounded: draining would take longer than the soak.
                        state.gave_up = (f"{behind} events in flight after "
                                         f"{time.monotonic() - t0:.0f} s, more than "
                                         f"{plan.give_up_behind_s:.0f} s of input")
                        print(f"soak: giving up: {state.gave_up}", file=sys.stderr)
                        break
                if state.gave_up is None:
                    sent_at = time.monotonic()
                    await flow.wait_for(sent_ids, 300.0 + total / 50, "soak drain",
                                        target.check_alive)
                    drain_s = round(time.monotonic() - sent_at, 2)
            finally:
                sampling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampling
            await sample()
        finally:
            await admin.close()
        arrived = flow.ledger.arrived
        return {"drain_s": drain_s, "events_in": len(sent_ids),
                "recommendations_out": sum(1 for e in sent_ids if e in arrived),
                "duplicates": flow.ledger.duplicates, "unknown": flow.ledger.unknown,
                "latency_ms": latency_summary(flow.ledger.latencies_ms(sent_ids))}


def run_soak(plan: SoakPlan, target: PipelineTarget, workload: Workload,
             run_id: str) -> dict[str, Any]:
    """Start the worker, soak it, stop it; the JSON-able report."""
    stream = ShopperStream(workload, run_id, plan.concurrency, plan.seed)
    state = SoakState()
    try:
        target.start()
        state.rss_start_mb = _rss(target.pid)
        counts = asyncio.run(soak_drive(target, plan, stream, state))
    finally:
        target.stop()
    return soak_report(plan, target, state, counts)


def soak_report(plan: SoakPlan, target: PipelineTarget, state: SoakState,
                counts: dict[str, Any]) -> dict[str, Any]:
    """The soak's JSON report: counts, latencies, peak lag, memory growth, every sample."""
    samples = state.samples
    warm = next((s for s in samples if s.t_s >= plan.rss_warmup_s and s.rss_mb), None)
    end = samples[-1] if samples else None
    growth = None
    if warm is not None and end is not None and warm.rss_mb and end.rss_mb:
        growth = round((end.rss_mb - warm.rss_mb) / warm.rss_mb * 100.0, 2)
    lags = [s.committed_lag for s in samples if s.committed_lag is not None]
    return {
        "soak_s": plan.duration_s, "offered_rate": plan.rate, "gave_up": state.gave_up,
        "events_in": counts["events_in"], "recommendations_out": counts["recommendations_out"],
        "duplicates": counts["duplicates"], "drain_s": counts["drain_s"],
        "latency_ms": counts["latency_ms"],
        "catalog_items": target.health.get("catalog_items"),
        "model_version": target.health.get("model_version"),
        "max_committed_lag": max(lags) if lags else None,
        "max_in_flight": max((s.in_flight for s in samples), default=None),
        "rss_mb": {"start": state.rss_start_mb and round(state.rss_start_mb, 1),
                   "after_warmup": warm.rss_mb and round(warm.rss_mb, 1) if warm else None,
                   "end": end.rss_mb and round(end.rss_mb, 1) if end else None,
                   "growth_after_warmup_pct": growth, "warmup_s": plan.rss_warmup_s},
        "lag": [s.to_dict() for s in samples],
    }

