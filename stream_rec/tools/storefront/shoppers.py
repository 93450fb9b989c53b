"""Shoppers with latent tastes, and the shopping sessions those tastes produce.

A shopper likes a few categories (a sparse Dirichlet draw over all of them) and has one
favourite brand per category. A session mostly stays in one category the shopper likes, views
items in proportion to their popularity (more so the favourite brand's), puts some in the cart
and buys some of those at the end: the structure a recommender should pick up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from stream_rec.tools.storefront.catalog import Catalog

# The dataset words the ``events:`` reader maps onto the contract (view, add_to_cart, purchase).
VIEW, CART, PURCHASE = "view", "cart", "purchase"


@dataclass(frozen=True)
class Shopper:
    """A synthetic shopper: how much they like each category, and their brand in each."""

    user_id: str
    taste: NDArray[np.float64]  # preference over catalog.categories, sums to 1
    favourite_brands: tuple[str, ...]  # one per category, same order as catalog.categories

    def top_categories(self, catalog: Catalog, n: int = 3) -> list[str]:
        return [catalog.categories[int(c)] for c in np.argsort(-self.taste, kind="stable")[:n]]


@dataclass(frozen=True)
class Habits:
    """How sessions look; probabilities are per viewed item unless said otherwise."""

    mean_views: float = 7.0  # items viewed per session, on average
    stay_in_category: float = 0.85  # a view stays in the session's category
    revisit: float = 0.12  # a view goes back to an item seen earlier in the session
    cart: float = 0.12  # a viewed item goes into the cart
    buy: float = 0.5  # a carted item is bought when the session ends
    brand_boost: float = 4.0  # how much more a shopper views their favourite brand


def make_shoppers(rng: np.random.Generator, catalog: Catalog, n: int,
                  taste_concentration: float) -> tuple[Shopper, ...]:
    """``taste_concentration`` is the Dirichlet alpha: small values, few liked categories."""
    shoppers = []
    for k in range(n):
        taste = rng.dirichlet(np.full(len(catalog.categories), taste_concentration))
        brands = tuple(str(rng.choice(catalog.brands[c])) for c in catalog.categories)
        shoppers.append(Shopper(f"u{k + 1:04d}", taste, brands))
    return tuple(shoppers)


class ItemChooser:
    """Picks items for a shopper in a category; the per-category weights are computed once."""

    def __init__(self, catalog: Catalog, brand_boost: float) -> None:
        self.catalog = catalog
        self.brand_boost = brand_boost
        self._positions = {c: catalog.positions(c) for c in catalog.categories}

    def choose(self, rng: np.random.Generator, shopper: Shopper, category: str) -> str:
        positions = self._positions[category]
        favourite = shopper.favourite_brands[self.catalog.categories.index(category)]
        weight = self.catalog.popularity[positions] * np.array(
            [self.brand_boost if self.catalog.items[p].brand == favourite else 1.0
             for p in positions])
        pick = positions[rng.choice(len(positions), p=weight / weight.sum())]
        return self.catalog.items[int(pick)].item_id


def shop_session(rng: np.random.Generator, chooser: ItemChooser, shopper: Shopper,
                 habits: Habits) -> list[tuple[str, str]]:
    """One session as (item_id, event word) pairs, in order."""
    categories = chooser.catalog.categories
    focus = categories[int(rng.choice(len(categories), p=shopper.taste))]
    steps: list[tuple[str, str]] = []
    viewed: list[str] = []
    carted: list[str] = []
    for _ in range(1 + int(rng.poisson(max(habits.mean_views - 1.0, 0.0)))):
        if viewed and rng.random() < habits.revisit:
            item = viewed[int(rng.integers(len(viewed)))]
        else:
            category = focus if rng.random() < habits.stay_in_category else \
                categories[int(rng.choice(len(categories), p=shopper.taste))]
            item = chooser.choose(rng, shopper, category)
        viewed.append(item)
        steps.append((item, VIEW))
        if item not in carted and rng.random() < habits.cart:
            carted.append(item)
            steps.append((item, CART))
    steps += [(item, PURCHASE) for item in carted if rng.random() < habits.buy]
    return steps
