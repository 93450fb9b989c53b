"""The synthetic storefront has the structure it claims, and the readers take it unchanged."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from stream_rec.config import load_settings
from stream_rec.datasets import load_dataset
from stream_rec.tools.storefront import (
    LiveTraffic,
    LoggedEvent,
    Storefront,
    StorefrontConfig,
    ensure_storefront,
    event_history,
    make_storefront,
    write_storefront,
)

SMALL = StorefrontConfig(seed=3, n_items=300, n_shoppers=150)
History = tuple[Storefront, list[LoggedEvent]]


@pytest.fixture(scope="module")
def history() -> History:
    storefront = make_storefront(SMALL)
    return storefront, event_history(storefront)


def test_same_seed_same_shop_other_seed_other_shop(tmp_path: Path) -> None:
    first = write_storefront(make_storefront(SMALL), tmp_path / "a")
    again = write_storefront(make_storefront(SMALL), tmp_path / "b")
    other = write_storefront(make_storefront(StorefrontConfig(seed=4, n_items=300,
                                                              n_shoppers=150)), tmp_path / "c")
    for name in ("events_train.csv", "events_test.csv", "items.csv"):
        assert (first / name).read_bytes() == (again / name).read_bytes()
    assert (first / "events_train.csv").read_bytes() != (other / "events_train.csv").read_bytes()


def test_item_popularity_is_skewed(history: History) -> None:
    _, events = history
    counts = np.array(sorted(Counter(e.item_id for e in events).values(), reverse=True))
    top = counts[: max(1, len(counts) // 10)].sum() / counts.sum()
    # A uniform shop would give the top tenth of items about a tenth of the events.
    assert top > 0.4, f"top 10% of items got only {top:.0%} of the events"
    assert counts[0] > 20 * np.median(counts)


def test_shoppers_shop_in_the_categories_they_like(history: History) -> None:
    storefront, events = history
    category = {i.item_id: i.category for i in storefront.catalog.items}
    by_user: dict[str, list[str]] = {}
    for e in events:
        by_user.setdefault(e.user_id, []).append(category[e.item_id])
    shares = []
    for shopper in storefront.shoppers:
        seen = by_user.get(shopper.user_id, [])
        top = set(shopper.top_categories(storefront.catalog, 3))
        shares.append(sum(c in top for c in seen) / len(seen))
    # Three of twelve categories would hold a quarter of a taste-blind shopper's events.
    assert np.mean(shares) > 0.75


def test_sessions_mix_views_carts_and_purchases(history: History) -> None:
    _, events = history
    kinds = Counter(e.event for e in events)
    assert kinds["view"] > kinds["cart"] > kinds["purchase"] > 0
    carted = {(e.session_id, e.item_id) for e in events if e.event == "cart"}
    bought = {(e.session_id, e.item_id) for e in events if e.event == "purchase"}
    assert bought <= carted  # nothing is bought without going through the cart


def test_events_reader_takes_the_folder_unchanged(tmp_path: Path) -> None:
    folder = ensure_storefront(tmp_path / "shop", SMALL)
    dataset = load_dataset(f"events:{folder}", load_settings(environ={}))
    types = {e.event_type for s in dataset.train for e in s.events}
    assert types == {"view", "add_to_cart", "purchase"}
    assert dataset.test and dataset.test_cases()
    assert max(e.ts_ms for s in dataset.train for e in s.events) < \
        min(s.events[0].ts_ms for s in dataset.test)
    assert len(dataset.items) == SMALL.n_items
    assert set(dataset.attribute_names()) == {"category", "brand", "price"}


def test_ensure_reuses_a_folder_of_the_same_config_and_rewrites_another(tmp_path: Path) -> None:
    folder = ensure_storefront(tmp_path / "shop", SMALL)
    (folder / "events_test.csv").write_text("timestamp,user_id,item_id,event\n")
    ensure_storefront(folder, SMALL)
    assert (folder / "events_test.csv").read_text().count("\n") == 1
    ensure_storefront(folder, StorefrontConfig(seed=5, n_items=300, n_shoppers=150))
    assert (folder / "events_test.csv").read_text().count("\n") > 1


def test_live_traffic_leaves_skipped_shoppers_alone(history: History) -> None:
    storefront, _ = history
    traffic = LiveTraffic(storefront, seed=1, concurrent=5)
    first = [traffic.next_step() for _ in range(50)]
    assert {s.type for s in first} <= {"view", "add_to_cart", "purchase"}
    driven = {first[-1].user_id}
    later = [traffic.next_step(skip=driven) for _ in range(300)]
    assert driven.isdisjoint(s.user_id for s in later)
    assert len({s.user_id for s in later}) > 5  # sessions end and other shoppers come in
