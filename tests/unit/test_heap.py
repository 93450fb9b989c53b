"""Settling the heap: survivors frozen out of the collector's walks, old cycles freed later."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from stream_rec.worker.heap import GrowthFreezer, collections_by_generation, settle
from stream_rec.worker.metrics import WorkerMetrics


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector can free it


@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # leave the test process's collector as it was


def test_settle_freezes_what_is_alive_and_the_next_settle_frees_its_cycles() -> None:
    node = _Node()
    alive = weakref.ref(node)
    settle("test")
    assert gc.get_freeze_count() > 0
    del node
    gc.collect()
    assert alive() is not None  # frozen: a full collection no longer looks at it
    settle("swap")
    assert alive() is None  # unfrozen first, so garbage from before the last settle goes


def test_garbage_made_after_a_settle_is_still_collected() -> None:
    settle("test")
    node = _Node()
    alive = weakref.ref(node)
    del node
    gc.collect()
    assert alive() is None


def test_metrics_report_collections_per_generation() -> None:
    before = collections_by_generation()
    gc.collect()
    after = collections_by_generation()
    assert len(after) == 3 and after[2] == before[2] + 1
    text = WorkerMetrics().render()
    for generation in range(3):
        assert f'stream_rec_gc_collections_total{{generation="{generation}"}}' in text


def test_a_growing_structure_is_frozen_every_so_many_steps() -> None:
    gc.unfreeze()
    growth = GrowthFreezer(every=3)
    built = []
    for n in range(5):
        built.append(_Node())
        growth.grew()
        assert (gc.get_freeze_count() > 0) is (n >= 2)  # the third step froze the heap
    alive = weakref.ref(built[0])
    del built
    gc.collect()
    assert alive() is not None  # frozen with the structure: freed at the next settle
    settle("startup")
    assert alive() is None


def test_the_worker_freezes_while_it_first_reads_the_catalog_and_not_after(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import json

    from aiokafka import ConsumerRecord

    from stream_rec.config import load_settings
    from stream_rec.worker import heap
    from stream_rec.worker.runtime import WorkerRuntime

    monkeypatch.setattr(heap, "FREEZE_EVERY", 2)
    runtime = WorkerRuntime(load_settings())

    def record(n: int) -> ConsumerRecord:
        return ConsumerRecord("items", 0, n, 0, 0, f"i{n}".encode(),
                              json.dumps({"category": "c"}).encode(), None, 0, 0, [])

    async def read() -> None:
        gc.unfreeze()
        for n in range(4):
            runtime.apply_catalog_record(record(n))
        assert gc.get_freeze_count() > 0  # frozen while the catalog was first read
        runtime.catalog_ready.set()
        gc.unfreeze()
        for n in range(4, 8):
            runtime.apply_catalog_record(record(n))
        assert gc.get_freeze_count() == 0  # afterwards only settle freezes
        assert len(runtime.recommender.catalog.items) == 8

    asyncio.run(read())
