"""What a changing catalog costs a serving worker: new listings the model never saw, and items
going out of stock between batches.

A shop's catalog moves all day. Each change is applied as the worker's catalog feed applies it
(``Recommender.upsert_item``), between batches, and the batches that follow are timed against
batches without a change, in the same run. The figures that must not grow with the catalog:
the time to take in a new listing, and what one stock change adds to the next batch (a copy of
the whole retrieval matrix per change would cost hundreds of milliseconds at a million items).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from statistics import median

from stream_rec.serving.recommender import Recommender

NEW_ITEMS_SHARE = 0.01  # new listings: 1 % of the catalog...
MOST_NEW_ITEMS = 5000  # ...at most this many
STOCK_CHANGES = 8  # batches after one stock change each, and as many without


def catalog_churn(recommender: Recommender, serve: Callable[[], object]) -> dict[str, float]:
    """Apply new listings and stock changes to ``recommender``'s catalog; ``serve()`` runs one
    batch. Wall times; the catalog keeps the changes (its items come back in stock)."""
    items = list(recommender.catalog.items.values())
    if not items:
        return {}
    n_new = max(1, min(MOST_NEW_ITEMS, round(NEW_ITEMS_SHARE * len(items))))
    started = time.perf_counter()
    for n in range(n_new):  # described like an existing item, so they score by attributes
        recommender.upsert_item(replace(items[n % len(items)], item_id=f"bench-new-{n}"))
    new_s = time.perf_counter() - started
    first_after_new = _timed(serve)
    plain, changed = [], []
    for n in range(STOCK_CHANGES):
        plain.append(_timed(serve))
        item = items[(n * 7919) % len(items)]
        recommender.upsert_item(replace(item, in_stock=False))
        changed.append(_timed(serve))
        recommender.upsert_item(replace(item, in_stock=True))
    return {"new_items": n_new, "new_items_s": round(new_s, 3),
            "new_item_us": round(new_s / n_new * 1e6, 1),
            "batch_ms_after_new_items": round(first_after_new * 1000, 1),
            "batch_ms": round(median(plain) * 1000, 1),
            "batch_ms_after_stock_change": round(median(changed) * 1000, 1)}


def _timed(step: Callable[[], object]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started
