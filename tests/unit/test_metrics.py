"""Ranking and diversity metrics against hand-computed values; the worker's /metrics page."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from stream_rec.config import REPO_ROOT
from stream_rec.core.metrics import (
    catalog_coverage,
    distinct_categories,
    intra_list_diversity,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    relevance_metrics,
    target_ranks,
)
from stream_rec.worker.metrics import (
    COUNTERS,
    LATENCY_BUCKETS_SECONDS,
    RENAMED,
    WorkerMetrics,
)


def test_ranks_hits_and_misses():
    lists = np.array([[5, 3, 9], [1, 2, 4], [7, 7, 7], [-1, -1, -1]])
    np.testing.assert_array_equal(target_ranks(lists, np.array([9, 8, 7, -1])), [3, 0, 1, 0])


def test_relevance_metrics_by_hand():
    lists = np.array([[5, 3, 9], [1, 2, 4], [7, 8, 6]])
    out = relevance_metrics(lists, np.array([9, 8, 7]), k=3)
    assert out["P@3"] == pytest.approx(100 * 2 / 3)
    assert out["MRR@3"] == pytest.approx(100 * (1 / 3 + 0 + 1) / 3)
    assert out["NDCG@3"] == pytest.approx(100 * (1 / math.log2(4) + 1) / 3)


def test_k_cuts_the_list():
    lists = np.array([[1, 2, 3]])
    assert relevance_metrics(lists, np.array([3]), k=2)["P@2"] == 0.0


def test_empty_inputs_give_zero():
    empty = np.zeros(0, dtype=np.int64)
    assert precision_at_k(empty) == mrr_at_k(empty) == ndcg_at_k(empty) == 0.0


def test_coverage_counts_distinct_listed_items():
    assert catalog_coverage(np.array([[0, 1], [1, 2], [-1, -1]]), 10) == pytest.approx(30.0)


def test_ild_share_of_pairs_with_different_categories():
    cats = np.array([[0, 0, 1], [2, 2, 2], [0, -1, 1]])
    # list 1: pairs (0,0) same, (0,1) x2 differ -> 2/3; list 2: 0; list 3: one known pair, differs
    assert intra_list_diversity(cats) == pytest.approx((2 / 3 + 0 + 1) / 3)
    assert intra_list_diversity(np.array([[-1, 3]])) == 0.0


def test_distinct_categories_ignores_unknown():
    assert distinct_categories(np.array([[0, 0, 1], [-1, -1, 5]])) == pytest.approx(1.5)


@given(st.lists(st.integers(0, 20), min_size=1, max_size=50))
def test_metric_ordering(ranks_list):
    ranks = np.array(ranks_list)
    p, mrr, ndcg = precision_at_k(ranks), mrr_at_k(ranks), ndcg_at_k(ranks)
    assert 0 <= mrr <= ndcg <= p <= 100


def _page(metrics) -> dict[str, list]:
    """The rendered page parsed back by prometheus_client: sample name -> samples."""
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(metrics.render()):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def _value(page: dict[str, list], name: str, **labels: str) -> float:
    [match] = [s.value for s in page[name] if s.labels == labels]
    return match


def test_online_figures_render_per_group_with_labels() -> None:
    metrics = WorkerMetrics()
    metrics.online = {"v7|dpp:0.15|exp-1|diverse": {"lists": 12.0, "clicks": 3.0,
                                                    "distinct_items": 40.0},
                      "fallback|none||": {"lists": 2.0}}
    text = metrics.render()
    page = _page(metrics)
    diverse = {"model": "v7", "policy": "dpp:0.15", "experiment": "exp-1", "arm": "diverse"}
    fallback = {"model": "fallback", "policy": "none", "experiment": "", "arm": ""}
    assert _value(page, "stream_rec_online_clicks_total", **diverse) == 3
    assert _value(page, "stream_rec_online_lists_total", **fallback) == 2
    assert _value(page, "stream_rec_online_clicks_total", **fallback) == 0
    assert _value(page, "stream_rec_online_distinct_items", **diverse) == 40
    assert [s.labels for s in page["stream_rec_online_distinct_items"]] == [diverse]
    assert "# TYPE stream_rec_online_revenue_total counter" in text
    assert "# TYPE stream_rec_online_distinct_items gauge" in text


def test_counters_are_named_total_and_read_the_fields_at_scrape_time() -> None:
    metrics = WorkerMetrics()
    families = {f.name: f for f in text_string_to_metric_families(metrics.render())}
    for name, attribute, _ in COUNTERS:
        assert name.endswith("_total")
        assert families[name.removesuffix("_total")].type == "counter"
        setattr(metrics, attribute, 7)
    page = _page(metrics)  # the collector reads the plain ints when scraped
    assert all(_value(page, name) == 7 for name, _, _ in COUNTERS)
    for family in families.values():
        if family.type == "counter":
            assert all(s.name.endswith("_total") for s in family.samples), family.name


def test_latency_histogram_is_in_seconds() -> None:
    metrics = WorkerMetrics()
    for ms in (0.5, 3.0, 5.0, 30.0, 9000.0):  # 5 ms falls in the le="0.005" bucket
        metrics.latency_ms.observe(ms)
    page = _page(metrics)
    name = "stream_rec_recommendation_latency_seconds"
    buckets = {float(s.labels["le"]): s.value for s in page[f"{name}_bucket"]}
    assert list(buckets) == [*LATENCY_BUCKETS_SECONDS, math.inf]
    assert LATENCY_BUCKETS_SECONDS[:3] == (0.001, 0.002, 0.005)
    assert buckets[0.001] == 1 and buckets[0.005] == 3 and buckets[0.05] == 4
    assert buckets[5.0] == 4 and buckets[math.inf] == 5
    assert _value(page, f"{name}_count") == 5
    assert _value(page, f"{name}_sum") == pytest.approx((0.5 + 3 + 5 + 30 + 9000) / 1000)
    assert metrics.latency_ms.quantile(0.5) == 5.0  # the worker's own figure stays in ms


def test_renamed_metrics_are_gone_under_their_old_names() -> None:
    text = WorkerMetrics().render()
    for old, new in RENAMED.items():
        assert old not in text and f"# TYPE {new} " in text
    assert "_ms" not in "".join(line.split(" ")[2] for line in text.splitlines()
                                 if line.startswith("# TYPE"))


def test_labels_are_escaped_and_parse_back_exactly() -> None:
    odd = 'v"1\\x\nnext'
    metrics = WorkerMetrics(model_version=odd, model_unservable="refused")
    metrics.arm_model_bytes = {odd: 1 << 20}
    metrics.online = {f"{odd}|dpp:0.1|exp|a": {"lists": 1.0}}
    text = metrics.render()
    assert 'version="v\\"1\\\\x\\nnext"' in text  # quote, backslash, newline escaped
    page = _page(metrics)
    assert _value(page, "stream_rec_model_info", version=odd) == 1
    assert _value(page, "stream_rec_model_arm_resident_bytes", version=odd) == 1 << 20
    assert _value(page, "stream_rec_online_lists_total", model=odd, policy="dpp:0.1",
                  experiment="exp", arm="a") == 1
    assert _value(page, "stream_rec_model_unservable_info", reason="refused") == 1
    assert _value(page, "stream_rec_model_servable") == 1


def test_every_family_of_the_worker_is_there() -> None:
    metrics = WorkerMetrics(model_unservable="no_model")
    metrics.consumer_lag = {"storefront.events:0": 4, "storefront.events:11": 0}
    metrics.commit_stalls = {"storefront.events:3": 9}
    metrics.stages.seconds["scoring"] = 1.5
    metrics.stages.count(10)
    page = _page(metrics)
    assert _value(page, "stream_rec_consumer_lag", topic="storefront.events", partition="11") == 0
    assert _value(page, "stream_rec_commit_stalled", topic="storefront.events", partition="3") == 9
    assert _value(page, "stream_rec_stage_seconds_total", stage="scoring") == 1.5
    assert _value(page, "stream_rec_stage_events_total") == 10
    assert {s.labels["generation"] for s in page["stream_rec_gc_collections_total"]} == \
        {"0", "1", "2"}
    assert _value(page, "stream_rec_model_info", version="none") == 1
    assert _value(page, "stream_rec_model_servable") == 0
    assert _value(page, "stream_rec_model_unservable_info", reason="no_model") == 1
    assert "stream_rec_model_unservable_info" not in _page(WorkerMetrics(model_version="v1"))
    # prometheus_client's process and platform collectors
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                 "process_start_time_seconds", "process_open_fds", "python_info"):
        assert name in page, name


def test_each_worker_metrics_has_its_own_registry() -> None:
    from prometheus_client import REGISTRY

    one, two = WorkerMetrics(events_in=1), WorkerMetrics(events_in=2)
    assert one.registry is not two.registry
    assert _value(_page(one), "stream_rec_events_in_total") == 1
    assert _value(_page(two), "stream_rec_events_in_total") == 2
    assert REGISTRY.get_sample_value("stream_rec_events_in_total") is None
    assert one == WorkerMetrics(events_in=1)  # the registry is not part of the value


def test_content_type_is_the_text_format_generate_latest_writes() -> None:
    assert WorkerMetrics.content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert WorkerMetrics().exposition().startswith(b"# HELP stream_rec_")


def test_the_metrics_view_answers_the_page_with_its_content_type() -> None:
    # In a child process: importing the views builds the worker's Faust app.
    code = ("import asyncio\n"
            "from stream_rec.app import app\n"
            "from stream_rec.worker import views\n"
            "response = asyncio.run(views.Metrics(app, app.web).get(None))\n"
            "print(response.headers['Content-Type'])\n"
            "print(response.body.decode().splitlines()[1])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=REPO_ROOT, env=os.environ.copy())
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines() == ["text/plain; version=0.0.4; charset=utf-8",
                                       "# TYPE stream_rec_events_in_total counter"]
