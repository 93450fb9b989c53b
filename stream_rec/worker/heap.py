"""Keep Python's cyclic garbage collector off the long-lived part of a serving process's heap.

A worker holds hundreds of thousands of objects that live as long as the process: the catalog,
the item table's index, the served model's Python side, Faust's and aiokafka's machinery. The
hot path allocates short-lived tuples by the thousand per batch (shopper states, history
entries, lists), so CPython runs a full (generation 2) collection every so often, and each one
walks every long-lived object again: hundreds of milliseconds, paid on the hot path.
``settle`` collects once and moves every object alive at that moment to the permanent
generation (``gc.freeze``), which the collector skips. Frozen objects are still freed by
reference counting; only a reference cycle among them would stay until the next ``settle``,
which starts by unfreezing so the old model's cycles are collected after a swap.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)


def settle(reason: str) -> float:
    """Collect everything, then freeze the survivors; returns the seconds it took."""
    started = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    seconds = time.perf_counter() - started
    log.info("heap settled after %s: %d objects frozen in %.0f ms", reason,
             gc.get_freeze_count(), seconds * 1000)
    return seconds


# Catalog records between two freezes while the catalog is first read. At a million items the
# read's full collections grew from 70 to 290 ms each as the catalog grew (~3 s in the worker;
# a probe of the catalog read alone: 0.95 s of full collections, 0.09 s freezing every 50,000).
FREEZE_EVERY = 50_000


class GrowthFreezer:
    """Freezes the heap every ``every`` calls of ``grew`` while a long-lived structure is
    built (the catalog at start): otherwise each full collection walks all of it built so
    far again. ``settle`` afterwards unfreezes and collects, so cycles left meanwhile go."""

    def __init__(self, every: int | None = None) -> None:
        self.every = FREEZE_EVERY if every is None else every
        self.count = 0

    def grew(self) -> None:
        self.count += 1
        if self.count % self.every == 0:
            gc.freeze()


def collections_by_generation() -> list[int]:
    """How many collections the collector has run, per generation (0, 1, 2)."""
    return [int(stats["collections"]) for stats in gc.get_stats()]
