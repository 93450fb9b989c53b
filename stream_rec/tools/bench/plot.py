"""Benchmark pictures (PNG): the latency curve (p50/p95/p99 against the offered rate) and
cost against catalog size."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def plot_latency_curve(result: Mapping[str, Any], path: str) -> None:
    """Latency percentiles against offered load, with the capacity and its half marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = result.get("latency_curve") or []
    if not points:
        raise ValueError("the result has no latency curve (run with --latency-curve)")
    rates = [p["rate"] for p in points]
    fig, ax = plt.subplots(figsize=(7.5, 5.0), dpi=120)
    for key, style in (("p50", "-o"), ("p95", "-s"), ("p99", "-^")):
        ax.plot(rates, [p[key] for p in points], style, ms=4, lw=1.5, label=key)
    capacity = result.get("capacity_events_per_s")
    if capacity:
        ax.axvline(capacity, color="0.3", ls="--", lw=1,
                   label=f"capacity {capacity:,.0f} events/s")
        ax.axvline(capacity / 2, color="0.6", ls=":", lw=1, label="half the capacity")
    ax.set_yscale("log")
    ax.set_xlabel("offered rate (events/s)")
    ax.set_ylabel("latency: event due to its list received (ms, log scale)")
    ax.set_title(f"stream-rec worker: latency against load ({result.get('catalog_items')} "
                 "items)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_catalog_cost(result: Mapping[str, Any], path: str) -> None:
    """Cost against catalog size (a ``bench-core`` sweep): CPU per event by stage, resident
    memory, and the time to read the catalog and load the model; log-scaled item axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = sorted(result.get("catalog_sweep") or [], key=lambda p: p["catalog_items"])
    if len(points) < 2:
        raise ValueError("the result has fewer than two catalog sizes to draw")
    items = [p["catalog_items"] for p in points]
    fig, (cpu, memory, startup) = plt.subplots(1, 3, figsize=(13.5, 4.5), dpi=120)
    cpu.plot(items, [p["cpu_us_per_event_total"] for p in points], "-o", ms=4, lw=1.8,
             color="black", label="all of it (CPU)")
    cpu.plot(items, [p["cpu_us_per_event"]["recommend"] for p in points], "-o", ms=4, lw=1.5,
             label="the lists (CPU)")
    # Stage clocks are wall time: on a busy machine they can exceed the CPU time.
    for stage, style in (("retrieval", "--s"), ("scoring", "--^"), ("reranking", "--v")):
        cpu.plot(items, [(p.get("stages_us") or {}).get(stage, 0.0) for p in points], style,
                 ms=4, lw=1.0, label=f"{stage} (wall)")
    cpu.set_ylabel("microseconds per event")
    cpu.set_title("own code per event (bench-core)")
    memory.plot(items, [p["rss_mb"]["peak_run"] for p in points], "-o", ms=4, lw=1.5,
                label="peak while serving")
    memory.plot(items, [(p.get("hot_swap") or {}).get("peak_rss_mb") for p in points], "-s",
                ms=4, lw=1.5, label="peak during a hot swap")
    memory.plot(items, [p["rss_mb"]["model"] for p in points], "--^", ms=4, lw=1.2,
                label="the model alone")
    memory.plot(items, [p["rss_mb"]["catalog"] for p in points], "--v", ms=4, lw=1.2,
                label="the catalog alone")
    memory.axhline(1536, color="0.5", ls=":", lw=1, label="target 1.5 GB")
    memory.set_ylabel("resident memory (MB)")
    memory.set_title("memory (one process, no Kafka)")
    startup.plot(items, [p.get("model_load_s") for p in points], "-o", ms=4, lw=1.5,
                 label="model load + smoke test")
    startup.plot(items, [p.get("model_swap_s") for p in points], "-s", ms=4, lw=1.5,
                 label="model swap (item table)")
    startup.plot(items, [p["catalog_read_s"] for p in points], "-^", ms=4, lw=1.5,
                 label="catalog read (no Kafka)")
    startup.axhline(30, color="0.5", ls=":", lw=1, label="target 30 s")
    startup.set_ylabel("seconds (wall)")
    startup.set_title("start-up")
    for ax in (cpu, memory, startup):
        ax.set_xscale("log")
        ax.set_xlabel("catalog items (log scale)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    dims = sorted({p["embedding_dim"] for p in points if p.get("embedding_dim")})
    fig.suptitle("stream-rec worker: cost against catalog size"
                 + (f" (model width {', '.join(map(str, dims))})" if dims else " (no model)"))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
