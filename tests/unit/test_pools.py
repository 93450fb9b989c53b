"""Candidate pools: what each list keeps of the candidates it was picked from.

``lists.Pool`` encodes to a small JSON object appended to the published message as the
``latest-recs`` value (``with_pool``/``without_pool``); the Recommender fills one per list,
with and without a model, holding only the shopper's eligible candidates, best score first.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_rec.core.attribution import group_key
from stream_rec.core.catalog import parse_catalog_item
from stream_rec.core.events import TYPE_CODE, Event
from stream_rec.core.experiments import ExperimentTag
from stream_rec.core.state import UserState, apply_event
from stream_rec.model import ServedModel, load_served_model, write_manifest
from stream_rec.rerank import BusinessRules, RerankPolicy
from stream_rec.serving.batch import BatchConfig, BatchHandler, handle_batch
from stream_rec.serving.dead_letter import Message
from stream_rec.serving.lists import (
    REASON_CODE,
    REASON_NEW,
    REASON_RECENT,
    REASON_SIMILAR,
    REASON_TRENDING,
    REASONS,
    Pool,
    RecItem,
    RecList,
    RecRequest,
    list_id_for,
    with_pool,
    without_pool,
)
from stream_rec.serving.recommender import Recommender, RecommenderConfig
from tests.unit.fake_artifact import make_artifact

NOW_MS = 1_750_000_000_000
MODEL_ITEMS = tuple(f"i{n}" for n in range(10))


# -- shared helpers (test_request_lists.py imports these) ------------------------------------
def served_model(folder: Path, vectors: np.ndarray, version: str = "v1",
                 items: tuple[str, ...] = MODEL_ITEMS) -> ServedModel:
    """A real tiny ONNX model (test_experiment_arms' graph): a shopper's vector is the sum of
    their history items' vectors, a candidate's score its dot product with it."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from tests.unit.test_experiment_arms import _tiny_scoring_graph

    vectors = np.asarray(vectors, dtype=np.float32)
    make_artifact(folder, version=version, items=items, with_attributes=False)
    (folder / "item_ids.json").write_text(json.dumps(list(items)))
    np.save(folder / "item_embeddings.npy", vectors)
    np.save(folder / "item_attributes.npy", np.zeros((len(items), 0), np.int64))
    _tiny_scoring_graph(folder / "model.onnx", vectors)
    manifest = json.loads((folder / "manifest.json").read_text())
    write_manifest(folder, manifest, files=manifest["files"])
    return load_served_model(folder)


def random_vectors(seed: int, n: int = len(MODEL_ITEMS)) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(n, 4)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def in_stock_catalog(items: tuple[str, ...], in_stock: set[str] | None = None) -> dict:
    """A catalog of ``items`` in one category; all in stock, or only ``in_stock``."""
    return {i: parse_catalog_item(i, json.dumps(
        {"category": "c", "in_stock": in_stock is None or i in in_stock}).encode())
        for i in items}


def retrieved_both_ways(model: ServedModel, items: tuple[str, ...], n: int = 50
                        ) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, set[str]]:
    """Every seventh item out of stock, then 16 queries retrieved exactly and through the
    model's search (``IndexRetrieval``): the item table, queries, both (16, n) position
    arrays and the out-of-stock ids."""
    from stream_rec.serving.candidates import ExactRetrieval, IndexRetrieval
    from stream_rec.serving.item_table import ItemTable

    out_of_stock = set(items[::7])
    table = ItemTable(model, in_stock_catalog(items, set(items) - out_of_stock))
    queries = random_vectors(5, 16) * 3.0
    return (table, queries, ExactRetrieval().propose(queries, table, n),
            IndexRetrieval().propose(queries, table, n), out_of_stock)


def state_of(*events: tuple[str, str]) -> UserState:
    """A shopper's state after (item, type) events, oldest first."""
    state = UserState()
    for n, (item, kind) in enumerate(events):
        state = apply_event(state, Event(f"e{n}", "u", item, kind, NOW_MS - 10_000 + n), None)
    return state


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ServedModel:
    return served_model(tmp_path_factory.mktemp("pool-model") / "v1", random_vectors(1))


# -- Pool encode / decode ------------------------------------------------------------------
def _pool(ids: tuple[str, ...], scores: list[float], reasons: str | None = None) -> Pool:
    return Pool(ids, np.array(scores, dtype=np.float32),
                "0" * len(ids) if reasons is None else reasons)


def test_a_pool_round_trips_exactly_through_its_encoding() -> None:
    tiny = float(np.finfo(np.float32).tiny)
    scores = [0.1, 1 / 3, -0.0, tiny / 2, float(np.finfo(np.float32).max), -1e-30, 7.0]
    ids = ("a", "é", "日本語", "🛒", 'quo"te', ',"pool":x', "back\\slash")
    pool = _pool(ids, scores, "0123401")
    back = Pool.decode(orjson.loads(pool.encode()))
    assert back.ids == ids
    assert back.reasons == "0123401"
    assert back.scores.dtype == np.float32
    assert back.scores.tobytes() == np.array(scores, dtype=np.float32).tobytes()  # bit-exact
    assert back.scores.flags.writeable  # a copy, not a view of the decoded bytes


def test_the_encoding_is_ids_reasons_and_little_endian_float32_base64() -> None:
    pool = _pool(("x", "y"), [1.5, -2.0], "12")
    doc = orjson.loads(pool.encode())
    assert set(doc) == {"ids", "r", "s"}
    assert doc["ids"] == ["x", "y"] and doc["r"] == "12"
    assert np.frombuffer(base64.b64decode(doc["s"]), dtype="<f4").tolist() == [1.5, -2.0]
    # Scores given in another dtype are written as float32.
    wide = Pool(("x",), np.array([0.1], dtype=np.float64), "0")
    assert Pool.decode(orjson.loads(wide.encode())).scores.tolist() == [np.float32(0.1)]


def test_an_empty_pool_round_trips() -> None:
    empty = _pool((), [], "")
    back = Pool.decode(orjson.loads(empty.encode()))
    assert back.ids == () and back.reasons == "" and len(back.scores) == 0
    assert back.scores.dtype == np.float32


def _s(*values: float) -> str:
    return base64.b64encode(np.array(values, dtype="<f4").tobytes()).decode()


@pytest.mark.parametrize("doc", [
    None, 5, "pool", [], [1, 2], {},
    {"ids": ["a"], "r": "0"},  # no scores
    {"s": _s(1.0), "r": "0"},  # no ids
    {"ids": ["a"], "s": _s(1.0)},  # no reasons
    {"ids": 7, "s": _s(1.0), "r": "0"},  # ids not a list
    {"ids": ["a"], "s": 12, "r": "0"},  # scores not text
    {"ids": ["a"], "s": "abc", "r": "0"},  # not base64 (bad padding)
    {"ids": ["a"], "s": base64.b64encode(b"\x00\x00\x80").decode(), "r": "0"},  # 3 bytes
    {"ids": ["a", "b"], "s": _s(1.0), "r": "00"},  # fewer scores than ids
    {"ids": ["a"], "s": _s(1.0, 2.0), "r": "0"},  # more scores than ids
    {"ids": ["a"], "s": _s(1.0), "r": ""},  # fewer reasons
    {"ids": ["a"], "s": _s(1.0), "r": "01"},  # more reasons
])
def test_decoding_a_malformed_pool_raises_value_error(doc: Any) -> None:
    with pytest.raises(ValueError, match="unreadable candidate pool"):
        Pool.decode(doc)


def test_decoding_ids_given_as_a_string_raises_value_error() -> None:
    with pytest.raises(ValueError):
        Pool.decode({"ids": "ab", "s": _s(1.0, 2.0), "r": "00"})


# -- with_pool / without_pool ----------------------------------------------------------------
def _rec_list(item_ids: list[str], user: str = "u1", pool: Pool | None = None,
              experiment: ExperimentTag | None = None) -> RecList:
    return RecList(user, "ev-1", tuple(RecItem(i, 1.0 / (n + 1), REASON_SIMILAR)
                                       for n, i in enumerate(item_ids)),
                   "v1", RerankPolicy.parse("dpp:0.3"), False, NOW_MS, 12.5,
                   list_id=list_id_for("topic", 0, 7), experiment=experiment, pool=pool)


NASTY_IDS = ['a,"pool":b', '"', '","pool":{}}', "x\\", "x\\\\", '\\",\\"pool\\":', "é🛒",
             "}", "\u2028", '"pool"']


def test_the_latest_value_is_the_message_with_the_pool_as_its_last_key() -> None:
    pool = _pool(tuple(NASTY_IDS), list(np.linspace(1, 0, len(NASTY_IDS))))
    rec = _rec_list(NASTY_IDS[:4], user='u,"pool":1', pool=pool,
                    experiment=ExperimentTag('exp,"pool":', 'arm"', 2))
    message = orjson.dumps(rec.to_dict())
    value = with_pool(message, rec.pool)
    doc = orjson.loads(value)
    assert list(doc) == [*rec.to_dict(), "pool"]
    assert {k: v for k, v in doc.items() if k != "pool"} == orjson.loads(message)
    back = Pool.decode(doc["pool"])
    assert back.ids == pool.ids and back.scores.tobytes() == pool.scores.tobytes()
    assert without_pool(value) == message


def test_without_pool_leaves_a_value_without_a_pool_unchanged() -> None:
    message = orjson.dumps(_rec_list(NASTY_IDS).to_dict())
    assert with_pool(message, None) == message
    assert without_pool(message) == message


def test_an_empty_pool_is_still_written_and_removed() -> None:
    message = orjson.dumps(_rec_list([]).to_dict())
    value = with_pool(message, _pool((), [], ""))
    assert orjson.loads(value)["pool"] == {"ids": [], "r": "", "s": ""}
    assert without_pool(value) == message


@settings(max_examples=150, deadline=None)
@given(items=st.lists(st.text(max_size=12), max_size=6),
       pool_ids=st.lists(st.text(max_size=12), max_size=6), user=st.text(max_size=12))
def test_with_and_without_pool_round_trip_any_ids(items: list[str], pool_ids: list[str],
                                                  user: str) -> None:
    pool = _pool(tuple(pool_ids), [float(n) for n in range(len(pool_ids))])
    message = orjson.dumps(_rec_list(items, user=user).to_dict())
    value = with_pool(message, pool)
    assert without_pool(value) == message
    assert Pool.decode(orjson.loads(value)["pool"]).ids == tuple(pool_ids)


def test_reason_codes_are_the_index_of_each_reason() -> None:
    assert len(set(REASONS)) == len(REASONS)
    assert all(len(code) == 1 for code in REASON_CODE.values())  # one character per item
    assert [REASONS[int(REASON_CODE[r])] for r in REASONS] == list(REASONS)


def test_list_ids_name_the_message_and_are_32_hex() -> None:
    one = list_id_for("t", 0, 1)
    assert one == list_id_for("t", 0, 1)
    assert len(one) == 32 and int(one, 16) >= 0
    assert len({one, list_id_for("t", 0, 2), list_id_for("t", 1, 1),
                list_id_for("u", 0, 1)}) == 4


# -- Recommender pools, without a model --------------------------------------------------------
CATALOG = [f"i{n}" for n in range(30)]


def _fallback_recommender(**config: Any) -> Recommender:
    rec = Recommender(RecommenderConfig(**{"k": 5, "pool": 20, **config}))
    for n, item in enumerate(CATALOG):
        rec.upsert_item(parse_catalog_item(item, b'{"category": "c%d"}' % (n % 4)))
    for n in range(15):  # i0 the most popular, i14 the least
        for _ in range(15 - n):
            rec.trending.add(f"i{n}", NOW_MS - 60_000, TYPE_CODE["view"])
    return rec


def _exclusions(rec: Recommender) -> UserState:
    """A shopper who viewed i20 (not trending), bought i1 and was shown i2 three times; i3
    is delisted and i4 out of stock."""
    rec.delist_item("i3")
    rec.upsert_item(parse_catalog_item("i4", b'{"category": "c0", "in_stock": false}'))
    state = state_of(("i20", "view"), ("i1", "purchase"))
    return replace(state, shown_items=("i2",), shown_counts=(3,))


def _check_pool(made: RecList, kept: int) -> Pool:
    pool = made.pool
    assert pool is not None
    assert len(pool.ids) == len(set(pool.ids)) == len(pool.scores) == len(pool.reasons)
    assert len(pool.ids) <= kept
    assert pool.scores.dtype == np.float32
    assert np.all(np.isfinite(pool.scores))
    assert np.all(np.diff(pool.scores) <= 0), pool.scores  # best score first
    assert set(pool.reasons) <= set(REASON_CODE.values())
    return pool


def test_a_fallback_pool_holds_the_eligible_candidates_by_score() -> None:
    rec = _fallback_recommender()
    state = _exclusions(rec)
    [made] = rec.recommend([RecRequest("u1", "e1", state, NOW_MS)])
    assert made.fallback
    pool = _check_pool(made, 200)
    # Every candidate (trending, and the shopper's recent items) but the excluded ones.
    assert set(pool.ids) == {f"i{n}" for n in (0, *range(5, 15), 20)}
    # The list is picked from the pool: each item is there, with its score and reason.
    where = {item: n for n, item in enumerate(pool.ids)}
    assert made.items
    for item in made.items:
        n = where[item.item_id]
        assert pool.scores[n] == np.float32(item.score)
        assert REASONS[int(pool.reasons[n])] == item.reason
    assert pool.reasons[where["i20"]] == REASON_CODE[REASON_RECENT]
    assert pool.reasons[where["i14"]] in (REASON_CODE[REASON_TRENDING], "3")


@pytest.mark.parametrize("kept", [1, 3, 7])
def test_a_fallback_pool_keeps_the_best_pool_kept(kept: int) -> None:
    full = _fallback_recommender()
    state = _exclusions(full)
    [whole] = full.recommend([RecRequest("u1", "e1", state, NOW_MS)])
    small = _fallback_recommender(pool_kept=kept)
    _exclusions(small)
    [made] = small.recommend([RecRequest("u1", "e1", state, NOW_MS)])
    pool = _check_pool(made, kept)
    assert whole.pool is not None
    assert pool.ids == whole.pool.ids[:kept]
    assert pool.scores.tolist() == whole.pool.scores[:kept].tolist()


def test_rules_that_are_off_let_items_into_the_pool() -> None:
    rec = _fallback_recommender(rules=BusinessRules(exclude_purchased=False,
                                                    max_shows_without_click=0))
    state = _exclusions(rec)
    [made] = rec.recommend([RecRequest("u1", "e1", state, NOW_MS)])
    pool = _check_pool(made, 200)
    assert {"i1", "i2"} <= set(pool.ids)
    assert not {"i3", "i4"} & set(pool.ids)  # unavailable items: never


def test_each_shopper_of_a_batch_gets_their_own_pool() -> None:
    rec = _fallback_recommender()
    buyer = state_of(("i0", "purchase"))
    looker = state_of(("i25", "view"))
    made = rec.recommend([RecRequest("a", "e1", buyer, NOW_MS),
                          RecRequest("b", "e2", looker, NOW_MS),
                          RecRequest("c", "e3", UserState(), NOW_MS)])
    pools = [_check_pool(m, 200) for m in made]
    assert "i0" not in pools[0].ids and "i0" in pools[1].ids and "i0" in pools[2].ids
    assert "i25" in pools[1].ids and "i25" not in pools[0].ids + pools[2].ids


@pytest.mark.parametrize("kept", [0, -1])
def test_pool_kept_zero_keeps_no_pool(kept: int) -> None:
    rec = _fallback_recommender(pool_kept=kept)
    [made] = rec.recommend([RecRequest("u1", "e1", UserState(), NOW_MS)])
    assert made.items and made.pool is None


def test_a_shopper_with_nothing_to_recommend_gets_an_empty_pool() -> None:
    rec = Recommender(RecommenderConfig(k=5, pool=20))
    [made] = rec.recommend([RecRequest("u1", "e1", UserState(), NOW_MS)])
    assert made.items == ()
    assert made.pool is not None and made.pool.ids == () and made.pool.reasons == ""


# -- Recommender pools, with a model -----------------------------------------------------------
def _model_recommender(model: ServedModel, **config: Any) -> Recommender:
    rec = Recommender(RecommenderConfig(**{"k": 4, "pool": 20, "trending_candidates": 5,
                                           "new_item_candidates": 5, **config}))
    for n, item in enumerate(MODEL_ITEMS):
        rec.upsert_item(parse_catalog_item(item, b'{"category": "c%d"}' % (n % 3)))
    rec.swap_model(model)
    rec.upsert_item(parse_catalog_item("fresh", b'{"category": "c1"}'))  # model never saw it
    for n in (6, 7, 2):
        rec.trending.add(f"i{n}", NOW_MS - 1000, TYPE_CODE["view"])
    return rec


def _model_exclusions(rec: Recommender) -> UserState:
    """Viewed i0 and i1, bought i2, shown i3 three times; i4 delisted, i5 out of stock."""
    rec.delist_item("i4")
    rec.upsert_item(parse_catalog_item("i5", b'{"category": "c2", "in_stock": false}'))
    state = state_of(("i0", "view"), ("i1", "view"), ("i2", "purchase"))
    return replace(state, shown_items=("i3",), shown_counts=(3,))


def test_a_model_pool_holds_the_eligible_candidates_by_model_score(model: ServedModel) -> None:
    rec = _model_recommender(model)
    state = _model_exclusions(rec)
    [made] = rec.recommend([RecRequest("u1", "e1", state, NOW_MS)])
    assert not made.fallback and made.model_version == "v1"
    pool = _check_pool(made, 200)
    assert set(pool.ids) == {"i0", "i1", "i6", "i7", "i8", "i9", "fresh"}
    # The scores are the model's for this shopper.
    history = [[(h.item_id, h.type_code) for h in state.history]]
    expected = model.score(history, [list(pool.ids)], rec.catalog.items)[0]
    np.testing.assert_allclose(pool.scores, expected, rtol=1e-5, atol=1e-6)
    where = {item: n for n, item in enumerate(pool.ids)}
    assert pool.reasons[where["fresh"]] == REASON_CODE[REASON_NEW]
    assert pool.reasons[where["i9"]] == REASON_CODE[REASON_SIMILAR]
    assert made.items
    for item in made.items:
        n = where[item.item_id]
        assert pool.scores[n] == np.float32(item.score)
        assert REASONS[int(pool.reasons[n])] == item.reason


def test_a_model_pool_keeps_the_best_pool_kept(model: ServedModel) -> None:
    rec = _model_recommender(model)
    state = _model_exclusions(rec)
    [whole] = rec.recommend([RecRequest("u1", "e1", state, NOW_MS)])
    rec.config.pool_kept = 3
    [made] = rec.recommend([RecRequest("u1", "e1", state, NOW_MS)])
    pool = _check_pool(made, 3)
    assert whole.pool is not None and pool.ids == whole.pool.ids[:3]
    rec.config.pool_kept = 0
    [none] = rec.recommend([RecRequest("u1", "e1", state, NOW_MS)])
    assert none.items and none.pool is None


def test_a_model_pool_is_per_shopper(model: ServedModel) -> None:
    rec = _model_recommender(model)
    made = rec.recommend([RecRequest("a", "e1", state_of(("i8", "purchase")), NOW_MS),
                          RecRequest("b", "e2", state_of(("i8", "view")), NOW_MS)])
    first, second = (_check_pool(m, 200) for m in made)
    assert "i8" not in first.ids and "i8" in second.ids


def test_arm_models_keep_pools_too(model: ServedModel,
                                   tmp_path_factory: pytest.TempPathFactory) -> None:
    other = served_model(tmp_path_factory.mktemp("arm") / "v2", random_vectors(2), "v2")
    rec = _model_recommender(model)
    rec.set_arm_models([other])
    state = state_of(("i0", "view"))
    tag = ExperimentTag("exp", "b", 1)
    made = rec.recommend([RecRequest("a", "e1", state, NOW_MS),
                          RecRequest("b", "e2", state, NOW_MS, experiment=tag, model="v2")])
    assert [m.model_version for m in made] == ["v1", "v2"]
    pools = [_check_pool(m, 200) for m in made]
    assert set(pools[0].ids) == set(pools[1].ids)
    for served, pool in zip((model, other), pools, strict=True):
        expected = served.score([[("i0", TYPE_CODE["view"])]], [list(pool.ids)])[0]
        np.testing.assert_allclose(pool.scores, expected, rtol=1e-5, atol=1e-6)


def test_planned_group_names_the_model_and_policy_that_will_make_the_list(
        model: ServedModel, tmp_path_factory: pytest.TempPathFactory) -> None:
    rec = _fallback_recommender()
    plain = RecRequest("a", "e1", UserState(), NOW_MS)
    assert rec.planned_group(plain) == group_key(None, "dpp:0.15", None) == "fallback|dpp:0.15||"
    tag = ExperimentTag("exp", "b", 3)
    asked = RecRequest("a", "e1", UserState(), NOW_MS, RerankPolicy.parse("mmr:0.7"), tag, "v2")
    assert rec.planned_group(asked) == "fallback|mmr:0.7|exp|b"
    rec.swap_model(model)
    assert rec.planned_group(plain) == "v1|dpp:0.15||"
    assert rec.planned_group(asked) == "v1|mmr:0.7|exp|b"  # v2 not served: the main model
    other = served_model(tmp_path_factory.mktemp("planned") / "v2", random_vectors(2), "v2")
    rec.set_arm_models([other])
    assert rec.planned_group(asked) == "v2|mmr:0.7|exp|b"
    [made] = rec.recommend([asked])
    assert group_key(made.model_version, str(made.policy), made.experiment) == \
        rec.planned_group(asked)


# -- the batch writes the pool into latest-recs, not into the message --------------------------
def _event(user: str, item: str, event_id: str) -> bytes:
    return orjson.dumps({"event_id": event_id, "user_id": user, "item_id": item,
                         "type": "view", "ts": NOW_MS - 1000})


def _batch(rec: Recommender) -> tuple[list[Any], list[Any]]:
    handler = BatchHandler(rec, BatchConfig(max_event_bytes=65536))
    messages = [Message(user.encode(), _event(user, item, f"ev{n}"), "storefront.events", 0, n)
                for n, (user, item) in enumerate([("u1", "i5"), ("u2", "i25"), ("u1", "i6")])]
    result = handle_batch(handler, messages, lambda key, index: None, NOW_MS)
    assert not result.dead_letters
    return result.latest, result.lists


def test_the_batch_keeps_the_pool_in_latest_recs_and_publishes_without_it() -> None:
    latest, outgoing = _batch(_fallback_recommender())
    assert len(outgoing) == 3
    last = {o.key: o for o in outgoing}  # the latest list of each shopper
    assert {w.key for w in latest} == {b"u1", b"u2"}
    for write in latest:
        sent = last[write.key]
        assert b'"pool"' not in sent.value
        assert "pool" not in orjson.loads(sent.value)
        doc = orjson.loads(write.value)
        assert list(doc) == [*orjson.loads(sent.value), "pool"]
        pool = Pool.decode(doc["pool"])
        assert sent.rec.pool is not None
        assert pool.ids == sent.rec.pool.ids and pool.reasons == sent.rec.pool.reasons
        assert pool.scores.tobytes() == sent.rec.pool.scores.tobytes()
        assert {i["item_id"] for i in doc["items"]} <= set(pool.ids)
        assert without_pool(write.value) == sent.value


def test_the_batch_with_a_model_keeps_the_pool_too(model: ServedModel) -> None:
    rec = _model_recommender(model)
    for item in CATALOG[10:]:
        rec.upsert_item(parse_catalog_item(item, b'{"category": "c0"}'))
    latest, outgoing = _batch(rec)
    by_key = {o.key: o for o in outgoing}
    for write in latest:
        doc = orjson.loads(write.value)
        assert doc["model_version"] == "v1"
        pool = Pool.decode(doc["pool"])
        assert pool.ids and {i["item_id"] for i in doc["items"]} <= set(pool.ids)
        assert without_pool(write.value) == by_key[write.key].value


def test_without_kept_pools_the_latest_value_is_the_message() -> None:
    latest, outgoing = _batch(_fallback_recommender(pool_kept=0))
    by_key = {o.key: o.value for o in outgoing}
    assert latest and all(w.value == by_key[w.key] for w in latest)
