"""Lists made when a page asks (stream_rec.serving.request_lists): query parsing, re-ranking a
kept pool, new shoppers' pools, similar items, and the answers' OpenAPI contract."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import orjson
import pytest

from stream_rec.core.catalog import parse_catalog_item
from stream_rec.core.events import TYPE_CODE
from stream_rec.core.experiments import ExperimentTag
from stream_rec.core.state import UserState
from stream_rec.model import ServedModel
from stream_rec.rerank import RerankPolicy
from stream_rec.serving.lists import (
    REASON_CATEGORY,
    REASON_CODE,
    REASON_NEW,
    REASON_RECENT,
    REASON_SIMILAR,
    REASON_TRENDING,
    REASONS,
    Pool,
    RecRequest,
    with_pool,
)
from stream_rec.serving.recommender import Recommender, RecommenderConfig
from stream_rec.serving.request_lists import (
    MAX_EXCLUDE,
    MAX_ID_CHARS,
    REASON_SIMILAR_ITEM,
    ListQuery,
    QueryError,
    as_params,
    new_shopper_pool,
    parse_list_query,
    parse_similar_query,
    pool_of,
    request_list,
    rerank_pool,
    similar_items,
    stored_pool,
)
from tests.openapi_contract import Contract
from tests.unit.test_pools import MODEL_ITEMS, random_vectors, served_model, state_of

NOW_MS = 1_750_000_000_000
LISTS = "/users/{user_id}/recommendations/"
SIMILAR = "/items/{item_id}/similar/"
HEX32 = re.compile(r"^[0-9a-f]{32}$")
NONE = RerankPolicy("none", 0.0)


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ServedModel:
    return served_model(tmp_path_factory.mktemp("request-model") / "v1", random_vectors(3))


def _near_duplicate_vectors() -> np.ndarray:
    """i0's direction; i1..i4 near-duplicates of it; i5..i9 further off, each its own way."""
    rng = np.random.default_rng(7)
    base = np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32)
    vectors = [base]
    vectors += [base + 0.01 * rng.normal(size=4).astype(np.float32) for _ in range(4)]
    others = [[0.8, 0.6, 0.0, 0.0], [0.8, 0.0, 0.6, 0.0], [0.8, 0.0, 0.0, 0.6],
              [0.8, -0.6, 0.0, 0.0], [0.8, 0.0, -0.6, 0.0]]
    vectors += [np.array(v, dtype=np.float32) for v in others]
    out = np.stack(vectors)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def duplicates_model(tmp_path_factory: pytest.TempPathFactory) -> ServedModel:
    return served_model(tmp_path_factory.mktemp("dup-model") / "v1", _near_duplicate_vectors(),
                        "dup")


# -- parse_list_query ------------------------------------------------------------------------
def test_no_parameters_is_the_plain_stored_list() -> None:
    query = parse_list_query({})
    assert query == ListQuery() and query.plain
    assert query.n is None and query.in_stock and query.policy is None


@pytest.mark.parametrize(("raw", "n"), [("1", 1), ("200", 200), ("20", 20), (" 7 ", 7),
                                        ("007", 7)])
def test_n_within_bounds(raw: str, n: int) -> None:
    query = parse_list_query({"n": raw})
    assert query.n == n and not query.plain


@pytest.mark.parametrize("raw", ["0", "201", "abc", "", " ", "-1", "+5", "1.5", "1e2", "10**3",
                                 "99999999999999999999999"])
def test_n_out_of_bounds_or_malformed(raw: str) -> None:
    with pytest.raises(QueryError, match="n must be a whole number from 1 to 200"):
        parse_list_query({"n": raw})


@pytest.mark.parametrize("parse", [parse_list_query, parse_similar_query])
def test_n_of_a_superscript_digit_is_a_query_error(parse: Any) -> None:
    with pytest.raises(QueryError):
        parse({"n": "²"})


def test_exclude_takes_up_to_200_ids() -> None:
    ids = [f"item-{n}" for n in range(MAX_EXCLUDE)]
    query = parse_list_query({"exclude": ",".join(ids)})
    assert query.exclude == frozenset(ids)
    with pytest.raises(QueryError, match="at most 200"):
        parse_list_query({"exclude": ",".join([*ids, "one-more"])})
    # Repeats and blanks count once / not at all.
    again = parse_list_query({"exclude": ",".join(ids + ids) + ", ,,"})
    assert again.exclude == frozenset(ids)


def test_exclude_ids_are_trimmed_and_blanks_skipped() -> None:
    assert parse_list_query({"exclude": " a , ,b,,"}).exclude == {"a", "b"}
    assert parse_list_query({"exclude": ""}).exclude == frozenset()


@pytest.mark.parametrize("raw", ["a,b\x00", "a\tb", "ok,\x7f", "x" * (MAX_ID_CHARS + 1),
                                 "a,\u200b"])
def test_exclude_rejects_non_printable_or_long_ids(raw: str) -> None:
    with pytest.raises(QueryError, match="exclude: item ids of at most 256 printable"):
        parse_list_query({"exclude": raw})


def test_exclude_takes_ids_of_256_characters() -> None:
    long_id = "é" * MAX_ID_CHARS
    assert parse_list_query({"exclude": long_id}).exclude == {long_id}


@pytest.mark.parametrize("name", ["category", "context"])
def test_text_parameters_are_1_to_256_printable_characters(name: str) -> None:
    assert getattr(parse_list_query({name: "shoes & hats"}), name) == "shoes & hats"
    assert getattr(parse_list_query({name: "x" * 256}), name) == "x" * 256
    for bad in ["", "x" * 257, "a\nb", "\x00"]:
        with pytest.raises(QueryError, match=f"{name} must be 1 to 256 printable"):
            parse_list_query({name: bad})


@pytest.mark.parametrize(("raw", "value"), [("true", True), ("false", False), ("1", True),
                                            ("0", False), ("TRUE", True), (" False ", False)])
def test_in_stock_values(raw: str, value: bool) -> None:
    assert parse_list_query({"in_stock": raw}).in_stock is value
    assert parse_similar_query({"in_stock": raw})[2] is value


@pytest.mark.parametrize("raw", ["yes", "no", "2", "", "t", "truee"])
def test_in_stock_rejects_other_values(raw: str) -> None:
    with pytest.raises(QueryError, match="in_stock must be true or false"):
        parse_list_query({"in_stock": raw})
    with pytest.raises(QueryError, match="in_stock must be true or false"):
        parse_similar_query({"in_stock": raw})


@pytest.mark.parametrize("name", ["min_price", "max_price"])
@pytest.mark.parametrize("raw", ["-1", "-0.01", "nan", "NaN", "inf", "-inf", "Infinity", "abc",
                                 "", "1e400", "1,5"])
def test_prices_must_be_finite_and_not_negative(name: str, raw: str) -> None:
    with pytest.raises(QueryError, match=f"{name} must be a number >= 0"):
        parse_list_query({name: raw})


def test_price_bounds() -> None:
    query = parse_list_query({"min_price": "0", "max_price": "10.5"})
    assert (query.min_price, query.max_price) == (0.0, 10.5)
    assert parse_list_query({"min_price": "3", "max_price": "3"}).min_price == 3.0
    with pytest.raises(QueryError, match="min_price must not exceed max_price"):
        parse_list_query({"min_price": "10", "max_price": "9.99"})


@pytest.mark.parametrize(("raw", "policy"), [
    ("dpp:0.3", RerankPolicy("dpp", 0.3)), ("mmr:0.7", RerankPolicy("mmr", 0.7)),
    ("none", NONE), ("NONE", NONE), ("dpp", RerankPolicy.parse("dpp")),
    (" MMR : 1 ", RerankPolicy("mmr", 1.0))])
def test_policy_values(raw: str, policy: RerankPolicy) -> None:
    assert parse_list_query({"policy": raw}).policy == policy


@pytest.mark.parametrize("raw", ["bogus", "dpp:2", "dpp:-0.1", "mmr:abc", "none:0.5", "",
                                 "dpp:nan", "greedy:0.5", ":0.3"])
def test_policy_rejects_bad_methods_and_params(raw: str) -> None:
    with pytest.raises(QueryError, match="^policy: "):
        parse_list_query({"policy": raw})


def test_a_long_policy_with_trailing_garbage_is_rejected() -> None:
    with pytest.raises(QueryError):
        parse_list_query({"policy": "dpp:0.3" + " " * 60 + "zzz"})


@pytest.mark.parametrize("name", ["foo", "N", "diverse", "limit", ""])
def test_unknown_parameters_are_rejected(name: str) -> None:
    with pytest.raises(QueryError, match="unknown parameter"):
        parse_list_query({name: "1"})


def test_unknown_parameter_message_names_it_and_the_expected_ones() -> None:
    with pytest.raises(QueryError) as info:
        parse_list_query({"n": "3", "zzz": "1"})
    assert "'zzz'" in str(info.value) and "exclude" in str(info.value)


def test_a_parameter_given_twice_is_rejected() -> None:
    assert as_params([("n", "3"), ("policy", "none")]) == {"n": "3", "policy": "none"}
    assert as_params([]) == {}
    with pytest.raises(QueryError, match="'n' given more than once"):
        as_params([("n", "3"), ("policy", "none"), ("n", "3")])


def test_query_errors_are_value_errors() -> None:
    assert issubclass(QueryError, ValueError)


def test_every_parameter_together() -> None:
    query = parse_list_query(as_params([
        ("n", "5"), ("exclude", "a,b"), ("category", "c1"), ("in_stock", "false"),
        ("min_price", "1"), ("max_price", "2"), ("policy", "mmr:0.5"), ("context", "i1")]))
    assert query == ListQuery(5, frozenset({"a", "b"}), "c1", False, 1.0, 2.0,
                              RerankPolicy("mmr", 0.5), "i1", asked=True)
    assert not query.plain


# -- parse_similar_query -----------------------------------------------------------------------
def test_similar_defaults() -> None:
    assert parse_similar_query({}) == (10, None, True)
    assert parse_similar_query({"n": "3", "in_stock": "0"}) == (3, None, False)


@pytest.mark.parametrize(("raw", "policy"), [
    ("0.3", RerankPolicy("dpp", 0.3)), (" 0.5 ", RerankPolicy("dpp", 0.5)),
    ("1", RerankPolicy("dpp", 1.0)), (".25", RerankPolicy("dpp", 0.25)),
    ("mmr:0.7", RerankPolicy("mmr", 0.7)), ("dpp:0.2", RerankPolicy("dpp", 0.2)),
    ("dpp", RerankPolicy.parse("dpp"))])
def test_diverse_as_a_weight_or_a_policy(raw: str, policy: RerankPolicy) -> None:
    assert parse_similar_query({"diverse": raw})[1] == policy


@pytest.mark.parametrize("raw", ["0", "none", "false", "", "  "])
def test_diverse_off(raw: str) -> None:
    assert parse_similar_query({"diverse": raw})[1] is None


@pytest.mark.parametrize("raw", ["1.5", "-0.1", "abc", "nan", "inf", "mmr:2", "none:1"])
def test_diverse_bad(raw: str) -> None:
    with pytest.raises(QueryError, match="^diverse: "):
        parse_similar_query({"diverse": raw})


@pytest.mark.parametrize("params", [{"n": "0"}, {"n": "201"}, {"policy": "dpp"},
                                    {"exclude": "a"}, {"category": "c"}])
def test_similar_rejects_bad_n_and_list_only_parameters(params: dict[str, str]) -> None:
    with pytest.raises(QueryError):
        parse_similar_query(params)


# -- rerank_pool -------------------------------------------------------------------------------
# id: (category, price, in stock); "gone" is delisted, "ghost" unknown to the catalog
SHELF: dict[str, tuple[str, float | None, bool]] = {
    "p0": ("a", 10.0, True), "p1": ("a", 20.0, True), "p2": ("b", 30.0, True),
    "p3": ("b", None, True), "p4": ("c", 5.0, False), "p5": ("a", 50.0, True),
    "p6": ("c", 15.0, True), "gone": ("a", 12.0, True)}


def _shelf_recommender(**config: Any) -> Recommender:
    rec = Recommender(RecommenderConfig(**{"k": 3, "pool": 20, **config}))
    for item, (category, price, in_stock) in SHELF.items():
        doc: dict[str, Any] = {"category": category, "in_stock": in_stock}
        if price is not None:
            doc["price"] = price
        rec.upsert_item(parse_catalog_item(item, orjson.dumps(doc)))
    rec.delist_item("gone")
    return rec


SHELF_POOL = Pool(("p0", "gone", "p1", "p2", "p3", "p4", "ghost", "p5", "p6"),
                  np.array([0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.45, 0.4, 0.3], dtype=np.float32),
                  "012340123")


def _ids(picked: list[tuple[str, float, str]]) -> list[str]:
    return [i for i, _, _ in picked]


def _rerank(query: ListQuery, n: int = 20, policy: RerankPolicy = NONE,
            rec: Recommender | None = None, pool: Pool = SHELF_POOL) -> list[str]:
    return _ids(rerank_pool(rec or _shelf_recommender(), pool, query, policy, n))


def test_policy_none_keeps_score_order_of_available_items() -> None:
    assert _rerank(ListQuery()) == ["p0", "p1", "p2", "p3", "ghost", "p5", "p6"]
    assert _rerank(ListQuery(), n=3) == ["p0", "p1", "p2"]


def test_scores_and_reasons_come_from_the_pool() -> None:
    picked = rerank_pool(_shelf_recommender(), SHELF_POOL, ListQuery(), NONE, 20)
    where = {item: n for n, item in enumerate(SHELF_POOL.ids)}
    for item, score, reason in picked:
        assert score == float(SHELF_POOL.scores[where[item]])
        assert reason == REASONS[int(SHELF_POOL.reasons[where[item]])]
    assert picked[0] == ("p0", float(np.float32(0.9)), REASONS[0])
    assert picked[1][2] == REASONS[2]  # p1: code "2"


def test_unknown_reason_codes_read_as_a_reason_not_an_error() -> None:
    pool = Pool(("p0", "p1", "p2"), np.array([3, 2, 1], dtype=np.float32), "9x4")
    picked = rerank_pool(_shelf_recommender(), pool, ListQuery(), NONE, 5)
    assert [r for _, _, r in picked] == [REASON_SIMILAR, REASONS[0], REASONS[4]]


def test_exclude() -> None:
    assert _rerank(ListQuery(exclude=frozenset({"p0", "p2", "nope"}))) == \
        ["p1", "p3", "ghost", "p5", "p6"]


def test_category_leaves_out_other_and_unknown_items() -> None:
    assert _rerank(ListQuery(category="a")) == ["p0", "p1", "p5"]
    assert _rerank(ListQuery(category="c", in_stock=False)) == ["p4", "p6"]
    assert _rerank(ListQuery(category="zzz")) == []


def test_price_range_leaves_out_items_without_a_price() -> None:
    assert _rerank(ListQuery(min_price=15.0)) == ["p1", "p2", "p5", "p6"]
    assert _rerank(ListQuery(max_price=20.0)) == ["p0", "p1", "p6"]
    assert _rerank(ListQuery(min_price=10.0, max_price=30.0)) == ["p0", "p1", "p2", "p6"]
    assert _rerank(ListQuery(min_price=0.0)) == ["p0", "p1", "p2", "p5", "p6"]  # no p3, ghost
    assert _rerank(ListQuery(min_price=10.0, max_price=10.0)) == ["p0"]
    assert _rerank(ListQuery(min_price=0.0, in_stock=False)) == \
        ["p0", "p1", "p2", "p4", "p5", "p6"]


def test_in_stock_false_lets_out_of_stock_items_in_but_never_delisted_ones() -> None:
    assert "p4" not in _rerank(ListQuery())
    assert _rerank(ListQuery(in_stock=False)) == ["p0", "p1", "p2", "p3", "p4", "ghost", "p5",
                                                  "p6"]
    assert "gone" not in _rerank(ListQuery(in_stock=False))


def test_availability_is_read_at_request_time() -> None:
    rec = _shelf_recommender()
    rec.upsert_item(parse_catalog_item("p1", b'{"category": "a", "in_stock": false}'))
    rec.delist_item("p0")
    rec.upsert_item(parse_catalog_item("gone", b'{"category": "a"}'))  # listed again
    assert _rerank(ListQuery(), rec=rec) == ["gone", "p2", "p3", "ghost", "p5", "p6"]


def test_n_larger_than_the_pool_and_an_empty_pool() -> None:
    assert len(_rerank(ListQuery(), n=200)) == 7
    empty = Pool((), np.zeros(0, dtype=np.float32), "")
    assert _rerank(ListQuery(), pool=empty) == []
    everything_gone = Pool(("gone",), np.ones(1, dtype=np.float32), "0")
    assert _rerank(ListQuery(), pool=everything_gone) == []


def _near_duplicate_pool(rec: Recommender) -> Pool:
    """Six high scorers of one category, then one item each of three others."""
    ids = [f"dup{n}" for n in range(6)] + ["x", "y", "z"]
    for n, item in enumerate(ids):
        category = "same" if item.startswith("dup") else f"other{n}"
        rec.upsert_item(parse_catalog_item(item, orjson.dumps({"category": category})))
    scores = [1.0, 0.99, 0.98, 0.97, 0.96, 0.95, 0.9, 0.89, 0.88]
    return Pool(tuple(ids), np.array(scores, dtype=np.float32), "0" * len(ids))


def _categories(rec: Recommender, ids: list[str]) -> int:
    return len({rec.catalog.category(i) for i in ids})


@pytest.mark.parametrize("policy", ["dpp:0.9", "mmr:0.1"])
def test_a_diversity_policy_spreads_near_duplicates_over_categories(policy: str) -> None:
    rec = Recommender(RecommenderConfig(k=4, pool=20))
    pool = _near_duplicate_pool(rec)
    plain = _ids(rerank_pool(rec, pool, ListQuery(), NONE, 4))
    assert plain == ["dup0", "dup1", "dup2", "dup3"]
    diverse = _ids(rerank_pool(rec, pool, ListQuery(), RerankPolicy.parse(policy), 4))
    assert len(diverse) == 4
    assert _categories(rec, diverse) > _categories(rec, plain)


def test_a_diversity_policy_uses_the_models_vectors(duplicates_model: ServedModel) -> None:
    rec = Recommender(RecommenderConfig(k=4, pool=20, category_weight=0.0))
    for item in MODEL_ITEMS:  # no categories: only the vectors tell items apart
        rec.upsert_item(parse_catalog_item(item, b"{}"))
    rec.swap_model(duplicates_model)
    pool = Pool(MODEL_ITEMS, np.linspace(1.0, 0.9, len(MODEL_ITEMS), dtype=np.float32),
                "0" * len(MODEL_ITEMS))
    plain = _ids(rerank_pool(rec, pool, ListQuery(), NONE, 4))
    assert plain == ["i0", "i1", "i2", "i3"]
    diverse = _ids(rerank_pool(rec, pool, ListQuery(), RerankPolicy("dpp", 0.9), 4))
    assert diverse[0] == "i0"
    assert len(set(diverse) - {"i0", "i1", "i2", "i3", "i4"}) >= 2


def test_rerank_pool_with_a_model_takes_ids_the_model_does_not_know(model: ServedModel) -> None:
    rec = _shelf_recommender()
    rec.swap_model(model)
    assert _rerank(ListQuery(), rec=rec, policy=RerankPolicy("dpp", 0.5), n=3) != []
    assert _rerank(ListQuery(), rec=rec) == ["p0", "p1", "p2", "p3", "ghost", "p5", "p6"]


# -- stored pools and request_list -------------------------------------------------------------
ITEMS = [f"i{n}" for n in range(30)]
TAG = ExperimentTag("exp-1", "arm-b", 2)


def _recommender(**config: Any) -> Recommender:
    rec = Recommender(RecommenderConfig(**{"k": 5, "pool": 20, **config}))
    for n, item in enumerate(ITEMS):
        rec.upsert_item(parse_catalog_item(item, orjson.dumps(
            {"category": f"c{n % 4}", "price": float(n)})))
    for n in range(15):
        for _ in range(15 - n):
            rec.trending.add(f"i{n}", NOW_MS - 60_000, TYPE_CODE["view"])
    return rec


def _stored(rec: Recommender, policy: str | None = "dpp:0.3", keep_pool: bool = True,
            experiment: ExperimentTag | None = TAG) -> dict[str, Any]:
    """The shopper's latest-recs value as the worker stores it, decoded."""
    request = RecRequest("u1", "ev-1", state_of(("i20", "view")), NOW_MS - 5000,
                         None if policy is None else RerankPolicy.parse(policy), experiment,
                         list_id="ab" * 16)
    [made] = rec.recommend([request])
    message = orjson.dumps(made.to_dict())
    stored: dict[str, Any] = orjson.loads(with_pool(message, made.pool if keep_pool else None))
    return stored


def _answer(rec: Recommender, stored: dict[str, Any], params: dict[str, str],
            now_ms: float, contract: Contract) -> dict[str, Any]:
    pool, source = stored_pool(stored)
    body = request_list(rec, "u1", pool, source, parse_list_query(params), now_ms)
    contract.validate(LISTS, 200, orjson.loads(orjson.dumps(body)))
    return body


def test_stored_pool_reads_the_pool_and_where_it_came_from() -> None:
    rec = _recommender()
    stored = _stored(rec)
    pool, source = stored_pool(stored)
    kept = Pool.decode(stored["pool"])
    assert pool.ids == kept.ids and pool.reasons == kept.reasons
    assert pool.scores.tobytes() == kept.scores.tobytes()
    assert len(pool.ids) > len(stored["items"])
    assert source.kind == "shopper" and source.list_id == "ab" * 16
    assert source.policy == RerankPolicy("dpp", 0.3)
    assert source.fallback is True and source.model_version is None
    assert source.experiment == {"id": "exp-1", "arm": "arm-b", "version": 2}
    assert source.generated_ms is not None
    assert abs(source.generated_ms - rec.recommend([RecRequest("u", "e", UserState(), 0)])[0]
               .generated_at_ms) < 60_000


@pytest.mark.parametrize("pool_doc", ["missing", None, {"ids": 5}, {"ids": ["a"], "s": "",
                                                                    "r": "0"}])
def test_a_list_stored_without_a_readable_pool_is_its_own_pool(pool_doc: Any) -> None:
    stored = _stored(_recommender(), keep_pool=False)
    if pool_doc != "missing":
        stored["pool"] = pool_doc
    pool, source = stored_pool(stored)
    assert pool.ids == tuple(i["item_id"] for i in stored["items"])
    assert pool.scores.tolist() == [np.float32(i["score"]) for i in stored["items"]]
    assert pool.reasons == "".join(REASON_CODE[i["reason"]] for i in stored["items"])
    assert source.list_id == stored["list_id"]


def test_pool_of_a_list_without_one_is_its_items() -> None:
    [made] = _recommender(pool_kept=0).recommend([RecRequest("u", "e", UserState(), NOW_MS)])
    assert made.pool is None
    pool = pool_of(made)
    assert pool.ids == tuple(i.item_id for i in made.items)
    odd = pool_of({"items": [{"item_id": "x", "score": 1.5, "reason": "who knows"}]})
    assert (odd.ids, odd.scores.tolist(), odd.reasons) == (("x",), [1.5], "0")
    assert pool_of({}).ids == ()


def test_a_list_with_the_shoppers_own_policy_keeps_the_pools_list_id(
        contract: Contract) -> None:
    rec = _recommender()
    stored = _stored(rec)
    generated = stored_pool(stored)[1].generated_ms
    assert generated is not None
    now = generated + 12_345.6
    body = _answer(rec, stored, {"n": "3"}, now, contract)
    assert body["list_id"] == stored["list_id"]
    assert body["policy_override"] is False
    assert body["policy"] == {"method": "dpp", "param": 0.3}
    assert body["experiment"] == stored["experiment"]
    assert body["source"] == "request" and body["user_id"] == "u1"
    assert body["fallback"] is True and body["model_version"] is None
    assert len(body["items"]) == 3
    assert {i["item_id"] for i in body["items"]} <= set(stored["pool"]["ids"])
    assert body["pool"] == {"kind": "shopper", "list_id": stored["list_id"],
                            "generated_at": stored["generated_at"], "age_s": 12.346,
                            "size": len(stored["pool"]["ids"])}
    # Naming the shopper's own policy is no override.
    same = _answer(rec, stored, {"policy": "dpp:0.3", "exclude": "i0"}, now, contract)
    assert same["list_id"] == stored["list_id"] and same["policy_override"] is False
    assert same["experiment"] == stored["experiment"]
    assert "i0" not in {i["item_id"] for i in same["items"]}


def test_a_policy_override_gets_its_own_list_id_and_no_experiment(contract: Contract) -> None:
    rec = _recommender()
    stored = _stored(rec)
    body = _answer(rec, stored, {"policy": "none", "n": "8"}, NOW_MS, contract)
    assert body["policy_override"] is True
    assert body["list_id"] != stored["list_id"] and HEX32.match(body["list_id"])
    assert body["experiment"] is None
    assert body["policy"] == {"method": "none", "param": 0.0}
    assert body["pool"]["list_id"] == stored["list_id"]
    # policy none: the pool's best eligible items, in score order.
    pool = Pool.decode(stored["pool"])
    assert [i["item_id"] for i in body["items"]] == list(pool.ids[:8])
    assert [i["score"] for i in body["items"]] == sorted(
        (i["score"] for i in body["items"]), reverse=True)
    # Another request, another id.
    later = _answer(rec, stored, {"policy": "none", "n": "8"}, NOW_MS + 1, contract)
    assert later["list_id"] != body["list_id"]


def test_a_list_stored_without_a_policy_uses_the_configured_one(contract: Contract) -> None:
    rec = _recommender(policy=RerankPolicy.parse("mmr:0.7"))
    stored = _stored(rec, policy=None, experiment=None)
    del stored["policy"]
    body = _answer(rec, stored, {"policy": "mmr:0.7"}, NOW_MS, contract)
    assert body["policy_override"] is False and body["list_id"] == stored["list_id"]
    assert body["experiment"] is None
    assert _answer(rec, stored, {"policy": "dpp:0.7"}, NOW_MS, contract)["policy_override"]


def test_request_list_n_defaults_to_the_configured_length(contract: Contract) -> None:
    rec = _recommender()
    stored = _stored(rec)
    body = _answer(rec, stored, {"exclude": "nothing"}, NOW_MS, contract)
    assert len(body["items"]) == rec.config.k == len(stored["items"])
    many = _answer(rec, stored, {"n": "200", "policy": "none"}, NOW_MS, contract)
    assert len(many["items"]) == len(stored["pool"]["ids"])


def test_request_list_filters_against_the_catalog_as_it_is_now(contract: Contract) -> None:
    rec = _recommender()
    stored = _stored(rec)
    pool_ids = stored["pool"]["ids"]
    sold_out, removed = pool_ids[0], pool_ids[1]
    rec.upsert_item(parse_catalog_item(sold_out, b'{"category": "c0", "in_stock": false}'))
    rec.delist_item(removed)
    params = {"n": "200", "policy": "none"}
    now = _answer(rec, stored, params, NOW_MS, contract)
    ids = [i["item_id"] for i in now["items"]]
    assert sold_out not in ids and removed not in ids
    anyway = _answer(rec, stored, {**params, "in_stock": "false"}, NOW_MS, contract)
    ids = [i["item_id"] for i in anyway["items"]]
    assert ids[0] == sold_out and removed not in ids
    cheap = _answer(rec, stored, {**params, "max_price": "5", "category": "c1"}, NOW_MS,
                    contract)
    assert [i["item_id"] for i in cheap["items"]] == [
        i for i in pool_ids if i in ("i1", "i5") and i not in (sold_out, removed)]
    assert cheap["items"]


def test_pool_age_is_never_negative_and_null_when_unknown(contract: Contract) -> None:
    rec = _recommender()
    stored = _stored(rec)
    generated = stored_pool(stored)[1].generated_ms
    assert generated is not None
    early = _answer(rec, stored, {"n": "2"}, generated - 5000, contract)
    assert early["pool"]["age_s"] == 0.0
    del stored["generated_at"]
    unknown = _answer(rec, stored, {"n": "2"}, NOW_MS, contract)
    assert unknown["pool"]["age_s"] is None and unknown["pool"]["generated_at"] is None
    stored["generated_at"] = "not a time"
    assert _answer(rec, stored, {"n": "2"}, NOW_MS, contract)["pool"]["age_s"] is None


def test_reasons_in_a_request_list_are_words(contract: Contract) -> None:
    rec = _recommender()
    body = _answer(rec, _stored(rec), {"n": "20", "policy": "none"}, NOW_MS, contract)
    assert body["items"] and all(i["reason"] in REASONS for i in body["items"])
    reasons = {i["item_id"]: i["reason"] for i in body["items"]}
    assert reasons["i20"] == REASON_RECENT  # the shopper's own recent, non-trending item
    assert reasons["i0"] in (REASON_TRENDING, REASON_CATEGORY)


# -- new shoppers ------------------------------------------------------------------------------
def test_a_new_shopper_gets_trending_and_the_newest_catalog_items(contract: Contract) -> None:
    rec = _recommender()
    pool, source = new_shopper_pool(rec, "newbie", None, NOW_MS)
    assert source.kind == "new_shopper" and source.list_id is None
    assert source.fallback is True and source.model_version is None
    assert source.generated_ms == NOW_MS
    trending = {f"i{n}" for n in range(15)}
    room = int(rec.config.pool * 0.25)
    newest = ITEMS[-room:]
    assert set(pool.ids) == trending | set(newest)
    where = {item: n for n, item in enumerate(pool.ids)}
    for item in newest:
        assert pool.reasons[where[item]] == REASON_CODE[REASON_NEW]
    for item in trending:
        assert pool.reasons[where[item]] == REASON_CODE[REASON_TRENDING]
    median = np.float32(np.median([pool.scores[where[i]] for i in trending]))
    assert all(pool.scores[where[i]] == median for i in newest)
    body = request_list(rec, "newbie", pool, source, ListQuery(n=30, policy=NONE), NOW_MS)
    contract.validate(LISTS, 200, orjson.loads(orjson.dumps(body)))
    assert HEX32.match(body["list_id"]) and body["experiment"] is None
    assert body["pool"]["kind"] == "new_shopper" and body["pool"]["age_s"] == 0.0
    assert body["pool"]["list_id"] is None


def test_a_new_shopper_on_a_cold_shop_gets_the_newest_items() -> None:
    rec = Recommender(RecommenderConfig(k=5, pool=8))
    for item in ("a", "b", "c"):
        rec.upsert_item(parse_catalog_item(item, b'{"category": "x"}'))
    pool, source = new_shopper_pool(rec, "u", None, NOW_MS)
    assert source.kind == "new_shopper"
    assert pool.ids == ("c", "b") and pool.reasons == "22"  # room: 25 % of pool 8


def test_an_unknown_context_is_a_new_shopper(model: ServedModel) -> None:
    rec = _recommender()
    assert new_shopper_pool(rec, "u", "no-such-item", NOW_MS)[1].kind == "new_shopper"
    rec.swap_model(model)
    assert new_shopper_pool(rec, "u", "no-such-item", NOW_MS)[1].kind == "new_shopper"


def test_a_context_item_gives_what_the_model_proposes_after_it(
        model: ServedModel, contract: Contract) -> None:
    rec = Recommender(RecommenderConfig(k=4, pool=20, trending_candidates=5,
                                        new_item_candidates=5))
    for n, item in enumerate(MODEL_ITEMS):
        rec.upsert_item(parse_catalog_item(item, orjson.dumps({"category": f"c{n % 3}"})))
    rec.swap_model(model)
    rec.upsert_item(parse_catalog_item("fresh", b'{"category": "c1"}'))
    rec.trending.add("i3", NOW_MS, TYPE_CODE["view"])
    pool, source = new_shopper_pool(rec, "anon", "i0", NOW_MS)
    assert source.kind == "context" and source.extra == {"context": "i0"}
    assert source.model_version == "v1" and source.fallback is False
    assert "i0" not in pool.ids
    assert set(pool.ids) == set(MODEL_ITEMS) - {"i0"} | {"fresh"}
    assert np.all(np.diff(pool.scores) <= 0)
    # The model's scores after a one-view history of the context item.
    expected = model.score([[("i0", TYPE_CODE["view"])]], [list(pool.ids)])[0]
    np.testing.assert_allclose(pool.scores, expected, rtol=1e-5, atol=1e-6)
    body = request_list(rec, "anon", pool, source, ListQuery(context="i0"), NOW_MS)
    contract.validate(LISTS, 200, orjson.loads(orjson.dumps(body)))
    assert body["pool"]["kind"] == "context" and body["pool"]["context"] == "i0"
    assert body["model_version"] == "v1" and body["fallback"] is False
    assert len(body["items"]) == 4 and "i0" not in {i["item_id"] for i in body["items"]}
    # A catalog-only item the model never saw is a known context too.
    assert new_shopper_pool(rec, "anon", "fresh", NOW_MS)[1].kind == "context"


def test_a_context_item_without_a_model_gives_trending_without_it() -> None:
    rec = _recommender()
    pool, source = new_shopper_pool(rec, "anon", "i3", NOW_MS)
    assert source.kind == "context" and source.fallback is True
    assert "i3" not in pool.ids and set(pool.ids) == {f"i{n}" for n in range(15)} - {"i3"}


def test_a_context_with_nothing_to_go_with_falls_back_to_new_items() -> None:
    rec = Recommender(RecommenderConfig(k=5, pool=8))
    for item in ("a", "b", "c"):
        rec.upsert_item(parse_catalog_item(item, b'{"category": "x"}'))
    assert new_shopper_pool(rec, "u", None, NOW_MS)[0].ids  # without context: b and c
    pool, _ = new_shopper_pool(rec, "u", "a", NOW_MS)
    assert pool.ids


# -- similar items -----------------------------------------------------------------------------
def test_an_unknown_item_has_no_similar_items(model: ServedModel) -> None:
    rec = _recommender()
    assert similar_items(rec, "nope", 10, None) is None
    rec.swap_model(model)
    assert similar_items(rec, "nope", 10, None) is None


def test_without_a_model_similar_items_are_trending_items_of_the_category(
        contract: Contract) -> None:
    rec = _recommender()
    body = similar_items(rec, "i4", 10, None)
    assert body is not None
    contract.validate(SIMILAR, 200, orjson.loads(orjson.dumps(body)))
    ids = [i["item_id"] for i in body["items"]]
    assert ids == ["i0", "i8", "i12"]  # category c0 in trending order, without i4 itself
    assert body["fallback"] is True and body["model_version"] is None
    assert body["policy"] == {"method": "none", "param": 0.0}
    assert all(i["reason"] == REASON_SIMILAR_ITEM for i in body["items"])
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert _similar_ids(rec, "i4", 2) == ["i0", "i8"]
    # Delisted items never; out-of-stock ones only when asked.
    rec.delist_item("i0")
    rec.upsert_item(parse_catalog_item("i8", b'{"category": "c0", "in_stock": false}'))
    assert _similar_ids(rec, "i4", 10) == ["i12"]
    assert _similar_ids(rec, "i4", 10, in_stock=False) == ["i8", "i12"]


def _similar_ids(rec: Recommender, item: str, n: int, in_stock: bool = True) -> list[str]:
    body = similar_items(rec, item, n, None, in_stock)
    assert body is not None
    return [i["item_id"] for i in body["items"]]


def test_without_a_model_an_item_without_a_category_has_none_similar() -> None:
    rec = _recommender()
    rec.upsert_item(parse_catalog_item("plain", b"{}"))
    body = similar_items(rec, "plain", 10, None)
    assert body is not None and body["items"] == []


def _cosines(model: ServedModel, item: str) -> dict[str, float]:
    vectors = np.asarray(model.item_vectors, dtype=np.float64)
    ids = [str(i) for i in model.item_ids]
    query = vectors[ids.index(item)]
    sims = vectors @ query / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(query))
    return dict(zip(ids, sims.tolist(), strict=True))


def _model_shop(model: ServedModel) -> Recommender:
    rec = Recommender(RecommenderConfig(k=4, pool=20))
    for n, item in enumerate(MODEL_ITEMS):
        rec.upsert_item(parse_catalog_item(item, orjson.dumps({"category": f"c{n % 3}"})))
    rec.swap_model(model)
    return rec


def test_with_a_model_similar_items_are_by_cosine(model: ServedModel,
                                                  contract: Contract) -> None:
    rec = _model_shop(model)
    body = similar_items(rec, "i0", 200, None)
    assert body is not None
    contract.validate(SIMILAR, 200, orjson.loads(orjson.dumps(body)))
    assert body["model_version"] == "v1" and body["fallback"] is False
    cos = _cosines(model, "i0")
    expected = sorted((i for i in MODEL_ITEMS if i != "i0"), key=lambda i: -cos[i])
    assert [i["item_id"] for i in body["items"]] == expected
    for item in body["items"]:
        assert item["score"] == pytest.approx(cos[item["item_id"]], abs=1e-5)
    top3 = similar_items(rec, "i0", 3, None)
    assert top3 is not None and [i["item_id"] for i in top3["items"]] == expected[:3]


def test_with_a_model_similar_items_leave_out_unavailable_items(model: ServedModel) -> None:
    rec = _model_shop(model)
    cos = _cosines(model, "i0")
    ranked = sorted((i for i in MODEL_ITEMS if i != "i0"), key=lambda i: -cos[i])
    gone, sold_out = ranked[0], ranked[1]
    rec.delist_item(gone)
    rec.upsert_item(parse_catalog_item(sold_out, b'{"category": "c0", "in_stock": false}'))
    body = similar_items(rec, "i0", 200, None)
    assert body is not None
    assert [i["item_id"] for i in body["items"]] == [i for i in ranked
                                                     if i not in (gone, sold_out)]
    anyway = similar_items(rec, "i0", 200, None, in_stock=False)
    assert anyway is not None and gone not in {i["item_id"] for i in anyway["items"]}


def test_with_a_model_in_stock_false_lets_out_of_stock_items_in(model: ServedModel) -> None:
    rec = _model_shop(model)
    rec.upsert_item(parse_catalog_item("i5", b'{"category": "c2", "in_stock": false}'))
    body = similar_items(rec, "i0", 200, None, in_stock=False)
    assert body is not None and "i5" in {i["item_id"] for i in body["items"]}


def test_a_catalog_item_the_model_never_saw_still_gets_similar_items(
        model: ServedModel, contract: Contract) -> None:
    rec = _model_shop(model)
    rec.upsert_item(parse_catalog_item("fresh", b'{"category": "c1"}'))
    body = similar_items(rec, "fresh", 5, None)
    assert body is not None
    contract.validate(SIMILAR, 200, orjson.loads(orjson.dumps(body)))
    ids = [i["item_id"] for i in body["items"]]
    assert len(ids) == 5 and "fresh" not in ids and set(ids) <= set(MODEL_ITEMS)
    # A model item that was delisted is still known to the model: it gets an answer too.
    rec.delist_item("i1")
    delisted = similar_items(rec, "i1", 5, None)
    assert delisted is not None and "i1" not in {i["item_id"] for i in delisted["items"]}


def test_a_diverse_policy_spreads_near_duplicate_similar_items(
        duplicates_model: ServedModel, contract: Contract) -> None:
    rec = _model_shop(duplicates_model)
    for n, item in enumerate(MODEL_ITEMS):  # i0..i4: one category; the others one each
        category = "same" if n < 5 else f"own{n}"
        rec.upsert_item(parse_catalog_item(item, orjson.dumps({"category": category})))
    plain = similar_items(rec, "i0", 4, None)
    assert plain is not None
    assert {i["item_id"] for i in plain["items"]} == {"i1", "i2", "i3", "i4"}
    policy = parse_similar_query({"diverse": "0.9"})[1]
    diverse = similar_items(rec, "i0", 4, policy)
    assert diverse is not None
    contract.validate(SIMILAR, 200, orjson.loads(orjson.dumps(diverse)))
    assert diverse["policy"] == {"method": "dpp", "param": 0.9}
    ids = [i["item_id"] for i in diverse["items"]]
    assert len(ids) == 4 and "i0" not in ids
    assert ids != [i["item_id"] for i in plain["items"]]
    assert _categories(rec, ids) > _categories(rec, [i["item_id"] for i in plain["items"]])


def test_similar_items_answers_are_at_most_n_and_never_the_item(
        model: ServedModel) -> None:
    rec = _model_shop(model)
    for item in MODEL_ITEMS:
        for n in (1, 5, 9, 200):
            body = similar_items(rec, item, n, RerankPolicy("mmr", 0.5))
            assert body is not None
            ids = [i["item_id"] for i in body["items"]]
            assert len(ids) == min(n, len(MODEL_ITEMS) - 1) and item not in ids


def test_any_parameter_even_at_its_default_asks_for_a_request_list() -> None:
    assert parse_list_query({}).plain
    for params in ({"in_stock": "true"}, {"exclude": ","}, {"n": "20"}):
        assert not parse_list_query(params).plain, params
