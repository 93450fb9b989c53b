"""The worker's recommender on a real small trained ONNX model (no Kafka needed).

The generated shop has a known structure (each item has a successor the model learns), so the
whole serving path — retrieval, fused scoring, re-ranking, business rules — can be checked for
what a shop needs: the right item is there, the rules always hold, the output is stable.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from stream_rec.core.catalog import parse_catalog_item
from stream_rec.core.events import Event
from stream_rec.core.state import UserState, apply_event, record_shown
from stream_rec.model import load_served_model
from stream_rec.rerank import RerankPolicy
from stream_rec.serving.lists import REASON_NEW, REASON_SIMILAR, RecRequest
from stream_rec.serving.recommender import Recommender, RecommenderConfig
from tests.training.synthetic import successor_table

SUCC = successor_table(240, 10, n_known=200)


def _state(items: list[str], purchase: str | None = None) -> UserState:
    state = UserState()
    for n, item in enumerate(items):
        state = apply_event(state, Event(f"e{n}", "u", item, "click", 1_700_000_000_000 + n),
                            None)
    if purchase:
        state = apply_event(state, Event("p", "u", purchase, "purchase", 1_700_000_001_000),
                            None)
    return state


@pytest.fixture
def recommender(shop, trained) -> Recommender:
    _, folder = trained
    rec = Recommender(RecommenderConfig(k=10, pool=50))
    for item_id, attributes in shop.items.items():
        rec.upsert_item(parse_catalog_item(item_id, json.dumps(attributes).encode()))
    rec.swap_model(load_served_model(folder))
    return rec


def _ids(rec_list) -> list[str]:  # type: ignore[no-untyped-def]
    return [i.item_id for i in rec_list.items]


def test_the_learned_successor_is_recommended(recommender: Recommender) -> None:
    hits = 0
    starts = range(0, 200, 7)
    for start in starts:
        history = [f"i{start}", f"i{SUCC[start]}"]
        [out] = recommender.recommend([RecRequest("u", "e", _state(history), 0.0)])
        assert out.model_version == "v1" and not out.fallback and len(out.items) == 10
        hits += f"i{SUCC[SUCC[start]]}" in _ids(out)
    assert hits / len(starts) > 0.8


def test_rules_always_hold(recommender: Recommender) -> None:
    history = ["i4", f"i{SUCC[4]}"]
    target = f"i{SUCC[SUCC[4]]}"
    [free] = recommender.recommend([RecRequest("u", "e", _state(history), 0.0)])
    assert target in _ids(free)
    # bought it: never again
    [bought] = recommender.recommend([RecRequest("u", "e", _state(history, target), 0.0)])
    assert target not in _ids(bought)
    # shown three times without a click: rest it
    tired = _state(history)
    for _ in range(3):
        tired = record_shown(tired, [target])
    [rested] = recommender.recommend([RecRequest("u", "e", tired, 0.0)])
    assert target not in _ids(rested)
    # delisted, then out of stock: gone from every list
    recommender.delist_item(target)
    [gone] = recommender.recommend([RecRequest("u", "e", _state(history), 0.0)])
    assert target not in _ids(gone)
    recommender.upsert_item(parse_catalog_item(target, b'{"category": "c0", "in_stock": false}'))
    [sold_out] = recommender.recommend([RecRequest("u", "e", _state(history), 0.0)])
    assert target not in _ids(sold_out)
    for out in (free, bought, rested, gone, sold_out):
        assert len(set(_ids(out))) == len(out.items) == 10


def test_a_new_catalog_item_is_a_candidate_scored_by_attributes(recommender: Recommender
                                                                ) -> None:
    recommender.upsert_item(parse_catalog_item("brand-new", b'{"category": "c3", "shape": "s0"}'))
    state = _state(["i3", "i13", "i23"])
    wide = replace(recommender.config, k=60, pool=50)
    recommender.config = wide
    [out] = recommender.recommend([RecRequest("u", "e", state, 0.0)])
    new = [i for i in out.items if i.item_id == "brand-new"]
    # Found by retrieval through its attributes (the model's content rows) when the model
    # ships them, else as one of the newest items: a candidate either way, with a real score.
    assert new and new[0].reason in (REASON_SIMILAR, REASON_NEW) and np.isfinite(new[0].score)


def test_same_input_same_output_and_batching_does_not_matter(recommender: Recommender
                                                              ) -> None:
    requests = [RecRequest(f"u{n}", f"e{n}", _state([f"i{n}", f"i{SUCC[n]}"]), 0.0)
                for n in range(12)]
    together = recommender.recommend(requests)
    alone = [recommender.recommend([r])[0] for r in requests]
    again = recommender.recommend(requests)
    for a, b, c in zip(together, alone, again, strict=True):
        assert _ids(a) == _ids(b) == _ids(c)
        assert [i.score for i in a.items] == pytest.approx([i.score for i in b.items], abs=1e-4)


def test_policy_per_request_is_recorded(recommender: Recommender) -> None:
    state = _state(["i1", f"i{SUCC[1]}"])
    plain, mmr = recommender.recommend([
        RecRequest("u", "e1", state, 0.0, RerankPolicy.parse("none")),
        RecRequest("u", "e2", state, 0.0, RerankPolicy.parse("mmr:0.5"))])
    assert plain.policy.method == "none" and mmr.policy.to_dict() == {"method": "mmr",
                                                                      "param": 0.5}
    assert [i.score for i in plain.items] == sorted((i.score for i in plain.items),
                                                    reverse=True)


def test_without_a_model_lists_are_marked_fallback(shop) -> None:
    rec = Recommender(RecommenderConfig(k=5))
    for n in range(30):
        rec.trending.add(f"i{n % 6}", 1_700_000_000_000 + n)
    [out] = rec.recommend([RecRequest("u", "e", _state(["i1"], purchase="i0"), 0.0)])
    assert out.fallback and out.model_version is None
    assert 0 < len(out.items) <= 5 and "i0" not in _ids(out)


def test_a_new_candidate_source_plugs_in_without_changing_the_recommender(shop, trained
                                                                           ) -> None:
    """An extra source (here: a shop's editorial picks) is one class; its reason shows on the
    list, its picks go through the same scoring, exclusions and re-ranking."""
    import numpy as np

    from stream_rec.serving.candidates import ExactRetrieval

    class EditorialPicks:
        reason = "picked by our editors"

        def __init__(self, items: list[str]) -> None:
            self.items = items

        def propose(self, queries, table, n):  # type: ignore[no-untyped-def]
            positions = np.asarray(table.positions(self.items[:n]), dtype=np.int64)
            return np.broadcast_to(positions, (len(queries), len(positions)))

    _, folder = trained
    picks = ["i150", "i151", "i152"]
    # Retrieval alone would find next to none of the picks for this shopper: only the
    # editorial source can put them on the list.
    rec = Recommender(RecommenderConfig(k=30, pool=5),
                      sources=[(ExactRetrieval(), 5), (EditorialPicks(picks), 3)])
    for item_id, attributes in shop.items.items():
        rec.upsert_item(parse_catalog_item(item_id, json.dumps(attributes).encode()))
    rec.swap_model(load_served_model(folder))
    [out] = rec.recommend([RecRequest("u", "e", _state(["i4", f"i{SUCC[4]}"]), 0.0)])
    by_reason: dict[str, set[str]] = {}
    for item in out.items:
        by_reason.setdefault(item.reason, set()).add(item.item_id)
    assert by_reason.get("picked by our editors") == set(picks) - by_reason.get(
        "similar to your recent items", set())
    assert len(out.items) <= 8  # five retrieved and three picks: nothing else was proposed
