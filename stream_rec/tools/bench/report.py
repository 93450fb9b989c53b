"""The benchmark's JSON object (keys as issue 7 names them) and its human-readable form."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stream_rec.config import Settings
from stream_rec.tools.bench.probes import stage_us_per_event
from stream_rec.tools.bench.stats import latency_summary

if TYPE_CHECKING:
    from stream_rec.tools.bench.benchmark import BenchPlan, TargetRun

RESULT_KEYS = ("events", "pipeline_events_per_s", "faust_passthrough_events_per_s",
               "aiokafka_passthrough_events_per_s", "ratio_vs_faust", "cpu_ms_per_event",
               "cpu_ratio_vs_faust", "latency_ms", "offered_rate", "catalog_items",
               "candidates", "k", "worker_rss_mb", "stages_us", "worker_startup_s")
CURVE_KEYS = ("capacity_events_per_s", "latency_curve", "latency_at_half_capacity_ms")


def _rate(runs: dict[str, TargetRun], name: str) -> float | None:
    run = runs.get(name)
    return run.events_per_s if run is not None else None


def bench_result(plan: BenchPlan, settings: Settings, runs: dict[str, TargetRun],
                 catalog_size: int) -> dict[str, Any]:
    """One flat JSON-able object; a target that was not measured reports None."""
    pipeline, faust = _rate(runs, "pipeline"), _rate(runs, "faust_passthrough")
    run = runs.get("pipeline")
    memory = run.memory if run is not None else None
    stages = run.stages if run is not None else {}
    catalog = run.health.get("catalog_items") if run is not None else None
    cpu = {name: r.cpu_ms_per_event for name, r in runs.items()}
    pipeline_cpu, faust_cpu = cpu.get("pipeline"), cpu.get("faust_passthrough")
    result: dict[str, Any] = {
        "events": plan.events,
        "pipeline_events_per_s": pipeline,
        "faust_passthrough_events_per_s": faust,
        "aiokafka_passthrough_events_per_s": _rate(runs, "aiokafka_passthrough"),
        "ratio_vs_faust": round(pipeline / faust, 3) if pipeline and faust else None,
        # CPU time of each target's own process over the throughput phase, per event: what
        # the machine's mood changes least (the other processes' CPU is not counted).
        "cpu_ms_per_event": cpu,
        "cpu_ratio_vs_faust": round(faust_cpu / pipeline_cpu, 3)
        if faust_cpu and pipeline_cpu else None,
        "latency_ms": latency_summary(run.latencies_ms if run is not None else []),
        "offered_rate": plan.rate,
        "catalog_items": catalog if isinstance(catalog, int) else catalog_size,
        "candidates": settings.candidate_pool,
        "k": settings.list_length,
        "worker_rss_mb": None if memory is None else {"peak": round(memory.peak_mb, 1),
                                                      "current": round(memory.rss_mb, 1)},
        "stages_us": stage_us_per_event(stages.get("before"), stages.get("after_throughput")),
        # from the worker process's start (imports included): catalog read, model served,
        # /health ready; the two steps overlap in the worker (see startup_log)
        "worker_startup_s": run.startup if run is not None and run.startup else None,
    }
    assert tuple(result) == RESULT_KEYS
    if run is not None and run.curve:
        result.update(latency_curve_result(run))
    if run is not None and run.latency_parts.get("in_worker"):
        # where the latency phase's time went (see Ledger.latency_parts_ms)
        result["latency_parts_ms"] = {part: latency_summary(values)
                                      for part, values in run.latency_parts.items()}
    if run is not None and run.swap is not None:
        result["hot_swap"] = run.swap
    return result


def latency_curve_result(run: TargetRun) -> dict[str, Any]:
    """The latency curve's keys: the capacity (the throughput phase's events/s), each offered
    rate's percentiles, and the latency at the rate nearest half the capacity."""
    points = [{"rate": rate, "events_per_s": handled, **latency_summary(latencies)}
              for rate, handled, latencies in run.curve]
    capacity = run.events_per_s
    half = None
    if capacity:
        nearest = min(run.curve, key=lambda point: abs(point[0] - capacity / 2))
        half = {"rate": nearest[0], **latency_summary(nearest[2])}
    return {"capacity_events_per_s": capacity, "latency_curve": points,
            "latency_at_half_capacity_ms": half}


def format_text(result: dict[str, Any]) -> str:
    """A few aligned lines for a terminal (``--json`` prints the object instead)."""
    lines = [f"events per target            {result.get('events')}"]
    for key in ("pipeline_events_per_s", "faust_passthrough_events_per_s",
                "aiokafka_passthrough_events_per_s", "ratio_vs_faust", "offered_rate",
                "catalog_items", "candidates", "k"):
        if key in result:
            lines.append(f"{key:<28} {result[key]}")
    latency = result.get("latency_ms") or {}
    if latency:
        lines.append("latency_ms                   " + "  ".join(
            f"{q} {v}" for q, v in latency.items()))
    if result.get("worker_rss_mb"):
        rss = result["worker_rss_mb"]
        lines.append(f"worker_rss_mb                peak {rss['peak']}  current {rss['current']}")
    for stage, us in (result.get("stages_us") or {}).items():
        lines.append(f"  {stage:<26} {us} us/event")
    for key, value in result.items():
        if key not in RESULT_KEYS:
            lines.append(f"{key:<28} {value}")
    return "\n".join(lines)
