"""`--catalog-items N`: the synthetic catalog, its cache, and bench-core measuring at that size."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from jsonschema import Draft202012Validator

from stream_rec.cli import main
from stream_rec.core.catalog import parse_catalog_item
from stream_rec.datasets import load_dataset
from stream_rec.errors import UserError
from stream_rec.tools.bench import catalog_data
from stream_rec.tools.bench import model as bench_model
from stream_rec.tools.bench.catalog_data import (
    catalog_folder,
    catalog_workload,
    check_export_memory,
    ensure_catalog_data,
)
from stream_rec.tools.bench.catalog_sweep import child_argv, format_sweep
from stream_rec.tools.bench.core_run import CoreOptions
from stream_rec.tools.bench.startup_log import process_start_wall, startup_times
from stream_rec.tools.bench.synthetic_catalog import (
    SyntheticConfig,
    make_synthetic,
    write_synthetic,
)
from stream_rec.tools.bench.workload import catalog_messages

ROOT = Path(__file__).resolve().parents[2]
SMALL = SyntheticConfig(n_items=2000, seed=3)


@pytest.fixture(scope="module")
def shop_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("synthetic")
    write_synthetic(make_synthetic(SMALL), folder)
    return folder


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The bench's model and catalog cache, moved into a temporary folder."""
    monkeypatch.setattr(bench_model, "CACHE_DIR", tmp_path / "bench-model")
    return tmp_path / "bench-model"


def test_same_config_same_catalog_and_events() -> None:
    first, again = make_synthetic(SMALL), make_synthetic(SMALL)
    assert first.catalog.attributes() == again.catalog.attributes()
    for name in ("ts_ms", "sessions", "shoppers", "items", "events", "test"):
        assert np.array_equal(getattr(first, name), getattr(again, name)), name
    other = make_synthetic(SyntheticConfig(n_items=2000, seed=4))
    assert not np.array_equal(first.items[:500], other.items[:500])


def test_n_items_each_with_category_brand_and_price() -> None:
    shop = make_synthetic(SMALL)
    attributes = shop.catalog.attributes()
    assert len(attributes) == len(set(shop.item_ids)) == 2000
    for attrs in attributes.values():
        assert attrs["category"] and attrs["brand"] and float(attrs["price"]) > 0


def test_catalog_messages_follow_the_catalog_contract(shop_folder: Path) -> None:
    schema = json.loads((ROOT / "schemas" / "catalog-item.schema.json").read_text())
    validator = Draft202012Validator(schema)
    messages = list(catalog_messages(catalog_workload(shop_folder)))
    assert len(messages) == 2000
    for key, value in messages:
        validator.validate(json.loads(value))
        item = parse_catalog_item(key.decode(), value)
        assert item.category and item.price is not None and item.in_stock


def test_sessions_name_only_catalog_items_and_every_item_is_trained_on(
        shop_folder: Path) -> None:
    dataset = load_dataset(f"events:{shop_folder}")
    assert len(dataset.items) == 2000
    trained = {e.item_id for s in dataset.train for e in s.events}
    tested = {e.item_id for s in dataset.test for e in s.events}
    assert trained == set(dataset.items)  # a model of N items
    assert tested <= set(dataset.items) and dataset.test
    assert {e.event_type for s in dataset.train for e in s.events} == {
        "view", "add_to_cart", "purchase"}


def test_popularity_has_a_long_tail() -> None:
    shop = make_synthetic(SyntheticConfig(n_items=5000, seed=1))
    counts = np.sort(np.bincount(shop.items, minlength=5000))[::-1]
    top_share = counts[:50].sum() / counts.sum()  # the top 1 % of items
    assert top_share > 0.15  # 15x their share under uniform popularity
    assert np.median(counts) <= 2  # most items are seen once or twice


def test_sessions_mostly_stay_in_one_category() -> None:
    shop = make_synthetic(SyntheticConfig(n_items=5000, seed=1))
    category = [item.category for item in shop.catalog.items]
    by_session: dict[int, list[int]] = {}
    for session, item in zip(shop.sessions.tolist(), shop.items.tolist(), strict=True):
        by_session.setdefault(session, []).append(item)
    same = Counter(category[a] == category[b] for steps in by_session.values()
                   for a, b in zip(steps, steps[1:], strict=False))
    assert same[True] / (same[True] + same[False]) > 0.7


def test_the_dataset_is_generated_once_and_then_read_from_the_cache(cache: Path) -> None:
    config = SyntheticConfig(n_items=300)
    folder = ensure_catalog_data(config)
    assert folder == catalog_folder(config) and folder.parent == cache
    written = (folder / "events_train.csv").stat().st_mtime_ns
    assert ensure_catalog_data(config) == folder
    assert (folder / "events_train.csv").stat().st_mtime_ns == written
    assert catalog_folder(SyntheticConfig(n_items=300, seed=1)) != folder


def test_a_model_whose_training_cannot_fit_is_refused_before_it_starts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog_data, "available_memory", lambda: 20 * 2**30)
    check_export_memory(200_000, 100)  # ~4 GB: measured to fit
    with pytest.raises(UserError, match="2,000,000 items x 100 dims"):
        check_export_memory(2_000_000, 100)


def test_startup_times_from_the_worker_log() -> None:
    log = ("2026-01-05 10:00:01,500 INFO stream_rec.worker.feeds: caught up with run.items\n"
           "[2026-01-05 10:00:02,000] faust says something\n"
           "2026-01-05 10:00:03,250 INFO stream_rec.worker.models: now serving model "
           "version 20260105T090000Z\n")
    started = time.mktime((2026, 1, 5, 10, 0, 0, 0, 0, -1))
    times = startup_times(log, "run.items", started, started + 4.0)
    assert times == {"catalog_read": 1.5, "model_served": 3.25, "healthy": 4.0}
    assert startup_times("", "run.items", started, None) == {
        "catalog_read": None, "model_served": None, "healthy": None}


def test_this_process_started_before_now() -> None:
    started = process_start_wall(os.getpid())
    assert started is not None and started <= time.time() + 0.05


def test_a_sweep_measures_each_size_with_the_same_options() -> None:
    options = CoreOptions(events=300, warmup_events=100, batch=64, use_model=False)
    argv = child_argv(options, 43000)
    assert argv[argv.index("--catalog-items") + 1] == "43000"
    assert argv[argv.index("--batch") + 1] == "64" and "--no-model" in argv


def _sweep() -> dict[str, object]:
    return {"catalog_sweep": [
        {"catalog_items": n, "cpu_us_per_event_total": us,
         "cpu_us_per_event": {"take": 10.0, "recommend": us - 20.0, "finish": 10.0},
         "stages_us": {"retrieval": us / 2}, "model_load_s": 1.0, "model_swap_s": 0.2,
         "catalog_read_s": 0.5, "embedding_dim": 16,
         "rss_mb": {"peak_run": 500.0, "model": 100.0, "catalog": 50.0},
         "hot_swap": {"peak_rss_mb": 700.0}} for n, us in ((1000, 100.0), (10000, 300.0))],
        "cpu_ratio_vs_smallest": {"1000": 1.0, "10000": 3.0}}


def test_a_sweep_prints_a_line_per_size_and_draws_its_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from stream_rec.tools.bench.plot import plot_catalog_cost

    assert len(format_sweep(_sweep()).splitlines()) == 3
    plot_catalog_cost(_sweep(), str(tmp_path / "cost.png"))
    assert (tmp_path / "cost.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_core_on_a_synthetic_catalog_without_a_model(
        cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench-core", "--catalog-items", "2000", "--no-model", "--events", "300",
                 "--warmup-events", "100", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["catalog_items"] == 2000 and out["events"] == 300
    assert out["model_version"] is None and out["catalog_read_s"] >= 0
    assert out["data"].startswith(f"events:{cache}")


def test_bench_core_on_a_synthetic_catalog_with_its_model(
        cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tensorflow")  # the model is trained here (about 10 s on 2 cores)
    assert main(["bench-core", "--catalog-items", "2000", "--events", "300",
                 "--warmup-events", "100", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["catalog_items"] == 2000 and out["model_version"]
    assert out["model_load_s"] > 0 and out["hot_swap"]["peak_rss_mb"] > 0
    assert out["hot_swap"]["peak_over_before_mb"] >= 0
    assert out["artifact_mb"]["total"] > 0 and out["training"]["peak_rss_mb"] > 0
    churn = out["catalog_churn"]  # 1 % of the catalog listed new, batches timed after each
    assert churn["new_items"] == 20 and churn["new_items_s"] > 0
    assert churn["batch_ms"] > 0 and churn["batch_ms_after_stock_change"] > 0


def test_bench_serves_the_synthetic_catalog_model(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from stream_rec.tools.bench import runner
    from stream_rec.tools.bench.benchmark import BenchPlan

    asked: list[int] = []

    def trained(config: SyntheticConfig, epochs: int) -> Path:
        asked.append(config.n_items)
        return tmp_path / "catalog-model"

    monkeypatch.setattr(runner, "ensure_catalog_model", trained)
    options = runner.BenchOptions(plan=BenchPlan(), catalog_items=43000)
    assert runner.model_registry(options, tmp_path) == tmp_path / "catalog-model"
    assert asked == [43000]


def test_a_cached_model_from_other_training_code_is_trained_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stream_rec.model.registry import open_registry
    from tests.unit.fake_artifact import make_artifact

    registry = tmp_path / "data-1ep"
    make_artifact(registry / "20240101T000000Z", version="20240101T000000Z")
    open_registry(registry).promote("20240101T000000Z")
    record = bench_model.training_record_path(registry)
    monkeypatch.setattr(bench_model, "can_train", lambda: True)
    assert not bench_model.cached_model_fresh(registry)  # trained by code that left no digest
    record.write_text(json.dumps({"training_code": "older"}))
    assert not bench_model.cached_model_fresh(registry)
    record.write_text(json.dumps({"training_code": bench_model.training_code_digest()}))
    assert bench_model.cached_model_fresh(registry) and bench_model.training_code_digest()
    record.write_text(json.dumps({"training_code": "older"}))
    monkeypatch.setattr(bench_model, "can_train", lambda: False)
    assert bench_model.cached_model_fresh(registry)  # nothing can train here: it serves
