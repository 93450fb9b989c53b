"""A synthetic storefront (seeded, numpy only): catalog, shoppers with tastes, their sessions.

``make_storefront(StorefrontConfig(seed=7))`` builds the shop; ``write_storefront`` saves its
history as an ``events:`` dataset for training and replay; ``LiveTraffic`` keeps its shoppers
shopping for as long as the demo runs.
"""

from __future__ import annotations

from stream_rec.tools.storefront.catalog import CATEGORIES, Catalog, Item, make_catalog
from stream_rec.tools.storefront.files import ensure_storefront, write_storefront
from stream_rec.tools.storefront.history import (
    LoggedEvent,
    Storefront,
    StorefrontConfig,
    event_history,
    make_storefront,
    split_history,
)
from stream_rec.tools.storefront.live import LiveStep, LiveTraffic
from stream_rec.tools.storefront.shoppers import Habits, ItemChooser, Shopper, make_shoppers

__all__ = [
    "CATEGORIES",
    "Catalog",
    "Habits",
    "Item",
    "ItemChooser",
    "LiveStep",
    "LiveTraffic",
    "LoggedEvent",
    "Shopper",
    "Storefront",
    "StorefrontConfig",
    "ensure_storefront",
    "event_history",
    "make_catalog",
    "make_shoppers",
    "make_storefront",
    "split_history",
    "write_storefront",
]
