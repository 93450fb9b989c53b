"""An experiment's report from per-shopper tallies (stream_rec.core.experiment_report)."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from typing import Any

import pytest

from stream_rec.core.experiment_report import SRM_ALARM_P, build_report
from stream_rec.core.experiments import Experiment, parse_experiment
from stream_rec.core.tally import TALLY_FIGURES


def _experiment(**changes: Any) -> Experiment:
    doc = {"id": "exp-1", "arms": [{"name": "control", "policy": "dpp:0.15"},
                                   {"name": "diverse", "policy": "mmr:0.5", "model": "v0002"}],
           "weights": [1, 1], **changes}
    return parse_experiment("exp-1", json.dumps(doc).encode())


def _shoppers(arm: str, n: int, click_rate: float, buy_rate: float, seed: int,
              impressions: bool = True) -> list[dict[str, Any]]:
    """One tally per shopper: a few lists, most impressed, clicks at about ``click_rate`` of
    the impressed items (per list without impressions)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        lists = rng.randint(1, 6)
        shown = rng.randint(1, lists) if impressions else 0
        items = 4 * shown
        trials = items if impressions else lists
        clicks = sum(rng.random() < click_rate for _ in range(trials))
        bought = rng.random() < buy_rate
        out.append({"arm": arm, "lists": lists, "impressions": shown, "impressed_items": items,
                    "clicks": clicks, "add_to_carts": clicks // 2, "purchases": int(bought),
                    "revenue": 25.0 * bought, "ild_sum": 0.5 * shown, "ild_lists": shown,
                    "categories_sum": 2.0 * shown})
    return out


def _report(experiment: Experiment, tallies: list[dict[str, Any]],
            online: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
    report = build_report(experiment, tallies, online)
    json.dumps(report, allow_nan=False)  # JSON has no NaN: every undefined figure is null
    return report


def test_arm_totals_are_the_sums_of_their_shoppers() -> None:
    tallies = _shoppers("control", 200, 0.05, 0.1, 1) + _shoppers("diverse", 180, 0.05, 0.1, 2)
    tallies.append({"arm": "ghost", "clicks": 1_000.0})  # an arm the experiment lacks
    report = _report(_experiment(), tallies)
    assert set(report["arms"]) == {"control", "diverse"}
    for name in ("control", "diverse"):
        mine = [t for t in tallies if t["arm"] == name]
        arm = report["arms"][name]
        assert arm["shoppers"] == len(mine)
        for figure in ("lists", "impressions", "impressed_items", "clicks", "add_to_carts",
                       "purchases"):
            assert arm[figure] == sum(t[figure] for t in mine), figure
        assert arm["revenue"] == pytest.approx(sum(t["revenue"] for t in mine))
        clicks = sum(t["clicks"] for t in mine)
        items = sum(t["impressed_items"] for t in mine)
        impressions = sum(t["impressions"] for t in mine)
        assert arm["ctr"] == pytest.approx(clicks / items, abs=1e-6)
        assert arm["ctr_per_list"] == pytest.approx(clicks / impressions, abs=1e-6)
        low, high = arm["ctr_ci95"]
        assert low < arm["ctr"] < high
        assert arm["conversion"] == pytest.approx(
            sum(t["purchases"] > 0 for t in mine) / len(mine), abs=1e-6)
        assert arm["revenue_per_shopper"] == pytest.approx(
            sum(t["revenue"] for t in mine) / len(mine), abs=1e-6)
        assert arm["ild"] == pytest.approx(0.5)  # ild_sum / ild_lists
        assert arm["categories"] == pytest.approx(2.0)  # categories_sum / impressions
        assert arm["weight"] == 0.5
    assert report["arms"]["diverse"]["model"] == "v0002"
    assert report["arms"]["control"]["model"] is None
    assert report["arms"]["diverse"]["policy"] == "mmr:0.5"
    assert report["ctr_basis"] == "impressed_items" and report["control"] == "control"


def test_click_through_is_per_list_until_impressions_come() -> None:
    tallies = (_shoppers("control", 100, 0.1, 0.0, 3, impressions=False)
               + _shoppers("diverse", 100, 0.1, 0.0, 4, impressions=False))
    report = _report(_experiment(), tallies)
    assert report["ctr_basis"] == "lists"
    for name, arm in report["arms"].items():
        mine = [t for t in tallies if t["arm"] == name]
        expected = sum(t["clicks"] for t in mine) / sum(t["lists"] for t in mine)
        assert arm["ctr"] == pytest.approx(expected, abs=1e-6)
        assert arm["impressions"] == 0 and arm["ild"] is None and arm["categories"] is None
    # One impression anywhere switches both arms to impressed items.
    tallies[0] = {**tallies[0], "impressions": 1, "impressed_items": 5}
    assert _report(_experiment(), tallies)["ctr_basis"] == "impressed_items"


@pytest.mark.parametrize("better", ["control", "diverse"])
def test_comparisons_follow_a_planted_difference(better: str) -> None:
    rates = {"control": (0.03, 0.05), "diverse": (0.03, 0.05)}
    rates[better] = (0.09, 0.25)
    tallies = [t for k, (arm, (ctr, buy)) in enumerate(rates.items())
               for t in _shoppers(arm, 800, ctr, buy, 10 + k)]
    report = _report(_experiment(), tallies)
    comparisons = {c["metric"]: c for c in report["comparisons"]}
    assert set(comparisons) == {"ctr", "conversion", "revenue_per_shopper"}
    sign = 1 if better == "diverse" else -1
    for metric, comparison in comparisons.items():
        assert comparison["arm"] == "diverse" and comparison["vs"] == "control"
        assert sign * comparison["difference"] > 0, metric
        assert sign * comparison["lift"] > 0, metric
        assert comparison["significant"] is True and comparison["p_value"] < 0.001, metric
        assert comparison["mde"] > 0
    arms = report["arms"]
    assert comparisons["ctr"]["difference"] == pytest.approx(
        arms["diverse"]["ctr"] - arms["control"]["ctr"], abs=1e-5)
    assert comparisons["ctr"]["lift"] == pytest.approx(
        comparisons["ctr"]["difference"] / arms["control"]["ctr"], rel=1e-3)


def test_no_difference_is_not_significant() -> None:
    same = _shoppers("control", 400, 0.05, 0.1, 7)
    tallies = same + [{**t, "arm": "diverse"} for t in same]
    for comparison in _report(_experiment(), tallies)["comparisons"]:
        assert comparison["difference"] == 0.0 and comparison["lift"] == 0.0
        assert comparison["p_value"] == 1.0 and comparison["significant"] is False


def test_sample_ratio_mismatch_on_a_two_to_one_split() -> None:
    tallies = _shoppers("control", 300, 0.05, 0.1, 5) + _shoppers("diverse", 150, 0.05, 0.1, 6)
    report = _report(_experiment(), tallies)
    assert report["srm_p_value"] is not None and report["srm_p_value"] < SRM_ALARM_P
    assert report["srm_alarm"] is True
    assert "allocation_history" not in report
    # The same counts under 2:1 weights fit.
    fits = _report(_experiment(weights=[2, 1]), tallies)
    assert fits["srm_p_value"] > 0.5 and fits["srm_alarm"] is False
    assert fits["arms"]["control"]["weight"] == pytest.approx(2 / 3, abs=1e-6)


def test_a_bandit_shows_its_allocation_history_instead_of_srm() -> None:
    bandit = _experiment(allocation="thompson", started_ms=1_000, since_ms=1_000)
    bandit = bandit.reweighted([0.3, 0.7], at_ms=2_000).reweighted([0.2, 0.8], at_ms=3_000)
    tallies = _shoppers("control", 300, 0.05, 0.1, 5) + _shoppers("diverse", 150, 0.05, 0.1, 6)
    report = _report(bandit, tallies)
    assert report["srm_p_value"] is None and report["srm_alarm"] is False
    assert report["allocation"] == "thompson" and report["weights_version"] == 3
    assert report["allocation_history"] == [
        {"version": 1, "since_ms": 1_000, "weights": {"control": 1.0, "diverse": 1.0}},
        {"version": 2, "since_ms": 2_000, "weights": {"control": 0.3, "diverse": 0.7}},
        {"version": 3, "since_ms": 3_000, "weights": {"control": 0.2, "diverse": 0.8}}]


def test_arms_without_shoppers_give_nulls_not_nan() -> None:
    three = _experiment(arms=[{"name": "control", "policy": "none"},
                              {"name": "diverse", "policy": "mmr:0.5"},
                              {"name": "empty", "policy": "dpp:0.3"}], weights=[1, 1, 1])
    report = _report(three, _shoppers("control", 50, 0.05, 0.1, 8))
    empty, diverse = report["arms"]["empty"], report["arms"]["diverse"]
    for arm in (empty, diverse):
        assert arm["shoppers"] == 0 and arm["clicks"] == 0
        for figure in ("ctr", "ctr_per_list", "conversion", "revenue_per_shopper", "ild",
                       "categories", "mean_clicked_position", "distinct_items_approx"):
            assert arm[figure] is None, figure
        assert arm["ctr_ci95"] == [None, None]
    for comparison in report["comparisons"]:
        assert comparison["difference"] is None and comparison["p_value"] is None
        assert comparison["significant"] is False
    # Nobody at all: still a report, with nulls.
    nobody = _report(three, [])
    assert nobody["arms"]["control"]["ctr"] is None and nobody["srm_p_value"] == 1.0
    # One shopper: a rate, but no standard error yet.
    one = _report(_experiment(), _shoppers("control", 1, 0.5, 1.0, 9))
    assert one["arms"]["control"]["ctr"] is not None
    assert one["arms"]["control"]["ctr_ci95"] == [None, None]


def test_online_figures_give_clicked_position_and_distinct_items_per_arm() -> None:
    online = {
        "v1|dpp:0.15|exp-1|control": {"position_sum": 6.0, "positioned_clicks": 3.0,
                                      "distinct_items": 120},
        "fallback|dpp:0.15|exp-1|control": {"position_sum": 4.0, "positioned_clicks": 1.0,
                                            "distinct_items": 30},
        "v0002|mmr:0.5|exp-1|diverse": {"position_sum": 0.0, "positioned_clicks": 0.0,
                                        "distinct_items": 200},
        "v1|dpp:0.15|exp-2|control": {"position_sum": 1_000.0, "positioned_clicks": 1.0,
                                      "distinct_items": 9_999},
        "v1|dpp:0.15||": {"position_sum": 50.0, "positioned_clicks": 5.0},
    }
    tallies = _shoppers("control", 20, 0.1, 0.1, 11) + _shoppers("diverse", 20, 0.1, 0.1, 12)
    report = _report(_experiment(), tallies, online)
    control, diverse = report["arms"]["control"], report["arms"]["diverse"]
    assert control["mean_clicked_position"] == pytest.approx((6.0 + 4.0) / (3.0 + 1.0))
    # Sketches were merged per group, so an arm's count is at least its largest group's.
    assert control["distinct_items_approx"] == 120
    assert diverse["mean_clicked_position"] is None  # no positioned click
    assert diverse["distinct_items_approx"] == 200
    assert isinstance(diverse["distinct_items_approx"], int)
    # Without online figures: nulls.
    bare = _report(_experiment(), tallies)
    assert bare["arms"]["control"]["mean_clicked_position"] is None
    assert bare["arms"]["control"]["distinct_items_approx"] is None


def test_tallies_read_from_state_feed_the_report() -> None:
    from stream_rec.core.state import UserState
    from stream_rec.core.state_codec import encode_state
    from stream_rec.core.tally import add_to_tally, tallies_in

    rows = []
    for n in range(30):
        arm = "control" if n % 3 else "diverse"
        state = add_to_tally(UserState(), f"v1|none|exp-1|{arm}",
                             {"lists": 2.0, "impressions": 1.0, "impressed_items": 4.0,
                              "clicks": float(n % 2)})
        found = tallies_in(encode_state(state), "exp-1")
        assert found is not None
        rows += found
    assert all(set(r) == {"arm", *TALLY_FIGURES} for r in rows)
    report = _report(replace(_experiment(), weights=(2.0, 1.0)), rows)
    assert report["arms"]["control"]["shoppers"] == 20
    assert report["arms"]["diverse"]["shoppers"] == 10
    assert report["arms"]["control"]["clicks"] == sum(n % 2 for n in range(30) if n % 3)
