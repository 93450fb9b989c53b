"""`bench-core`: the worker's per-batch work in one process counts what it claims."""

from __future__ import annotations

import pytest

from stream_rec.core.catalog import parse_catalog_item
from stream_rec.serving.batch import BatchConfig
from stream_rec.serving.recommender import Recommender, RecommenderConfig
from stream_rec.tools.bench.core_cpu import PARTS, run_core
from stream_rec.tools.bench.workload import ShopperStream
from tests.unit.test_bench_workload import _workload


def _recommender() -> Recommender:
    rec = Recommender(RecommenderConfig(k=5, pool=20))
    for n in range(50):
        rec.upsert_item(parse_catalog_item(f"i{n}", b'{"category": "c%d"}' % (n % 3)))
    return rec


def test_every_measured_event_gets_one_list() -> None:
    events = ShopperStream(_workload(), "r", concurrency=5, seed=2).take(60, "p")
    result = run_core(_recommender(), events, batch=7, warmup=10, config=BatchConfig())
    measured = len(events) - 10  # exactly the events after the warm-up
    assert result.events == measured and result.lists == measured
    assert set(result.cpu_us) == set(PARTS)
    assert all(us >= 0 for us in result.cpu_us.values())
    assert result.to_dict()["cpu_us_per_event_total"] == pytest.approx(
        sum(result.cpu_us.values()), abs=0.2)


def test_the_warm_up_must_leave_events_to_measure() -> None:
    events = ShopperStream(_workload(), "r", concurrency=5, seed=2).take(10, "p")
    with pytest.raises(ValueError, match="warm-up"):
        run_core(_recommender(), events, batch=4, warmup=10, config=BatchConfig())
    with pytest.raises(ValueError, match="batch"):
        run_core(_recommender(), events, batch=0, warmup=0, config=BatchConfig())
