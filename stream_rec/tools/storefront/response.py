"""How a simulated shopper answers a recommendation list they are shown.

A page shows the first ``displayed`` items of the list (that is the impression). The shopper
looks at each shown item once and clicks it, independently of the others, with probability::

    P(click at 0-based position p) = min(0.95, base_click * relevance * attention(p)
                                             * exp(-satiation * m) * lift)

    relevance    = taste[category] / max(taste)          (1 for the shopper's favourite category)
                   * brand_boost  if the item is the shopper's favourite brand of its category
    attention(p) = 1 / (1 + p) ** position_decay          (position bias: people read top-down)
    m            = items of the same category shown above p in this list

and keeps at most ``max_clicks`` clicks (the first ones, by position). Each clicked item goes
into the cart with probability ``cart_after_click``; each carted item is bought with probability
``buy_after_cart``. Items the catalog does not know are shown but never clicked (and, having no
category, do not count towards ``m``).

Why satiation: without it a list's clicks would be the sum of its items' relevance, so the list
of the ten most relevant items would always win and a diversity knob could only lose clicks.
Real shoppers tire of near-duplicates: the fifth pair of running shoes in a row is worth less
than the first. With ``satiation > 0`` a list of near-duplicates earns fewer clicks than a
varied list of the same per-item relevance, which is what makes relevance-vs-diversity
re-ranking a real trade-off in simulation. ``satiation = 0`` turns the effect off.

``lift`` multiplies every click probability. It exists only to test the statistics and the
experiment pipeline: a test can plant a known difference between arms (say 1.5x the clicks in
one) and check that the analysis finds it. Leave it at 1 to simulate shoppers.

Pure and seeded: numpy and the storefront modules, nothing else.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from stream_rec.tools.storefront.catalog import Catalog
from stream_rec.tools.storefront.shoppers import Shopper

MAX_CLICK_PROBABILITY = 0.95  # no item is a sure click, however relevant


@dataclass(frozen=True)
class ResponseModel:
    """How a shopper answers a list they see; every rate is tunable (module docstring: formula).

    ``displayed``: items the page shows; the impression is the first ``displayed`` of the list.
    ``base_click``: click probability of a top-position item of a fully liked category (before
    satiation and brand boost). ``position_decay``: attention at 0-based position p is
    ``1 / (1 + p) ** position_decay`` (0: no position bias). ``satiation``: an item's click
    probability is multiplied by ``exp(-satiation * m)``, m = items of its category shown above
    it (0: no fatigue). ``brand_boost``: relevance factor of the shopper's favourite brand in a
    category (1: no boost). ``cart_after_click`` / ``buy_after_cart``: probability that a
    clicked item is carted / a carted item is bought. ``max_clicks``: most clicks on one list.
    """

    displayed: int = 10
    base_click: float = 0.08
    position_decay: float = 1.0
    satiation: float = 0.5
    brand_boost: float = 1.5
    cart_after_click: float = 0.25
    buy_after_cart: float = 0.5
    max_clicks: int = 3

    def __post_init__(self) -> None:
        for name in ("displayed", "max_clicks"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ResponseModel.{name} must be an integer >= 1, not {value!r}")
        for name in ("base_click", "cart_after_click", "buy_after_cart"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:  # NaN fails this too
                raise ValueError(f"ResponseModel.{name} is a probability: it must be in [0, 1], "
                                 f"not {value!r}")
        for name in ("position_decay", "satiation"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"ResponseModel.{name} must be finite and >= 0 (0 turns it "
                                 f"off), not {value!r}")
        if not (math.isfinite(self.brand_boost) and self.brand_boost >= 1.0):
            raise ValueError("ResponseModel.brand_boost must be finite and >= 1 (1 turns it "
                             f"off), not {self.brand_boost!r}")


@dataclass(frozen=True)
class Reaction:
    """What the shopper did with one list: what was shown, and the positions acted on.

    Positions are 0-based into ``displayed``, ascending; ``carts`` is a subset of ``clicks`` and
    ``purchases`` a subset of ``carts``.
    """

    displayed: tuple[str, ...]  # item ids shown, in display order (what the impression reports)
    clicks: tuple[int, ...]
    carts: tuple[int, ...]
    purchases: tuple[int, ...]

    def clicked_items(self) -> tuple[str, ...]:
        """Item ids clicked, in click order."""
        return tuple(self.displayed[p] for p in self.clicks)

    def carted_items(self) -> tuple[str, ...]:
        """Item ids added to the cart."""
        return tuple(self.displayed[p] for p in self.carts)

    def purchased_items(self) -> tuple[str, ...]:
        """Item ids bought."""
        return tuple(self.displayed[p] for p in self.purchases)


class CatalogIndex:
    """item_id -> (category index into ``catalog.categories``, brand), built once per catalog.

    ``CatalogIndex.of(catalog)`` returns the cached index of a catalog (built on first use and
    dropped when the catalog is garbage collected), so ``react`` stays fast on repeated calls.
    """

    def __init__(self, catalog: Catalog) -> None:
        slot = {category: k for k, category in enumerate(catalog.categories)}
        entries: dict[str, tuple[int, str]] = {}
        for item in catalog.items:
            if item.category not in slot:
                raise ValueError(f"item {item.item_id} has category {item.category!r}, "
                                 "which is not among the catalog's categories")
            entries[item.item_id] = (slot[item.category], item.brand)
        # No reference to the catalog itself: the cache below must not keep it alive.
        self.categories: tuple[str, ...] = catalog.categories
        self.entries = entries

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, item_id: str) -> tuple[int, str] | None:
        """The item's (category index, brand), or None for an id the catalog does not know."""
        return self.entries.get(item_id)

    @classmethod
    def of(cls, catalog: Catalog | CatalogIndex) -> CatalogIndex:
        """The index of ``catalog``, built once and cached (an index is returned as it is)."""
        if isinstance(catalog, CatalogIndex):
            return catalog
        key = id(catalog)
        cached = _INDEXES.get(key)
        if cached is not None and cached[0]() is catalog:
            return cached[1]
        index = cls(catalog)

        def forget(ref: weakref.ref[Catalog]) -> None:
            entry = _INDEXES.get(key)
            if entry is not None and entry[0] is ref:
                del _INDEXES[key]

        _INDEXES[key] = (weakref.ref(catalog, forget), index)
        return index


# id(catalog) -> (weak reference to it, its index). Catalog holds a dict and an array, so it is
# not hashable and cannot key a WeakKeyDictionary or an lru_cache.
_INDEXES: dict[int, tuple[weakref.ref[Catalog], CatalogIndex]] = {}


def click_probabilities(model: ResponseModel, shopper: Shopper, catalog: Catalog | CatalogIndex,
                        item_ids: Sequence[str], lift: float = 1.0) -> NDArray[np.float64]:
    """Click probability of each displayed item (the first ``model.displayed`` of ``item_ids``).

    The formula is in the module docstring; unknown item ids get 0. ``lift`` (>= 0) multiplies
    every probability and exists only to plant known differences in tests of the statistics.
    """
    if not (math.isfinite(lift) and lift >= 0.0):
        raise ValueError(f"lift must be finite and >= 0, not {lift!r}")
    index = CatalogIndex.of(catalog)
    n_categories = len(index.categories)
    if len(shopper.taste) != n_categories or len(shopper.favourite_brands) != n_categories:
        raise ValueError(f"shopper {shopper.user_id} has a taste and favourite brands for "
                         f"{len(shopper.taste)} and {len(shopper.favourite_brands)} categories; "
                         f"the catalog has {n_categories}")
    shown = item_ids[: model.displayed]
    probabilities = np.zeros(len(shown), dtype=np.float64)
    taste = shopper.taste.tolist()
    top = max(taste, default=0.0)
    if top <= 0.0:
        return probabilities
    scale = model.base_click * lift / top
    decay, satiation, boost = model.position_decay, model.satiation, model.brand_boost
    favourites = shopper.favourite_brands
    shown_before = [0] * n_categories  # items of each category shown so far
    for p, item_id in enumerate(shown):
        entry = index.entries.get(item_id)
        if entry is None:
            continue
        category, brand = entry
        probability = scale * taste[category] / (1.0 + p) ** decay
        if brand == favourites[category]:
            probability *= boost
        if shown_before[category]:
            probability *= math.exp(-satiation * shown_before[category])
        shown_before[category] += 1
        probabilities[p] = min(probability, MAX_CLICK_PROBABILITY)
    return probabilities


def expected_clicks(model: ResponseModel, shopper: Shopper, catalog: Catalog | CatalogIndex,
                    item_ids: Sequence[str], lift: float = 1.0) -> float:
    """Expected clicks on the list ignoring ``max_clicks``: the sum of the click probabilities."""
    return float(click_probabilities(model, shopper, catalog, item_ids, lift).sum())


def react(rng: np.random.Generator, model: ResponseModel, shopper: Shopper,
          catalog: Catalog | CatalogIndex, item_ids: Sequence[str],
          lift: float = 1.0) -> Reaction:
    """Draw what ``shopper`` does with the list ``item_ids``: clicks, then carts, then purchases.

    Clicks are independent Bernoulli draws per displayed item (``click_probabilities``), of
    which the first ``model.max_clicks`` by position are kept; each click is carted with
    probability ``model.cart_after_click`` and each cart bought with ``model.buy_after_cart``.
    ``lift`` is for testing the statistics and the pipeline only (see the module docstring).
    """
    displayed = tuple(str(item_id) for item_id in item_ids[: model.displayed])
    probabilities = click_probabilities(model, shopper, catalog, displayed, lift)
    draws = rng.random(len(displayed))
    clicks = tuple(int(p) for p in np.flatnonzero(draws < probabilities)[: model.max_clicks])
    carts: tuple[int, ...] = ()
    purchases: tuple[int, ...] = ()
    if clicks:
        carted = rng.random(len(clicks)) < model.cart_after_click
        carts = tuple(p for p, keep in zip(clicks, carted, strict=True) if keep)
    if carts:
        bought = rng.random(len(carts)) < model.buy_after_cart
        purchases = tuple(p for p, keep in zip(carts, bought, strict=True) if keep)
    return Reaction(displayed, clicks, carts, purchases)
