"""Experiment definitions and the stable assignment of shoppers to arms."""

from __future__ import annotations

import json
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
