"""An experiment's report: per-arm figures, comparisons against the control, SRM check.

Pure: it takes the experiment's definition, the tally of every shopper who was in one of its
arms (``core/tally.py``, read from the latest state of each shopper) and the per-group online
figures (``serving/online_metrics.add_up``) and returns the report as plain data.

The statistics work per shopper, because one shopper's events are not independent: a
shopper who clicks a lot clicks in every list, and counting each impressed item as a coin
toss would make differences look far more certain than they are. Click-through is a ratio of
per-shopper sums (clicks over impressed items), whose variance comes from the delta method;
conversion (the share of shoppers with an attributed purchase) and revenue per shopper are
means over shoppers. The first arm is the control; every other arm is compared with it by a
two-sided z-test at ``alpha``, with the minimum detectable effect at ``power`` for the traffic
so far. With several arms, each comparison is at ``alpha`` on its own (no correction).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from stream_rec.core.attribution import split_group
from stream_rec.core.experiments import Experiment
from stream_rec.core.stats import Sums, compare, ratio, srm_p_value
from stream_rec.core.tally import TALLY_FIGURES

ALPHA = 0.05
POWER = 0.8
SRM_ALARM_P = 0.001  # below this, the assignment counts do not fit the weights
METRICS = ("ctr", "conversion", "revenue_per_shopper")


@dataclass
class _Arm:
    """One arm's totals and per-shopper sums, as shoppers are added."""

    totals: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TALLY_FIGURES, 0.0))
    shoppers: int = 0
    per_item: Sums = field(default_factory=Sums)  # clicks over impressed items
    per_list: Sums = field(default_factory=Sums)  # clicks over lists
    converted: Sums = field(default_factory=Sums)  # bought anything: 0/1 over 1
    revenue: Sums = field(default_factory=Sums)  # revenue over 1

    def add(self, figures: Mapping[str, float]) -> None:
        self.shoppers += 1
        for name in TALLY_FIGURES:
            self.totals[name] += figures.get(name, 0.0)
        clicks = figures.get("clicks", 0.0)
        self.per_item = self.per_item.add(clicks, figures.get("impressed_items", 0.0))
        self.per_list = self.per_list.add(clicks, figures.get("lists", 0.0))
        self.converted = self.converted.add(float(figures.get("purchases", 0.0) > 0), 1.0)
        self.revenue = self.revenue.add(figures.get("revenue", 0.0), 1.0)


def build_report(experiment: Experiment, tallies: Iterable[Mapping[str, Any]],
                 online: Mapping[str, Mapping[str, float]] | None = None,
                 alpha: float = ALPHA, power: float = POWER) -> dict[str, Any]:
    """The report (see docs/operations.md, "Reading an experiment report").

    ``tallies`` holds one mapping per shopper and arm: ``arm`` (its name) and the figures of
    ``TALLY_FIGURES``; ``online`` the figures by list group, for what only they hold (mean
    clicked position, distinct items impressed).
    """
    arms = {arm.name: _Arm() for arm in experiment.arms}
    for tally in tallies:
        arm = arms.get(str(tally.get("arm")))
        if arm is not None:
            arm.add(tally)
    # Click-through per impressed item once the shop sends impressions; per list before.
    by_items = any(a.totals["impressions"] > 0 for a in arms.values())
    control_name = experiment.arms[0].name
    report: dict[str, Any] = {
        "experiment": experiment.id, "running": experiment.running,
        "allocation": experiment.allocation, "weights_version": experiment.version,
        "traffic": experiment.traffic, "control": control_name,
        "ctr_basis": "impressed_items" if by_items else "lists",
        "alpha": alpha, "power": power,
        "method": "per-shopper: delta method for click-through, means over shoppers for "
                  "conversion and revenue; two-sided z-tests against the control",
        "arms": {},
    }
    online_by_arm = _online_by_arm(experiment.id, online or {})
    for spec, weight in zip(experiment.arms, experiment.weights, strict=True):
        arm = arms[spec.name]
        report["arms"][spec.name] = _arm_figures(spec.name, str(spec.policy), spec.model,
                                                 weight / sum(experiment.weights), arm,
                                                 by_items, online_by_arm.get(spec.name, {}))
    control = arms[control_name]
    comparisons = []
    for spec in experiment.arms[1:]:
        arm = arms[spec.name]
        pairs = {"ctr": (control.per_item, arm.per_item) if by_items else
                 (control.per_list, arm.per_list),
                 "conversion": (control.converted, arm.converted),
                 "revenue_per_shopper": (control.revenue, arm.revenue)}
        for metric in METRICS:
            result = compare(*pairs[metric], alpha=alpha, power=power)
            comparisons.append({
                "metric": metric, "arm": spec.name, "vs": control_name,
                "lift": _number(result.lift), "difference": _number(result.difference),
                "p_value": _number(result.p_value),
                "significant": bool(result.significant(alpha)),
                "mde": _number(result.mde)})
    report["comparisons"] = comparisons
    counts = [arms[a.name].shoppers for a in experiment.arms]
    if experiment.allocation == "fixed":
        p_value = srm_p_value(counts, experiment.weights)
        report["srm_p_value"] = p_value
        report["srm_alarm"] = p_value < SRM_ALARM_P
    else:  # a bandit moves its weights on purpose: show how instead
        report["srm_p_value"] = None
        report["srm_alarm"] = False
        report["allocation_history"] = [
            {"version": h.version, "since_ms": h.at_ms,
             "weights": dict(zip((a.name for a in experiment.arms), h.weights, strict=True))}
            for h in (*experiment.history, _current(experiment))]
    return report


def _current(experiment: Experiment) -> Any:
    from stream_rec.core.experiments import WeightsVersion

    return WeightsVersion(experiment.version, experiment.since_ms, experiment.weights)


def _arm_figures(name: str, policy: str, model: str | None, share: float, arm: _Arm,
                 by_items: bool, online: Mapping[str, float]) -> dict[str, Any]:
    t = arm.totals
    ctr = ratio(arm.per_item if by_items else arm.per_list)
    conversion = ratio(arm.converted)
    positioned = online.get("positioned_clicks", 0.0)
    return {
        "policy": policy, "model": model, "weight": share, "shoppers": arm.shoppers,
        "lists": int(t["lists"]), "impressions": int(t["impressions"]),
        "impressed_items": int(t["impressed_items"]), "clicks": int(t["clicks"]),
        "ctr": _number(ctr.value), "ctr_ci95": [_number(v) for v in ctr.ci95()],
        # Per impressed list once the shop sends impressions, per list sent before.
        "ctr_per_list": _number(t["clicks"] / (t["impressions"] or t["lists"]))
        if t["impressions"] or t["lists"] else None,
        "add_to_carts": int(t["add_to_carts"]), "purchases": int(t["purchases"]),
        "conversion": _number(conversion.value),
        "conversion_ci95": [_number(v) for v in conversion.ci95()],
        "revenue": round(t["revenue"], 2),
        "revenue_per_shopper": _number(t["revenue"] / arm.shoppers) if arm.shoppers else None,
        "ild": _number(t["ild_sum"] / t["ild_lists"]) if t["ild_lists"] else None,
        "categories": _number(t["categories_sum"] / t["impressions"]) if t["impressions"]
        else None,
        "mean_clicked_position": _number(online.get("position_sum", 0.0) / positioned)
        if positioned else None,
        "distinct_items_approx": int(online["distinct_items"]) if "distinct_items" in online
        else None,
    }


def _online_by_arm(experiment_id: str, online: Mapping[str, Mapping[str, float]]
                   ) -> dict[str, dict[str, float]]:
    """The online figures of each arm, summed over the models and policies it ran with
    (distinct items: the largest group's estimate, since sketches were merged per group)."""
    out: dict[str, dict[str, float]] = {}
    for group, figures in online.items():
        labels = split_group(group)
        if labels["experiment"] != experiment_id:
            continue
        into = out.setdefault(labels["arm"], {})
        for name, value in figures.items():
            if name == "distinct_items":
                into[name] = max(into.get(name, 0.0), value)
            else:
                into[name] = into.get(name, 0.0) + value
    return out


def _number(value: float) -> float | None:
    """JSON has no NaN: an undefined figure is null."""
    return None if value is None or not math.isfinite(value) else round(float(value), 6)
