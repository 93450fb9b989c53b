"""Thompson sampling over an experiment's arms (stream_rec.core.bandit)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from stream_rec.core.bandit import MIN_CHANGE, arm_evidence, next_weights
from stream_rec.core.experiments import Experiment, parse_experiment


def _experiment(arms: int = 2, **changes: Any) -> Experiment:
    doc = {"id": "exp-1", "arms": [{"name": f"arm{n}", "policy": "dpp:0.15"}
                                   for n in range(arms)],
           "weights": [1] * arms, "allocation": "thompson", "floor": 0.1, **changes}
    return parse_experiment("exp-1", json.dumps(doc).encode())


def _group(arm: str, experiment: str = "exp-1", model: str = "v1",
           policy: str = "dpp:0.15") -> str:
    return f"{model}|{policy}|{experiment}|{arm}"


def _online(*per_arm: tuple[float, float], basis: str = "impressed_items"
            ) -> dict[str, dict[str, float]]:
    """(clicks, trials) per arm, as one group each."""
    return {_group(f"arm{k}"): {"clicks": clicks, basis: trials}
            for k, (clicks, trials) in enumerate(per_arm)}


def test_no_weights_for_fixed_or_stopped_experiments() -> None:
    evidence = _online((10, 1_000), (200, 1_000))
    assert next_weights(_experiment(allocation="fixed"), evidence) is None
    assert next_weights(_experiment(running=False), evidence) is None
    assert next_weights(_experiment(), evidence) is not None


def test_deterministic_for_the_same_version_and_evidence() -> None:
    experiment = _experiment()
    evidence = _online((30, 1_000), (36, 1_000))  # close: the draws decide the weights
    first = next_weights(experiment, evidence, draws=2_000)
    assert first is not None
    assert next_weights(experiment, evidence, draws=2_000) == first
    # A leader that takes over builds the same experiment from the record: same weights.
    again = parse_experiment("exp-1", json.dumps(experiment.to_dict()).encode())
    assert next_weights(again, dict(reversed(list(evidence.items()))), draws=2_000) == first
    # Another version draws anew (a different seed).
    draws = {next_weights(replace(experiment, version=v), evidence, draws=2_000)
             for v in range(1, 6)}
    assert len(draws) > 1


def test_weight_moves_to_the_clearly_better_arm_by_impressed_items() -> None:
    weights = next_weights(_experiment(), _online((10, 2_000), (200, 2_000)))
    assert weights is not None
    assert weights == pytest.approx((0.1, 0.9), abs=1e-3)
    assert sum(weights) == pytest.approx(1.0, abs=1e-5)
    # The other way round.
    weights = next_weights(_experiment(), _online((200, 2_000), (10, 2_000)))
    assert weights is not None and weights[0] > 0.85 > 0.15 > weights[1]


def test_by_lists_when_there_are_no_impressions() -> None:
    weights = next_weights(_experiment(), _online((5, 500), (100, 500), basis="lists"))
    assert weights is not None and weights[1] > 0.85
    # Once impressions come, they are the trials and lists no longer count.
    online = _online((5, 500), (100, 500), basis="lists")
    online[_group("arm0", model="v2")] = {"clicks": 100.0, "impressed_items": 500.0}
    online[_group("arm1", model="v2")] = {"clicks": 5.0, "impressed_items": 500.0}
    assert arm_evidence(_experiment(), online) == ([105.0, 105.0], [500.0, 500.0])


@pytest.mark.parametrize("floor", [0.0, 0.05, 0.2, 1 / 3])
def test_every_arm_keeps_the_floor(floor: float) -> None:
    experiment = _experiment(arms=3, floor=floor)
    weights = next_weights(experiment, _online((1, 5_000), (400, 5_000), (2, 5_000)))
    if floor == pytest.approx(1 / 3):  # nothing left to move: equal shares, as now
        assert weights is None
        return
    assert weights is not None
    assert all(w >= floor - 1e-6 for w in weights)
    assert weights[1] == pytest.approx(1 - 2 * floor, abs=1e-3)
    assert sum(weights) == pytest.approx(1.0, abs=1e-5)


def test_none_when_no_weight_moves_by_min_change() -> None:
    # Equal evidence: about half each, which the experiment already has.
    assert next_weights(_experiment(), _online((300, 10_000), (300, 10_000))) is None
    # Already where the evidence puts it (weights are shares, whatever their sum).
    settled = _experiment(weights=[1, 9])
    assert next_weights(settled, _online((10, 5_000), (400, 5_000))) is None
    # A move just past MIN_CHANGE is published.
    moved = _experiment(weights=[0.1 + 2 * MIN_CHANGE, 0.9 - 2 * MIN_CHANGE])
    weights = next_weights(moved, _online((10, 5_000), (400, 5_000)))
    assert weights is not None and weights[1] == pytest.approx(0.9, abs=1e-3)


def test_no_evidence_gives_an_even_split() -> None:
    assert next_weights(_experiment(), {}) is None  # 50/50 already
    weights = next_weights(_experiment(weights=[3, 1]), {})
    assert weights is not None and weights == pytest.approx((0.5, 0.5), abs=MIN_CHANGE)


def test_arm_evidence_sums_over_one_arms_groups_and_ignores_the_rest() -> None:
    experiment = _experiment(arms=3)
    online = {
        _group("arm0", model="v1", policy="dpp:0.15"): {"clicks": 3, "impressed_items": 100,
                                                        "lists": 10},
        _group("arm0", model="v2", policy="mmr:0.5"): {"clicks": 4, "impressed_items": 50},
        _group("arm2", model="fallback"): {"clicks": 1, "impressed_items": 30, "lists": 2},
        _group("arm0", experiment="exp-2"): {"clicks": 1_000, "impressed_items": 1_000},
        _group("ghost"): {"clicks": 1_000, "impressed_items": 1_000},  # no such arm
        "v1|dpp:0.15||": {"clicks": 1_000, "impressed_items": 1_000},  # no experiment
        "unknown": {"clicks": 1_000, "impressed_items": 1_000},
    }
    clicks, trials = arm_evidence(experiment, online)
    assert clicks == [7.0, 0.0, 1.0]
    assert trials == [150.0, 0.0, 30.0]
    # Before any impression: lists are the trials.
    lists_only = {g: {k: v for k, v in f.items() if k != "impressed_items"}
                  for g, f in online.items()}
    assert arm_evidence(experiment, lists_only) == ([7.0, 0.0, 1.0], [10.0, 0.0, 2.0])
