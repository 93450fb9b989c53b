"""A storefront's event history over a span of days, split by time into train and test."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from stream_rec.tools.storefront.catalog import Catalog, make_catalog
from stream_rec.tools.storefront.shoppers import (
    Habits,
    ItemChooser,
    Shopper,
    make_shoppers,
    shop_session,
)

DAY_MS = 86_400_000


@dataclass(frozen=True)
class StorefrontConfig:
    """Sizes and habits of a synthetic storefront; the same config and seed, the same data.

    The defaults give ~600 items and ~15k events: big enough to show what the model learns,
    small enough to train in about a minute on two CPU cores.
    """

    seed: int = 7
    n_items: int = 600
    n_categories: int = 12
    brands_per_category: int = 5
    n_shoppers: int = 400
    sessions_per_shopper: float = 5.0  # on average, over the whole span
    zipf_exponent: float = 1.05  # item popularity ~ rank ** -zipf_exponent
    taste_concentration: float = 0.3  # Dirichlet alpha of a shopper's category taste
    habits: Habits = field(default_factory=Habits)
    start_ms: int = 1_767_571_200_000  # 2026-01-05T00:00:00Z
    days: int = 28
    test_days: int = 4  # sessions starting in the last days are the test split


@dataclass(frozen=True)
class Storefront:
    """A synthetic shop: its settings, its catalog and its shoppers."""

    config: StorefrontConfig
    catalog: Catalog
    shoppers: tuple[Shopper, ...]

    @property
    def chooser(self) -> ItemChooser:
        return ItemChooser(self.catalog, self.config.habits.brand_boost)


class LoggedEvent(NamedTuple):
    """One row of an ``events:`` file: the dataset's event word, not the contract type."""

    ts_ms: int
    user_id: str
    session_id: str
    item_id: str
    event: str


def make_storefront(config: StorefrontConfig | None = None) -> Storefront:
    """The synthetic shop ``config`` describes (the default shop without one), seeded."""
    config = config or StorefrontConfig()
    rng = np.random.default_rng([config.seed, 0])
    catalog = make_catalog(rng, config.n_items, config.n_categories,
                           config.brands_per_category, config.zipf_exponent)
    shoppers = make_shoppers(rng, catalog, config.n_shoppers, config.taste_concentration)
    return Storefront(config, catalog, shoppers)


def event_history(storefront: Storefront) -> list[LoggedEvent]:
    """Every shopper's sessions over ``config.days``, oldest first."""
    config = storefront.config
    rng = np.random.default_rng([config.seed, 1])  # its own stream: the catalog stays put
    chooser = storefront.chooser
    events: list[LoggedEvent] = []
    for shopper in storefront.shoppers:
        n_sessions = 1 + int(rng.poisson(max(config.sessions_per_shopper - 1.0, 0.0)))
        starts = np.sort(rng.integers(0, config.days * DAY_MS, n_sessions))
        for n, start in enumerate(starts):
            session_id = f"{shopper.user_id}-s{n + 1}"
            ts = config.start_ms + int(start)
            for item_id, word in shop_session(rng, chooser, shopper, config.habits):
                events.append(LoggedEvent(ts, shopper.user_id, session_id, item_id, word))
                ts += int(rng.integers(5_000, 90_000))  # 5 s .. 1.5 min between actions
    events.sort(key=lambda e: (e.ts_ms, e.user_id))
    return events


def split_history(storefront: Storefront,
                  events: list[LoggedEvent]) -> tuple[list[LoggedEvent], list[LoggedEvent]]:
    """(train, test): a session belongs to the split its first event falls in."""
    config = storefront.config
    cut = config.start_ms + (config.days - config.test_days) * DAY_MS
    first: dict[str, int] = {}
    for event in events:
        first.setdefault(event.session_id, event.ts_ms)
    train = [e for e in events if first[e.session_id] < cut]
    test = [e for e in events if first[e.session_id] >= cut]
    return train, test
