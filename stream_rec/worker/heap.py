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


def collections_by_generation() -> list[int]:
    """How many collections the collector has run, per generation (0, 1, 2)."""
    return [int(stats["collections"]) for stats in gc.get_stats()]
