"""The latency curve as a picture: p50/p95/p99 against the offered rate (PNG)."""

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
