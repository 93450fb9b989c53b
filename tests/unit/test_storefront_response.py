"""The shopper response model: position bias, satiation, taste, lift and a well-formed Reaction."""

from __future__ import annotations

import gc
import math
from typing import Any

import numpy as np
import pytest

from stream_rec.tools.storefront import Catalog, Item, Shopper, make_catalog, make_shoppers
from stream_rec.tools.storefront.response import (
    MAX_CLICK_PROBABILITY,
    CatalogIndex,
    Reaction,
    ResponseModel,
    click_probabilities,
    expected_clicks,
    react,
)

CATEGORIES = ("shoes", "books", "toys")
PER_CATEGORY = 12


def _catalog() -> Catalog:
    """12 items per category; brand "A" and "B" alternate within each category."""
    items = tuple(Item(f"{c[0]}{k:02d}", c, f"{c}-{'AB'[k % 2]}", 10.0)
                  for c in CATEGORIES for k in range(PER_CATEGORY))
    popularity = np.full(len(items), 1.0 / len(items))
    brands: dict[str, tuple[str, ...]] = {c: (f"{c}-A", f"{c}-B") for c in CATEGORIES}
    return Catalog(items, popularity, CATEGORIES, brands)


CATALOG = _catalog()
# Loves shoes and books equally, barely likes toys; favourite brands the catalog never sells,
# so no item gets the brand boost unless a test picks a shopper that has one.
TWO_LOVES = Shopper("u1", np.array([0.49, 0.49, 0.02]), ("none", "none", "none"))


def _ids(category: str, n: int = 10, brand: str | None = None) -> list[str]:
    ids = [i.item_id for i in CATALOG.items
           if i.category == category and (brand is None or i.brand == brand)]
    return ids[:n]


def _click_counts(model: ResponseModel, shopper: Shopper, ids: list[str], draws: int,
                  seed: int, lift: float = 1.0) -> np.ndarray[Any, np.dtype[np.int64]]:
    """How often each position was clicked over ``draws`` independent reactions."""
    rng = np.random.default_rng(seed)
    counts = np.zeros(min(len(ids), model.displayed), dtype=np.int64)
    for _ in range(draws):
        for p in react(rng, model, shopper, CATALOG, ids, lift).clicks:
            counts[p] += 1
    return counts


def test_position_bias_top_position_clicked_more_than_the_tenth() -> None:
    model = ResponseModel(satiation=0.0)  # equal relevance everywhere: only position differs
    ids = _ids("shoes", brand="shoes-A")[:5] + _ids("books", brand="books-A")[:5]
    probabilities = click_probabilities(model, TWO_LOVES, CATALOG, ids)
    assert probabilities[0] == pytest.approx(0.08)
    assert probabilities[9] == pytest.approx(0.08 / 10)
    counts = _click_counts(model, TWO_LOVES, ids, draws=5000, seed=1)
    assert counts[0] > 4 * counts[9]
    assert counts[0] / 5000 == pytest.approx(0.08, abs=0.015)
    # With no position decay the two positions are alike.
    flat = click_probabilities(ResponseModel(satiation=0.0, position_decay=0.0), TWO_LOVES,
                               CATALOG, ids)
    assert flat[0] == pytest.approx(flat[9])


def test_satiation_a_varied_list_earns_more_clicks_than_near_duplicates() -> None:
    model = ResponseModel()
    same = _ids("shoes")
    varied = [x for pair in zip(_ids("shoes", 5), _ids("books", 5), strict=True) for x in pair]
    # Same per-item relevance (both categories are liked equally, no brand boost) ...
    assert expected_clicks(ResponseModel(satiation=0.0), TWO_LOVES, CATALOG, same) == \
        pytest.approx(expected_clicks(ResponseModel(satiation=0.0), TWO_LOVES, CATALOG, varied))
    # ... but the list of near-duplicates tires the shopper.
    e_same = expected_clicks(model, TWO_LOVES, CATALOG, same)
    e_varied = expected_clicks(model, TWO_LOVES, CATALOG, varied)
    assert e_same < 0.85 * e_varied
    draws = 5000
    clicks_same = int(_click_counts(model, TWO_LOVES, same, draws, seed=2).sum())
    clicks_varied = int(_click_counts(model, TWO_LOVES, varied, draws, seed=3).sum())
    assert clicks_same < clicks_varied
    assert clicks_same / draws == pytest.approx(e_same, rel=0.15)
    assert clicks_varied / draws == pytest.approx(e_varied, rel=0.15)


def test_satiation_follows_the_formula() -> None:
    model = ResponseModel(base_click=0.1, position_decay=1.0, satiation=0.5)
    shoes = _ids("shoes", 3)
    # m = 0, 1, 2 items of the same category above; attention 1, 1/2, 1/3.
    want = 0.1 * (1 + math.exp(-0.5) / 2 + math.exp(-1.0) / 3)
    assert expected_clicks(model, TWO_LOVES, CATALOG, shoes) == pytest.approx(want)
    # A book between two shoes: the second shoe has one shoe above it, not two items.
    mixed = [shoes[0], _ids("books", 1)[0], shoes[1]]
    want = 0.1 * (1 + 1 / 2 + math.exp(-0.5) / 3)
    assert expected_clicks(model, TWO_LOVES, CATALOG, mixed) == pytest.approx(want)


def test_favourite_category_is_clicked_more_than_a_barely_liked_one() -> None:
    model = ResponseModel()
    loved = _click_counts(model, TWO_LOVES, _ids("shoes"), draws=4000, seed=4).sum()
    barely = _click_counts(model, TWO_LOVES, _ids("toys"), draws=4000, seed=5).sum()
    assert loved > 5 * barely
    ratio = (expected_clicks(model, TWO_LOVES, CATALOG, _ids("toys"))
             / expected_clicks(model, TWO_LOVES, CATALOG, _ids("shoes")))
    assert ratio == pytest.approx(0.02 / 0.49)


def test_favourite_brand_is_boosted_and_probabilities_are_capped() -> None:
    fan = Shopper("u2", TWO_LOVES.taste, ("shoes-A", "none", "none"))
    a, b = _ids("shoes", 1, brand="shoes-A")[0], _ids("shoes", 1, brand="shoes-B")[0]
    model = ResponseModel(brand_boost=1.5)
    assert click_probabilities(model, fan, CATALOG, [a])[0] == pytest.approx(0.08 * 1.5)
    assert click_probabilities(model, fan, CATALOG, [b])[0] == pytest.approx(0.08)
    hot = ResponseModel(base_click=0.9, brand_boost=1.5)
    assert click_probabilities(hot, fan, CATALOG, [a])[0] == MAX_CLICK_PROBABILITY
    assert click_probabilities(model, fan, CATALOG, [a], lift=100.0)[0] == MAX_CLICK_PROBABILITY


def test_lift_multiplies_clicks_when_probabilities_are_small() -> None:
    model = ResponseModel()
    ids = [x for pair in zip(_ids("shoes", 5), _ids("books", 5), strict=True) for x in pair]
    base = expected_clicks(model, TWO_LOVES, CATALOG, ids)
    assert expected_clicks(model, TWO_LOVES, CATALOG, ids, lift=1.5) == pytest.approx(1.5 * base)
    draws = 20_000
    plain = _click_counts(model, TWO_LOVES, ids, draws, seed=6).sum()
    lifted = _click_counts(model, TWO_LOVES, ids, draws, seed=7, lift=1.5).sum()
    assert lifted / plain == pytest.approx(1.5, abs=0.15)
    none = _click_counts(model, TWO_LOVES, ids, 500, seed=8, lift=0.0).sum()
    assert none == 0


def test_reaction_is_well_formed() -> None:
    # Everything near-certain, so the max_clicks cut, carts and purchases all happen.
    model = ResponseModel(base_click=0.9, position_decay=0.0, satiation=0.0,
                          cart_after_click=0.5, buy_after_cart=0.5, max_clicks=3)
    ids = _ids("shoes", 8) + _ids("books", 7)
    rng = np.random.default_rng(9)
    seen_cut = carted = bought = 0
    for _ in range(500):
        r = react(rng, model, TWO_LOVES, CATALOG, ids)
        assert r.displayed == tuple(ids[:10])
        assert len(r.clicks) <= 3
        assert list(r.clicks) == sorted(set(r.clicks))
        assert all(0 <= p < 10 for p in r.clicks)
        assert set(r.carts) <= set(r.clicks)
        assert set(r.purchases) <= set(r.carts)
        assert r.clicked_items() == tuple(ids[p] for p in r.clicks)
        assert r.purchased_items() == tuple(ids[p] for p in r.purchases)
        seen_cut += len(r.clicks) == 3
        carted += len(r.carts)
        bought += len(r.purchases)
    assert seen_cut > 400  # ~10 clicks drawn each time, cut to 3
    assert carted == pytest.approx(0.5 * 3 * 500, rel=0.15)
    assert bought == pytest.approx(0.5 * carted, rel=0.2)


def test_max_clicks_keeps_the_first_clicks_by_position() -> None:
    model = ResponseModel(base_click=0.95, position_decay=0.0, satiation=0.0, max_clicks=2)
    ids = _ids("shoes", 10)
    rng = np.random.default_rng(10)
    reactions = [react(rng, model, TWO_LOVES, CATALOG, ids) for _ in range(200)]
    # Each item is clicked with p = 0.95, so the first two positions are nearly always kept.
    assert sum(r.clicks == (0, 1) for r in reactions) > 150


def test_short_lists_and_unknown_ids() -> None:
    model = ResponseModel(base_click=0.9, position_decay=0.0, satiation=0.0)
    rng = np.random.default_rng(11)
    short = react(rng, model, TWO_LOVES, CATALOG, _ids("shoes", 4))
    assert short.displayed == tuple(_ids("shoes", 4))
    empty = react(rng, model, TWO_LOVES, CATALOG, [])
    assert empty == Reaction((), (), (), ())
    ids = ["ghost-1", _ids("shoes", 1)[0], "ghost-2", _ids("books", 1)[0]]
    clicked: set[str] = set()
    for _ in range(300):
        r = react(rng, model, TWO_LOVES, CATALOG, ids, lift=10.0)
        assert r.displayed == tuple(ids)
        clicked.update(r.clicked_items())
    assert "ghost-1" not in clicked and "ghost-2" not in clicked
    assert clicked == {ids[1], ids[3]}
    assert click_probabilities(model, TWO_LOVES, CATALOG, ids, lift=10.0)[[0, 2]].tolist() == \
        [0.0, 0.0]


def test_same_seed_same_reactions() -> None:
    model = ResponseModel(base_click=0.5)
    ids = _ids("shoes", 5) + _ids("books", 5)
    first = [react(np.random.default_rng(12), model, TWO_LOVES, CATALOG, ids) for _ in range(3)]
    assert first[0] == first[1] == first[2]


@pytest.mark.parametrize("bad", [
    {"displayed": 0}, {"displayed": 2.5}, {"displayed": True}, {"max_clicks": 0},
    {"base_click": -0.1}, {"base_click": 1.5}, {"base_click": math.nan},
    {"cart_after_click": 1.2}, {"buy_after_cart": -0.1},
    {"position_decay": -1.0}, {"satiation": -0.1}, {"satiation": math.inf},
    {"brand_boost": 0.5}, {"brand_boost": math.nan},
])
def test_invalid_parameters_raise(bad: dict[str, Any]) -> None:
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):
        ResponseModel(**bad)


@pytest.mark.parametrize("lift", [-0.5, math.nan, math.inf])
def test_invalid_lift_raises(lift: float) -> None:
    with pytest.raises(ValueError, match="lift"):
        react(np.random.default_rng(0), ResponseModel(), TWO_LOVES, CATALOG, _ids("shoes"), lift)


def test_shopper_of_another_catalog_is_refused() -> None:
    stranger = Shopper("u3", np.array([0.5, 0.5]), ("a", "b"))
    with pytest.raises(ValueError, match="categories"):
        react(np.random.default_rng(0), ResponseModel(), stranger, CATALOG, _ids("shoes"))


def test_catalog_index_is_built_once_and_dropped_with_its_catalog() -> None:
    rng = np.random.default_rng(13)
    catalog = make_catalog(rng, n_items=200, n_categories=6, brands_per_category=3,
                           zipf_exponent=1.0)
    index = CatalogIndex.of(catalog)
    assert CatalogIndex.of(catalog) is index
    assert CatalogIndex.of(index) is index
    assert len(index) == 200
    item = catalog.items[17]
    assert index.get(item.item_id) == (catalog.categories.index(item.category), item.brand)
    assert index.get("nope") is None
    # A generated shop works end to end, through the catalog or its index alike.
    shopper = make_shoppers(rng, catalog, 1, taste_concentration=0.3)[0]
    ids = [i.item_id for i in catalog.items[:10]]
    model = ResponseModel()
    assert expected_clicks(model, shopper, index, ids) == \
        expected_clicks(model, shopper, catalog, ids)
    probabilities = click_probabilities(model, shopper, catalog, ids)
    assert ((probabilities >= 0) & (probabilities <= MAX_CLICK_PROBABILITY)).all()
    # The cache holds the catalog weakly: once it is gone, so is its entry.
    from stream_rec.tools.storefront import response

    key = id(catalog)
    assert key in response._INDEXES
    del catalog
    gc.collect()
    assert key not in response._INDEXES
