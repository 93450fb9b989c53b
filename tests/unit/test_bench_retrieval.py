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
