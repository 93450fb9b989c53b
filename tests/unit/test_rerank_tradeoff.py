"""The trade-off sweep's reading (pure; no model) and the two commands' wiring."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stream_rec.cli import build_parser, main
from stream_rec.offline.tradeoff import (
    frontier_diversity_at,
    plot_tradeoff,
    run_sweep,
    summarise,
    sweep_policies,
)
from stream_rec.rerank import DEFAULT_DPP_THETA, RerankPolicy


def fake_metrics(policy: RerankPolicy) -> dict[str, Any]:
    """A made-up trade-off: DPP buys diversity more cheaply than MMR."""
    strength = policy.param if policy.method == "dpp" else 1 - policy.param
    if policy.method == "none":
        strength = 0.0
    cost = 0.5 if policy.method == "mmr" else 0.25
    return {"P@20": 50.0 * (1 - cost * strength**2), "ILD@20": 0.4 + 0.4 * strength}


def test_sweep_has_the_same_steps_per_method_plus_the_default_theta() -> None:
    policies = sweep_policies(4)
    assert [str(p) for p in policies] == [
        "none", f"dpp:{DEFAULT_DPP_THETA:g}", "dpp:0.25", "dpp:0.5", "dpp:0.75", "dpp:1",
        "mmr:0.75", "mmr:0.5", "mmr:0.25", "mmr:0",
    ]  # fmt: skip
    for points in (4, 20):  # the default off and on the grid of 0.05 steps
        thetas = [p.param for p in sweep_policies(points) if p.method == "dpp"]
        assert thetas.count(DEFAULT_DPP_THETA) == 1
        assert thetas == sorted(thetas) and len(thetas) in (points, points + 1)
    with pytest.raises(ValueError):
        sweep_policies(0)


def test_summary_finds_the_thetas_meeting_the_bar_and_compares_at_matched_precision() -> None:
    points = run_sweep(fake_metrics, sweep_policies(10))
    assert points[0] == {"method": "none", "param": 0.0, "P@20": 50.0, "ILD@20": 0.4}
    summary = summarise(points, 20)
    # ILD +25 % needs strength >= 0.25; P -3 % allows 0.25 * s^2 <= 0.03, s <= 0.346.
    assert summary["thetas_meeting_bar"] == [0.3]
    assert summary["dpp_at_least_as_diverse_as_mmr_at_matched_P"] is True
    worse = summarise([{**p, "ILD@20": p["ILD@20"] - 0.1} if p["method"] == "dpp" else p
                       for p in points], 20)  # fmt: skip
    assert worse["dpp_at_least_as_diverse_as_mmr_at_matched_P"] is False


def test_frontier_interpolates_and_refuses_to_extrapolate() -> None:
    curve = [(50.0, 0.4), (48.0, 0.6), (40.0, 0.8), (47.0, 0.5)]  # (47, 0.5) is dominated
    assert frontier_diversity_at(curve, 49.0) == pytest.approx(0.5)
    assert frontier_diversity_at(curve, 44.0) == pytest.approx(0.7)
    assert frontier_diversity_at(curve, 51.0) is None
    assert frontier_diversity_at(curve, 39.0) is None


def test_without_categories_there_is_nothing_to_compare() -> None:
    points = [{"method": "none", "param": 0.0, "P@20": 50.0}]
    assert "note" in summarise(points, 20)


def test_plot_is_written(tmp_path: Path) -> None:
    out = tmp_path / "t.png"
    plot_tradeoff(run_sweep(fake_metrics, sweep_policies(5)), str(out), 20, "test")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_commands_are_registered() -> None:
    parser = build_parser()
    args = parser.parse_args(["tradeoff", "--model", "m", "--data", "categories:x", "--json"])
    assert args.points == 10 and args.json and callable(args.func)
    args = parser.parse_args(["bench-rerank", "--json"])
    assert args.dim == 100 and callable(args.func)


def test_bench_rerank_json_is_one_object(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench-rerank", "--json", "--lists", "3", "--naive-lists", "1", "--batch", "4",
                 "--pool", "30", "--k", "5", "--dim", "8"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0
    result = json.loads(captured.out)
    for key in ("dpp_us_per_list", "naive_dpp_us_per_list", "mmr_us_per_list",
                "batched_dpp_us_per_list"):  # fmt: skip
        assert result[key] > 0
    assert result["naive_agreement"] == "1/1"
    assert "bench-rerank:" in captured.err
