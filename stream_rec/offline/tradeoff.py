"""The relevance/diversity trade-off: sweep a re-ranker's parameter and read the curve.

Pure logic around one callable, ``evaluate(policy) -> metrics`` (offline evaluation supplies
it: ``stream_rec.offline.evaluate.metrics_for`` on pools scored once), so the sweep and its reading
are testable without a model. Metric names follow ``evaluate``: ``P@K`` and ``ILD@K``
(percent and share) among others; relative changes here are fractions (0.25 = +25 %).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from stream_rec.rerank.policy import DEFAULT_DPP_THETA, RerankPolicy

MetricFn = Callable[[RerankPolicy], Mapping[str, Any]]
Progress = Callable[[str], None]

#: The bar a shipped default must meet against no re-ranking (relative changes).
MAX_PRECISION_DROP = 0.03
MIN_DIVERSITY_GAIN = 0.25


def sweep_policies(points: int) -> list[RerankPolicy]:
    """No re-ranking, then ``points`` DPP thetas and as many MMR lambdas, gentle to strong.

    theta = i / points and lambda = 1 - i / points for i = 1..points, so both methods run
    from barely re-ranked to pure diversity in equal steps. The shipped default theta joins
    the DPP's steps when it is not one of them, so the bar is always read at it.
    """
    if points < 1:
        raise ValueError(f"points must be >= 1, got {points}")
    steps = [round(i / points, 6) for i in range(1, points + 1)]
    thetas = sorted({*steps, DEFAULT_DPP_THETA})
    return [
        RerankPolicy("none", 0.0),
        *(RerankPolicy("dpp", t) for t in thetas),
        *(RerankPolicy("mmr", round(1.0 - s, 6)) for s in steps),
    ]


def run_sweep(
    evaluate: MetricFn, policies: Sequence[RerankPolicy], progress: Progress | None = None
) -> list[dict[str, Any]]:
    """One point per policy: ``{"method", "param", **metrics}``."""
    out = []
    for n, policy in enumerate(policies, 1):
        if progress:
            progress(f"[{n}/{len(policies)}] {policy}")
        out.append({"method": policy.method, "param": policy.param, **evaluate(policy)})
    return out


def _frontier(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (P, ILD) points no other point beats on both, sorted by P ascending."""
    best: list[tuple[float, float]] = []
    for p, d in sorted(points, key=lambda x: (-x[0], -x[1])):
        if not best or d > best[-1][1]:
            best.append((p, d))
    return best[::-1]


def frontier_diversity_at(points: list[tuple[float, float]], precision: float) -> float | None:
    """Diversity of a curve's Pareto frontier at ``precision``, linearly interpolated.

    None when ``precision`` lies outside the frontier's range of P (no matched point).
    """
    front = _frontier(points)
    ps = [p for p, _ in front]
    if not front or precision < ps[0] - 1e-12 or precision > ps[-1] + 1e-12:
        return None
    return float(np.interp(precision, ps, [d for _, d in front]))


def summarise(points: Sequence[Mapping[str, Any]], k: int) -> dict[str, Any]:
    """Read the sweep: where DPP meets the bar, and DPP vs MMR at matched precision."""
    p_key, d_key = f"P@{k}", f"ILD@{k}"
    base = next(p for p in points if p["method"] == "none")
    if d_key not in base:
        return {"note": f"no {d_key}: the dataset has no item categories"}
    p0, d0 = float(base[p_key]), float(base[d_key])

    def rel(x: float, x0: float) -> float:
        return round(x / x0 - 1.0, 4) if x0 else 0.0

    by_method: dict[str, list[Mapping[str, Any]]] = {"dpp": [], "mmr": []}
    for p in points:
        if p["method"] in by_method:
            by_method[p["method"]].append(p)
    mmr_curve = [(p0, d0)] + [(float(p[p_key]), float(p[d_key])) for p in by_method["mmr"]]
    dpp = []
    for p in by_method["dpp"]:
        prec, div = float(p[p_key]), float(p[d_key])
        mmr_div = frontier_diversity_at(mmr_curve, prec)
        dpp.append(
            {
                "theta": p["param"],
                "P_change": rel(prec, p0),
                "ILD_change": rel(div, d0),
                "meets_bar": prec >= p0 * (1 - MAX_PRECISION_DROP)
                and div >= d0 * (1 + MIN_DIVERSITY_GAIN),
                "mmr_ILD_at_same_P": None if mmr_div is None else round(mmr_div, 4),
                "dpp_minus_mmr_ILD": None if mmr_div is None else round(div - mmr_div, 4),
            }
        )
    matched = [d["dpp_minus_mmr_ILD"] for d in dpp if d["dpp_minus_mmr_ILD"] is not None]
    default = next((d for d in dpp if abs(d["theta"] - DEFAULT_DPP_THETA) < 1e-9), None)
    return {
        "baseline": {p_key: p0, d_key: d0},
        "bar": {"max_P_drop": MAX_PRECISION_DROP, "min_ILD_gain": MIN_DIVERSITY_GAIN},
        "dpp": dpp,
        "thetas_meeting_bar": [d["theta"] for d in dpp if d["meets_bar"]],
        "default_theta": DEFAULT_DPP_THETA,
        "default_meets_bar": None if default is None else default["meets_bar"],
        "dpp_at_least_as_diverse_as_mmr_at_matched_P": bool(matched) and min(matched) >= -1e-9,
        "worst_dpp_minus_mmr_ILD": min(matched) if matched else None,
    }


def plot_tradeoff(points: Sequence[Mapping[str, Any]], path: str, k: int, title: str = "") -> None:
    """P@K (relevance) against ILD@K (diversity): one labelled curve per method, PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p_key, d_key = f"P@{k}", f"ILD@{k}"
    base = next(p for p in points if p["method"] == "none")
    fig, ax = plt.subplots(figsize=(7.5, 5.5), dpi=120)
    if d_key in base:
        p0, d0 = float(base[p_key]), float(base[d_key])
        ax.axhspan(
            p0 * (1 - MAX_PRECISION_DROP),
            p0,
            color="0.9",
            zorder=0,
            label=f"P@{k} at most {MAX_PRECISION_DROP:.0%} below no re-ranking",
        )
        ax.axvline(
            d0 * (1 + MIN_DIVERSITY_GAIN),
            color="0.5",
            ls=":",
            lw=1,
            label=f"ILD@{k} {MIN_DIVERSITY_GAIN:.0%} above no re-ranking",
        )
    styles = {"dpp": ("tab:blue", "o", "DPP (theta)"), "mmr": ("tab:orange", "s", "MMR (lambda)")}
    for method, (color, marker, label) in styles.items():
        curve = [base, *(p for p in points if p["method"] == method)]
        xs = [float(p.get(d_key, 0.0)) for p in curve]
        ys = [float(p[p_key]) for p in curve]
        ax.plot(xs, ys, color=color, marker=marker, ms=4, lw=1.5, label=label)
        for p, x, y in zip(curve[1:], xs[1:], ys[1:], strict=True):
            ax.annotate(
                f"{p['param']:g}",
                (x, y),
                textcoords="offset points",
                xytext=(4, 3),
                fontsize=7,
                color=color,
            )
        if method == "dpp":
            for p, x, y in zip(curve[1:], xs[1:], ys[1:], strict=True):
                if abs(float(p["param"]) - DEFAULT_DPP_THETA) < 1e-9:
                    ax.plot([x], [y], marker="o", ms=11, mfc="none", mec="tab:blue", mew=1.5)
                    ax.annotate(
                        "shipped default",
                        (x, y),
                        textcoords="offset points",
                        xytext=(8, -12),
                        fontsize=8,
                        color="tab:blue",
                    )
    ax.plot(
        [float(base.get(d_key, 0.0))],
        [float(base[p_key])],
        marker="*",
        ms=14,
        color="black",
        ls="none",
        label="no re-ranking",
    )
    ax.set_xlabel(f"{d_key}: share of item pairs from different categories (diversity)")
    ax.set_ylabel(f"{p_key}, % of cases with the next item in the list (relevance)")
    ax.set_title(title or f"Relevance vs diversity, top {k}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
