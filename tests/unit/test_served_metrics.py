"""Served lists paired with the next event: the pairing and the metrics, by hand-made cases."""

from __future__ import annotations

import json

import pytest

from stream_rec.datasets import Dataset, Interaction, Session
from stream_rec.offline.replay import dataset_events
from stream_rec.offline.served import ServedList, Target, next_event_targets, served_metrics

SIMILAR, TRENDING = "similar to your recent items", "trending now"


def _session(sid: str, items: list[str], start: int = 1_700_000_000_000) -> Session:
    return Session(sid, f"u-{sid}", tuple(Interaction(i, "click", start + 10 * n, f"u-{sid}")
                                          for n, i in enumerate(items)))


def _list(*items: str, reason: str = SIMILAR, fallback: bool = False) -> ServedList:
    return ServedList(items, (reason,) * len(items), fallback)


def test_every_event_but_a_sessions_last_is_paired_with_the_next_one() -> None:
    sessions = (_session("s1", ["a", "b", "a"]), _session("s2", ["c"]))
    targets = next_event_targets("toy", "test", sessions)
    assert targets == {"toy:test:s1:0": Target("b", repeat=False),
                       "toy:test:s1:1": Target("a", repeat=True)}


def test_pairing_uses_the_ids_the_replay_sends() -> None:
    dataset = Dataset("toy", train=(), test=(_session("s1", ["a", "b", "c"]),))
    sent = {json.loads(e.value)["event_id"] for e in dataset_events(dataset, "test")}
    assert set(next_event_targets("toy", "test", dataset.test)) < sent


def test_hits_ranks_and_misses_are_counted_per_case() -> None:
    universe = ["a", "b", "c", "d"]
    targets = {"e1": Target("a", False), "e2": Target("b", False), "e3": Target("c", True),
               "e4": Target("d", False)}
    lists = {"e1": _list("a", "b"), "e2": _list("c", "b"), "e3": _list("a", "b"),
             "e4": _list("d", reason=TRENDING, fallback=True)}
    out = served_metrics(lists, targets, universe, trained={"a", "b", "c"}, k=2)
    assert out["n_cases"] == 4 and out["cases_without_list"] == 0
    assert out["P@2"] == pytest.approx(75.0)  # e1, e2, e4 hit
    assert out["MRR@2"] == pytest.approx(100 * (1 + 0.5 + 0 + 1) / 4)
    assert out["fallback_share"] == pytest.approx(0.25)
    assert out["catalog_coverage@2"] == pytest.approx(100.0)
    assert out["cold_targets"] == {"n_cases": 1, "P@2": 100.0, "MRR@2": 100.0,
                                   "NDCG@2": 100.0}
    assert out["repeat_targets"]["n_cases"] == 1 and out["repeat_targets"]["P@2"] == 0.0
    assert out["new_targets"]["n_cases"] == 3 and out["new_targets"]["P@2"] == 100.0
    assert out["hits_by_reason"][TRENDING] == {"share_of_slots": pytest.approx(100 / 7, abs=0.01),
                                               "share_of_hits": pytest.approx(100 / 3, abs=0.01)}


def test_cases_without_a_list_are_counted_not_scored() -> None:
    targets = {"e1": Target("a", False), "e2": Target("b", False)}
    out = served_metrics({"e1": _list("a")}, targets, ["a", "b"], trained={"a", "b"}, k=20)
    assert out["n_cases"] == 1 and out["cases_without_list"] == 1 and out["P@20"] == 100.0


def test_only_the_first_k_items_count_and_unknown_items_do_not_widen_the_catalog() -> None:
    targets = {"e1": Target("b", False)}
    out = served_metrics({"e1": _list("x", "y", "b")}, targets, ["a", "b"], trained={"a"}, k=2)
    assert out["P@2"] == 0.0
    assert out["catalog_coverage@2"] == pytest.approx(100.0)  # x, y over a catalog of 2


def test_diversity_comes_from_the_listed_items_categories() -> None:
    categories = {"a": "shoes", "b": "shoes", "c": "hats"}
    targets = {"e1": Target("a", False), "e2": Target("c", False)}
    lists = {"e1": _list("a", "b"), "e2": _list("a", "c")}
    out = served_metrics(lists, targets, ["a", "b", "c"], {"a", "b", "c"}, categories, k=2)
    assert out["ILD@2"] == pytest.approx(0.5)  # a same-category list, a mixed one
    assert out["categories@2"] == pytest.approx(1.5)


def test_a_message_becomes_a_served_list() -> None:
    message = {"items": [{"item_id": "a", "score": 1.0, "reason": SIMILAR},
                         {"item_id": 7, "score": 0.5, "reason": TRENDING}], "fallback": False}
    assert ServedList.from_message(message) == ServedList(("a", "7"), (SIMILAR, TRENDING),
                                                          False)


def _events(*pairs: tuple[str, str]) -> list:
    from stream_rec.offline.replay import ReplayEvent

    return [ReplayEvent(user.encode(), json.dumps({"event_id": eid}).encode(), n)
            for n, (user, eid) in enumerate(pairs)]


def test_a_shoppers_next_event_waits_for_the_list_of_the_previous_one() -> None:
    from stream_rec.offline.served import TurnTaking

    turns = TurnTaking(_events(("a", "a1"), ("b", "b1"), ("a", "a2"), ("a", "a3")), in_flight=8)
    first = [json.loads(e.value)["event_id"] for e in turns.ready()]
    assert first == ["a1", "b1"] and turns.ready() == []
    turns.answered("b1")  # b is done; a still waits
    assert turns.ready() == [] and not turns.done
    turns.answered("a1")
    assert [json.loads(e.value)["event_id"] for e in turns.ready()] == ["a2"]
    turns.answered("a1")  # a repeat changes nothing
    assert turns.ready() == []
    turns.answered("a2")
    turns.answered("a3")
    assert turns.done


def test_shoppers_are_admitted_in_order_of_their_first_event_up_to_the_limit() -> None:
    from stream_rec.offline.served import TurnTaking

    turns = TurnTaking(_events(("a", "a1"), ("b", "b1"), ("c", "c1"), ("a", "a2")), in_flight=2)
    assert [json.loads(e.value)["event_id"] for e in turns.ready()] == ["a1", "b1"]
    turns.answered("b1")
    assert [json.loads(e.value)["event_id"] for e in turns.ready()] == ["c1"]
    turns.answered("a1")
    assert [json.loads(e.value)["event_id"] for e in turns.ready()] == ["a2"]
