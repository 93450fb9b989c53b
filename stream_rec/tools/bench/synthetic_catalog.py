"""A synthetic catalog of any size and shopping sessions over it, for catalog-size benchmarks.

The targets name costs at 43,000, 200,000 and 1,000,000 items; no dataset here has more than
43,097. ``make_synthetic(SyntheticConfig(n_items=N))`` builds one, seeded and numpy-vectorised
(a million items and three million events in well under a minute):

- the catalog is the synthetic storefront's (``make_catalog``: categories, brands with price
  levels, prices, Zipf popularity over a random ranking), so items carry the attributes the
  catalog contract names;
- items are grouped into clusters of ``cluster_size`` (same category, mostly the same brand);
  a session picks a cluster by its popularity and mostly stays in it, drawing items by
  popularity, so a model has item-level co-occurrence to learn, and a long tail to meet;
- some steps add the item just viewed to the cart or buy it;
- every item also appears once in a "browsing" session of its cluster, early in the time span,
  so the model's vocabulary (items seen in training) is the whole catalog: the point is a
  model of N items.

``write_synthetic`` saves it as an ``events:`` dataset folder with the storefront's own event
writer. Sessions starting in the last ``test_days`` are the test split (what a bench replays).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from stream_rec.tools.storefront.catalog import Catalog, make_catalog
from stream_rec.tools.storefront.files import _write_events
from stream_rec.tools.storefront.history import DAY_MS, LoggedEvent
from stream_rec.tools.storefront.shoppers import CART, PURCHASE, VIEW

WORDS = (VIEW, CART, PURCHASE)  # event codes 0, 1, 2 of ``SyntheticShop.events``


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and habits of a synthetic catalog; the same config, the same data.

    Counts are items, events or sessions; times are ms. The popularity-drawn events are
    ``events_per_item * n_items`` up to ``max_drawn_events``, plus one browsing event per item.
    """

    n_items: int
    seed: int = 0
    n_categories: int = 16
    brands_per_category: int = 40
    zipf_exponent: float = 1.05  # item popularity ~ rank ** -zipf_exponent
    cluster_size: int = 50  # items a session mostly stays among
    stay_in_cluster: float = 0.8  # a step stays in the session's cluster
    events_per_item: float = 2.0
    max_drawn_events: int = 2_000_000
    mean_session_events: float = 6.0
    browse_session_events: int = 5  # items per session of the coverage pass
    cart: float = 0.08  # a step (after the first) puts the item just viewed in the cart
    purchase: float = 0.03  # a step (after the first) buys the item just viewed
    sessions_per_shopper: float = 3.0
    start_ms: int = 1_767_571_200_000  # 2026-01-05T00:00:00Z
    days: int = 28
    test_days: int = 2

    def __post_init__(self) -> None:
        if self.n_items < self.n_categories:
            raise ValueError(f"need at least {self.n_categories} items (one per category)")
        if not 0 < self.test_days < self.days:
            raise ValueError("test_days must be between 0 and days")


@dataclass(frozen=True)
class SyntheticShop:
    """A generated catalog and its event log as arrays, one entry per event, oldest first.

    ``items`` are positions into ``catalog.items``; ``events`` codes into ``WORDS``;
    ``sessions`` numbers sessions, ``shoppers`` the shopper of each event.
    """

    config: SyntheticConfig
    catalog: Catalog
    ts_ms: NDArray[np.int64]
    sessions: NDArray[np.int64]
    shoppers: NDArray[np.int64]
    items: NDArray[np.int64]
    events: NDArray[np.int8]
    test: NDArray[np.bool_]  # the event's session starts in the test span

    @property
    def item_ids(self) -> list[str]:
        return [item.item_id for item in self.catalog.items]


def make_synthetic(config: SyntheticConfig) -> SyntheticShop:
    """The catalog and event log ``config`` describes, seeded."""
    rng = np.random.default_rng([config.seed, 0])
    catalog = make_catalog(rng, config.n_items, config.n_categories,
                           config.brands_per_category, config.zipf_exponent)
    order = _cluster_order(rng, catalog)
    drawn = _drawn_sessions(rng, config, catalog.popularity[order])
    browsing = _browsing_sessions(config)
    lengths = np.concatenate([drawn[0], browsing[0]])
    positions = np.concatenate([drawn[1], browsing[1]])
    events = np.concatenate([drawn[2], browsing[2]])
    n_sessions = len(lengths)
    span = config.days * DAY_MS
    train_span = (config.days - config.test_days) * DAY_MS
    # Browsing sessions start in the first half of the training span: in training, always.
    starts = np.concatenate([rng.integers(0, span, len(drawn[0])),
                             rng.integers(0, train_span // 2, len(browsing[0]))])
    session = np.repeat(np.arange(n_sessions), lengths)
    gaps = rng.integers(5_000, 90_000, len(session))  # 5 s .. 1.5 min between steps
    first = np.cumsum(lengths) - lengths
    gaps[first] = 0
    elapsed = np.cumsum(gaps)
    ts = config.start_ms + starts[session] + elapsed - elapsed[first][session]
    n_shoppers = max(1, round(n_sessions / config.sessions_per_shopper))
    shopper_of = rng.integers(0, n_shoppers, n_sessions)
    time_order = np.lexsort((session, ts))
    return SyntheticShop(
        config=config, catalog=catalog, ts_ms=ts[time_order].astype(np.int64),
        sessions=session[time_order], shoppers=shopper_of[session][time_order],
        items=order[positions][time_order], events=events[time_order],
        test=(starts >= train_span)[session][time_order])


def _cluster_order(rng: np.random.Generator, catalog: Catalog) -> NDArray[np.int64]:
    """Catalog positions sorted by category, then brand, then at random: consecutive blocks
    of ``cluster_size`` in this order are the clusters."""
    category = {c: n for n, c in enumerate(catalog.categories)}
    brand = {b: n for bs in catalog.brands.values() for n, b in enumerate(bs)}
    cat_code = np.fromiter((category[i.category] for i in catalog.items), np.int64,
                           len(catalog.items))
    brand_code = np.fromiter((brand[i.brand] for i in catalog.items), np.int64,
                             len(catalog.items))
    return np.lexsort((rng.random(len(catalog.items)), brand_code, cat_code)).astype(np.int64)


def _drawn_sessions(rng: np.random.Generator, config: SyntheticConfig,
                    popularity: NDArray[np.float64]
                    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int8]]:
    """(session lengths, positions in cluster order, event codes) of the popularity-drawn
    sessions; ``popularity`` is in cluster order."""
    n = len(popularity)
    target = min(int(config.events_per_item * n), config.max_drawn_events)
    n_sessions = max(1, round(target / config.mean_session_events))
    lengths = 1 + rng.poisson(config.mean_session_events - 1.0, n_sessions)
    size = config.cluster_size
    cum = np.cumsum(popularity)
    lo = np.arange(0, n, size)
    hi = np.minimum(lo + size, n)
    below = np.concatenate([[0.0], cum])  # popularity before position p: below[p]
    weight = below[hi] - below[lo]
    home = _draw(rng, weight, n_sessions)
    cluster = np.repeat(home, lengths)
    strays = rng.random(len(cluster)) >= config.stay_in_cluster
    cluster[strays] = _draw(rng, weight, int(strays.sum()))
    # Within a cluster, an item by its popularity: invert the cumulative sum on its stretch.
    u = below[lo[cluster]] + rng.random(len(cluster)) * weight[cluster]
    positions = np.clip(np.searchsorted(cum, u, side="right"), lo[cluster], hi[cluster] - 1)
    first = np.zeros(len(cluster), dtype=bool)
    first[np.cumsum(lengths) - lengths] = True
    r = rng.random(len(cluster))
    events = np.where(r < config.cart, 1, np.where(r < config.cart + config.purchase, 2, 0))
    events[first] = 0
    # A cart or purchase is of the item viewed last: the latest view at or before the step.
    last_view = np.maximum.accumulate(np.where(events == 0, np.arange(len(events)), 0))
    return lengths, positions[last_view].astype(np.int64), events.astype(np.int8)


def _browsing_sessions(config: SyntheticConfig
                       ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int8]]:
    """Every item once, in cluster order, cut into sessions: the coverage pass."""
    n, per = config.n_items, config.browse_session_events
    lengths = np.full(-(-n // per), per, dtype=np.int64)
    lengths[-1] = n - per * (len(lengths) - 1)
    return lengths, np.arange(n, dtype=np.int64), np.zeros(n, dtype=np.int8)


def _draw(rng: np.random.Generator, weight: NDArray[np.float64], n: int) -> NDArray[np.int64]:
    """``n`` indices drawn with probability proportional to ``weight``."""
    cum = np.cumsum(weight)
    picks = np.searchsorted(cum, rng.random(n) * cum[-1], side="right")
    return np.minimum(picks, len(weight) - 1).astype(np.int64)


def write_synthetic(shop: SyntheticShop, folder: Path) -> dict[str, int]:
    """``events_train.csv``, ``events_test.csv`` and ``items.csv`` into ``folder`` (which must
    exist); returns the counts written."""
    ids = shop.item_ids
    shoppers = shop.shoppers.tolist()
    sessions = shop.sessions.tolist()
    items = shop.items.tolist()
    codes = shop.events.tolist()
    stamps = shop.ts_ms.tolist()
    test = shop.test.tolist()
    rows: tuple[list[LoggedEvent], list[LoggedEvent]] = ([], [])
    for n in range(len(stamps)):
        rows[test[n]].append(LoggedEvent(stamps[n], f"u{shoppers[n]}", f"s{sessions[n]}",
                                         ids[items[n]], WORDS[codes[n]]))
    _write_events(folder / "events_train.csv", rows[0])
    _write_events(folder / "events_test.csv", rows[1])
    attributes = shop.catalog.attributes()
    with open(folder / "items.csv", "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["item_id", "category", "brand", "price"])
        writer.writerows([item_id, a["category"], a["brand"], a["price"]]
                         for item_id, a in attributes.items())
    return {"items": len(ids), "events": len(stamps), "train_events": len(rows[0]),
            "test_events": len(rows[1]), "sessions": int(shop.sessions.max()) + 1}
