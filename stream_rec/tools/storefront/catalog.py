"""The synthetic storefront's catalog: categories, brands, prices and skewed popularity.

Real shops sell a few items a lot and most items rarely; item popularity here follows a Zipf
law over a random ranking (weight of the item ranked r is ``r ** -zipf_exponent``), so the
recommender meets the same long tail as on a real event log.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

# Typical price of each category in EUR; an item's price scatters around it.
CATEGORY_PRICES: dict[str, float] = {
    "shoes": 80.0, "jackets": 140.0, "dresses": 70.0, "bags": 90.0, "watches": 220.0,
    "headphones": 120.0, "phones": 450.0, "laptops": 900.0, "cookware": 45.0, "coffee": 12.0,
    "skincare": 25.0, "toys": 30.0, "books": 18.0, "garden": 55.0, "sports": 60.0,
    "lighting": 40.0,
}
CATEGORIES: tuple[str, ...] = tuple(CATEGORY_PRICES)
_SYLLABLES = ("ka", "lo", "ri", "ne", "vo", "ta", "mi", "su", "de", "ro", "li", "an", "ber",
              "to", "ze", "mar", "ni", "qu", "sol", "ve")


@dataclass(frozen=True)
class Item:
    """One item of the synthetic shop: its id, category, brand and price in euros."""

    item_id: str
    category: str
    brand: str
    price: float  # EUR


@dataclass(frozen=True)
class Catalog:
    """Items in id order, each item's popularity (sums to 1) and each category's items."""

    items: tuple[Item, ...]
    popularity: NDArray[np.float64]
    categories: tuple[str, ...]
    brands: dict[str, tuple[str, ...]]  # category -> its brands

    def positions(self, category: str) -> NDArray[np.int64]:
        """Positions (into ``items``) of the category's items."""
        return np.flatnonzero([item.category == category for item in self.items])

    def attributes(self) -> dict[str, dict[str, str]]:
        """item_id -> attributes, as the dataset readers hold them (raw strings)."""
        return {item.item_id: {"category": item.category, "brand": item.brand,
                               "price": f"{item.price:.2f}"} for item in self.items}


def make_catalog(rng: np.random.Generator, n_items: int, n_categories: int,
                 brands_per_category: int, zipf_exponent: float) -> Catalog:
    """A seeded synthetic catalog: uneven categories, brand price levels, Zipf popularity."""
    if not 1 <= n_categories <= len(CATEGORIES):
        raise ValueError(f"n_categories must be 1..{len(CATEGORIES)}, not {n_categories}")
    if n_items < n_categories:
        raise ValueError("need at least one item per category")
    categories = CATEGORIES[:n_categories]
    brands = _brand_names(rng, categories, brands_per_category)
    # Unequal category sizes, but every category gets at least one item.
    share = rng.dirichlet(np.full(n_categories, 3.0))
    category_of = np.concatenate([np.arange(n_categories),
                                  rng.choice(n_categories, n_items - n_categories, p=share)])
    rng.shuffle(category_of)
    # A brand's premium moves all its prices together, as a brand's positioning does.
    premium = {b: float(rng.lognormal(0.0, 0.25)) for bs in brands.values() for b in bs}
    items = []
    for n, c in enumerate(category_of):
        category = categories[int(c)]
        brand = brands[category][int(rng.integers(brands_per_category))]
        price = CATEGORY_PRICES[category] * premium[brand] * float(rng.lognormal(0.0, 0.35))
        items.append(Item(f"i{n + 1:05d}", category, brand, _shop_price(price)))
    rank = rng.permutation(n_items) + 1
    weight = rank.astype(np.float64) ** -zipf_exponent
    return Catalog(tuple(items), weight / weight.sum(), categories, brands)


def _shop_price(price: float) -> float:
    """Prices end in .99, as shops print them."""
    return max(round(price) - 0.01, 0.99)


def _brand_names(rng: np.random.Generator, categories: tuple[str, ...],
                 per_category: int) -> dict[str, tuple[str, ...]]:
    """Made-up brand names, unique across the catalog (a brand sells in one category)."""
    taken: set[str] = set()
    brands: dict[str, tuple[str, ...]] = {}
    for category in categories:
        names: list[str] = []
        while len(names) < per_category:
            name = "".join(rng.choice(_SYLLABLES, int(rng.integers(2, 4)))).capitalize()
            if name not in taken:
                taken.add(name)
                names.append(name)
        brands[category] = tuple(names)
    return brands
