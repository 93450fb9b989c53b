"""bench-retrieval's accounting: recall against exact, and one row per index."""

from __future__ import annotations

import numpy as np

from stream_rec.tools.bench.retrieval import Candidate, compare, exact_search, recall_at_k


def test_recall_counts_the_share_of_the_exact_top_k_found() -> None:
    exact = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    assert recall_at_k(exact, exact) == 1.0
    found = np.array([[4, 3, 9, -1], [8, 0, 0, 0]])  # -1 is no item; repeats count once
    assert recall_at_k(found, exact) == (2 / 4 + 1 / 4) / 2


def test_exact_search_is_the_true_top_k_and_an_index_is_scored_against_it() -> None:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(500, 8)).astype(np.float32)
    queries = rng.normal(size=(40, 8)).astype(np.float32)
    found = exact_search(vectors)(queries, 10)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    assert [set(r) for r in found.tolist()] == [set(r) for r in truth.tolist()]

    def half_right(v: np.ndarray):  # type: ignore[no-untyped-def]
        exact = exact_search(v)
        return lambda q, k: np.concatenate([exact(q, k)[:, : k // 2],
                                            np.full((len(q), k - k // 2), -1)], axis=1)

    rows = compare(vectors, queries, 10, [Candidate("half", {"a": 1}, half_right)])
    assert [r["library"] for r in rows] == ["exact", "half"]
    assert rows[0]["recall_at_k"] == 1.0 and rows[1]["recall_at_k"] == 0.5
    assert rows[1]["params"] == {"a": 1} and rows[1]["us_per_query"] >= 0


def test_the_shipped_graph_is_measured_at_each_beam_width_without_a_build() -> None:
    import pytest

    pytest.importorskip("faiss")
    from stream_rec.model.ann import AnnIndex, build_index
    from stream_rec.tools.bench.retrieval import shipped_candidates

    rng = np.random.default_rng(4)
    vectors = rng.normal(size=(300, 8)).astype(np.float32)
    queries = rng.normal(size=(20, 8)).astype(np.float32)
    shipped = AnnIndex(build_index(vectors, "hnsw-flat", threads=1), 64)
    rows = compare(vectors, queries, 20, shipped_candidates(shipped, (32, 300)))
    assert [(r["library"], r["params"]) for r in rows[1:]] == [
        ("shipped-hnsw", {"efSearch": 32}), ("shipped-hnsw", {"efSearch": 300})]
    assert rows[2]["recall_at_k"] == 1.0  # a beam as wide as the catalog finds all of it
