"""Experiment definitions and the stable assignment of shoppers to arms."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import replace

import pytest

from stream_rec.core.events import InvalidEvent
from stream_rec.core.experiments import Experiment, assign, parse_experiment

USERS = [f"shopper-{n}" for n in range(20_000)]


def _experiment(**changes: object) -> Experiment:
    doc = {"id": "exp-1", "arms": [{"name": "control", "policy": "dpp:0.15"},
                                   {"name": "diverse", "policy": "dpp:0.3"}],
           "weights": [50, 50], "salt": "exp-1", "traffic": 1.0, "running": True, **changes}
    return parse_experiment("exp-1", json.dumps(doc).encode())


def test_a_definition_round_trips_and_bad_ones_say_why() -> None:
    experiment = _experiment()
    assert parse_experiment("exp-1", json.dumps(experiment.to_dict()).encode()) == experiment
    for changes, reason in [({"id": "other"}, "message key"), ({"arms": []}, "1..10 arms"),
                            ({"arms": [{"name": "a", "policy": "dpp:2"}]}, "arm 'a'"),
                            ({"arms": [{"name": "a|b", "policy": "none"}]}, "without '|'"),
                            ({"weights": [1]}, "one non-negative number per arm"),
                            ({"weights": [0, 0]}, "not all zero"),
                            ({"traffic": 1.5}, "from 0 to 1"), ({"running": "yes"}, "true")]:
        with pytest.raises(InvalidEvent, match=reason):
            _experiment(**changes)


def test_shoppers_split_by_the_weights_and_stay_put() -> None:
    experiment = _experiment(weights=[80, 20])
    arms = Counter(assign([experiment], u)[1].name for u in USERS)  # type: ignore[index]
    assert abs(arms["control"] / len(USERS) - 0.8) < 0.02
    # The same on every call (every worker, every restart).
    again = [assign([experiment], u) for u in USERS[:500]]
    assert again == [assign([experiment], u) for u in USERS[:500]]
    # Moving weight from control to diverse only moves shoppers from control to diverse.
    moved = _experiment(weights=[60, 40])
    for user in USERS[:2000]:
        before = assign([experiment], user)[1].name  # type: ignore[index]
        after = assign([moved], user)[1].name  # type: ignore[index]
        assert before == after or (before, after) == ("control", "diverse")


def test_traffic_share_and_stopped_experiments() -> None:
    half = _experiment(traffic=0.25)
    inside = sum(assign([half], u) is not None for u in USERS)
    assert abs(inside / len(USERS) - 0.25) < 0.02
    assert all(assign([replace(half, running=False)], u) is None for u in USERS[:200])
    # Another salt shuffles the shoppers anew.
    salted = replace(_experiment(), salt="another")
    same = sum(assign([_experiment()], u)[1] == assign([salted], u)[1]  # type: ignore[index]
               for u in USERS[:4000])
    assert 0.4 < same / 4000 < 0.6


# -- allocation, weights versions and model arms -----------------------------------------------

def test_new_fields_parse_and_round_trip() -> None:
    from stream_rec.core.experiments import WeightsVersion

    experiment = _experiment(
        arms=[{"name": "control", "policy": "dpp:0.15"},
              {"name": "v2-model", "policy": "dpp:0.15", "model": "v0002"},
              {"name": "v3-mmr", "policy": "mmr:0.5", "model": "2024-06-01_run.3"}],
        weights=[0.5, 0.3, 0.2], allocation="thompson", floor=0.2, version=4,
        started_ms=1_700_000_000_000, since_ms=1_700_000_600_000,
        history=[{"version": 2, "at_ms": 1_700_000_000_000, "weights": [1, 1, 1]},
                 {"version": 3, "at_ms": 1_700_000_300_000, "weights": [0.4, 0.4, 0.2]}])
    assert (experiment.allocation, experiment.floor, experiment.version) == ("thompson", 0.2, 4)
    assert (experiment.started_ms, experiment.since_ms) == (1_700_000_000_000,
                                                            1_700_000_600_000)
    assert experiment.history == (WeightsVersion(2, 1_700_000_000_000, (1.0, 1.0, 1.0)),
                                  WeightsVersion(3, 1_700_000_300_000, (0.4, 0.4, 0.2)))
    assert [a.model for a in experiment.arms] == [None, "v0002", "2024-06-01_run.3"]
    assert experiment.models == {"v0002", "2024-06-01_run.3"}
    doc = experiment.to_dict()
    assert "model" not in doc["arms"][0] and doc["arms"][1]["model"] == "v0002"
    assert doc["history"][1] == {"version": 3, "at_ms": 1_700_000_300_000,
                                 "weights": [0.4, 0.4, 0.2]}
    assert parse_experiment("exp-1", json.dumps(doc).encode()) == experiment


def test_new_fields_default_for_records_that_predate_them() -> None:
    from stream_rec.core.experiments import DEFAULT_FLOOR

    experiment = _experiment()
    assert (experiment.allocation, experiment.floor, experiment.version) == (
        "fixed", DEFAULT_FLOOR, 1)
    assert (experiment.started_ms, experiment.since_ms, experiment.history) == (0, 0, ())
    assert experiment.models == set()
    assert parse_experiment("exp-1", json.dumps(experiment.to_dict()).encode()) == experiment


@pytest.mark.parametrize(("changes", "reason"), [
    ({"allocation": "greedy"}, "'allocation' must be one of fixed, thompson"),
    ({"allocation": None}, "'allocation'"),
    ({"floor": 0.6}, "'floor' must be a number from 0 to 1/arms"),
    ({"floor": -0.01}, "'floor'"),
    ({"floor": "0.1"}, "'floor'"),
    ({"floor": True}, "'floor'"),
    ({"version": 0}, "'version' must be a whole number >= 1"),
    ({"version": 1.5}, "'version'"),
    ({"version": True}, "'version'"),
    ({"version": "2"}, "'version'"),
    ({"started_ms": -1}, "'started_ms'"),
    ({"since_ms": 1.5}, "'since_ms'"),
    ({"history": {}}, "'history' must be a list of at most 200"),
    ({"history": [[]] * 201}, "'history' must be a list of at most 200"),
    ({"history": [5]}, "'history' entries must be objects"),
    ({"history": [{"version": 1, "at_ms": 0, "weights": [1]}]}, "one weight per arm"),
    ({"history": [{"version": 1, "at_ms": 0, "weights": [1, -1]}]}, "one weight per arm"),
    ({"history": [{"version": 1, "weights": [1, 1]}]}, "'at_ms'"),
    ({"history": [{"version": -1, "at_ms": 0, "weights": [1, 1]}]}, "'version'"),
    ({"arms": [{"name": "a", "policy": "none", "model": "latest"}]}, "exact model version"),
    ({"arms": [{"name": "a", "policy": "none", "model": "current"}]}, "exact model version"),
    ({"arms": [{"name": "a", "policy": "none", "model": "../v1"}]}, "exact model version"),
    ({"arms": [{"name": "a", "policy": "none", "model": ""}]}, "exact model version"),
    ({"arms": [{"name": "a", "policy": "none", "model": "v1\n"}]}, "exact model version"),
    ({"arms": [{"name": "a", "policy": "none", "model": 3}]}, "arm 'a': 'model'"),
    ({"arms": [{"name": "a", "policy": "none", "model": "x" * 129}]}, "exact model version"),
])
def test_bad_new_fields_are_refused_with_reasons(changes: dict[str, object], reason: str
                                                 ) -> None:
    if "arms" in changes:
        changes = {**changes, "weights": [1]}
    with pytest.raises(InvalidEvent, match=re.escape(reason)):
        _experiment(**changes)


def test_floor_may_be_exactly_one_share_per_arm() -> None:
    assert _experiment(floor=0.5).floor == 0.5
    assert _experiment(floor=0).floor == 0.0


def test_reweighted_is_the_next_version_with_the_last_weights_in_history() -> None:
    from stream_rec.core.experiments import HISTORY_KEPT, WeightsVersion

    start = _experiment(allocation="thompson", started_ms=1_000, since_ms=1_000)
    nxt = start.reweighted([0.25, 0.75], at_ms=5_000)
    assert nxt.version == start.version + 1 == 2
    assert nxt.weights == (0.25, 0.75) and nxt.since_ms == 5_000
    assert nxt.history == (WeightsVersion(1, 1_000, (50.0, 50.0)),)
    assert nxt.started_ms == 1_000 and nxt.arms == start.arms and nxt.salt == start.salt
    assert start.version == 1 and start.history == ()  # unchanged: a new record
    # Every version round trips through the topic.
    assert parse_experiment("exp-1", json.dumps(nxt.to_dict()).encode()) == nxt
    # The history is bounded: the oldest versions go first.
    current = nxt
    for n in range(HISTORY_KEPT + 5):
        current = current.reweighted([1, n + 1], at_ms=10_000 + n)
    assert current.version == 2 + HISTORY_KEPT + 5
    assert len(current.history) == HISTORY_KEPT
    assert [h.version for h in current.history] == list(range(current.version - HISTORY_KEPT,
                                                               current.version))
    last = current.history[-1]
    assert last == WeightsVersion(current.version - 1, 10_000 + HISTORY_KEPT + 3,
                                  (1.0, float(HISTORY_KEPT + 4)))
    assert parse_experiment("exp-1", json.dumps(current.to_dict()).encode()) == current


def test_a_list_carries_the_weights_version_of_its_experiment_tag() -> None:
    from stream_rec.core.experiments import ExperimentTag
    from stream_rec.rerank import RerankPolicy
    from stream_rec.serving.lists import RecItem, RecList

    experiment = _experiment(allocation="thompson").reweighted([0.3, 0.7], at_ms=9)
    arm = experiment.arms[1]
    tag = experiment.tag(arm)
    assert tag == ExperimentTag("exp-1", "diverse", 2)
    rec = RecList("u1", "e1", (RecItem("i1", 0.5, "trending now"),), "v1", arm.policy, False,
                  1_750_000_000_000.0, 1.0, list_id="l1", experiment=tag)
    doc = json.loads(json.dumps(rec.to_dict()))
    assert doc["experiment"] == {"id": "exp-1", "arm": "diverse", "version": 2}
    untagged = RecList("u1", "e1", (), None, RerankPolicy.parse("none"), True, 0.0, 0.0)
    assert untagged.to_dict()["experiment"] is None
    assert ExperimentTag("e", "a").version == 1  # a tag from before versions: the first
