"""Ranking and diversity metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

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


def test_online_figures_render_per_group_with_labels() -> None:
    from stream_rec.worker.metrics import WorkerMetrics

    metrics = WorkerMetrics()
    metrics.online = {"v7|dpp:0.15|exp-1|diverse": {"lists": 12.0, "clicks": 3.0},
                      "fallback|none||": {"lists": 2.0}}
    text = metrics.render()
    assert ('stream_rec_online_clicks_total{model="v7",policy="dpp:0.15",experiment="exp-1",'
            'arm="diverse"} 3') in text
    assert 'stream_rec_online_lists_total{model="fallback",policy="none",experiment="",arm=""} 2' \
        in text
    assert "# TYPE stream_rec_online_revenue_total counter" in text
