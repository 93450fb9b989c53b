"""MMR: same picks as a plain-Python reference, lambda = 1 is the relevance order."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from stream_rec.rerank import CategoryCap, RerankPolicy, mmr_greedy, rerank, similarity_kernel


def reference_mmr(
    sim: NDArray[np.float64], rel: NDArray[np.float64], allowed: NDArray[np.bool_], k: int,
    lam: float,
) -> list[int]:  # fmt: skip
    """Carbonell & Goldstein, written as plainly as possible (first index wins ties)."""
    chosen: list[int] = []
    while len(chosen) < k:
        best, best_score = -1, -np.inf
        for i in range(len(rel)):
            if not allowed[i] or i in chosen:
                continue
            redundancy = max((sim[i, j] for j in chosen), default=0.0)
            score = rel[i] if not chosen else lam * rel[i] - (1 - lam) * redundancy
            if score > best_score:
                best, best_score = i, score
        if best < 0:
            break
        chosen.append(best)
    return chosen


@settings(max_examples=120, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    m=st.integers(1, 25),
    k=st.integers(0, 30),
    lam=st.floats(0.0, 1.0),
    n_b=st.sampled_from([1, 4]),
    weight=st.sampled_from([0.0, 0.5]),
)
def test_mmr_matches_the_reference(
    seed: int, m: int, k: int, lam: float, n_b: int, weight: float
) -> None:
    rng = np.random.default_rng(seed)
    kernel = similarity_kernel(rng.normal(size=(n_b, m, 5)), rng.integers(-1, 3, (n_b, m)), weight)
    rel = -np.sort(-rng.normal(size=(n_b, m)), axis=1)
    allowed = rng.random((n_b, m)) < 0.8
    got = mmr_greedy(kernel, rel, allowed, k, lam)
    sims = kernel.matrix()
    for b in range(n_b):
        want = reference_mmr(sims[b], rel[b], allowed[b], k, lam)
        row = got[b].tolist()
        assert row[: len(want)] == want
        assert all(x == -1 for x in row[len(want) :])


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 40), k=st.integers(0, 45))
def test_lambda_one_is_the_relevance_order(seed: int, m: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    rel = rng.normal(size=m).round(1)
    keys = rng.permutation(m).astype(np.int64)
    eligible = rng.random(m) < 0.8
    got = rerank(rel, rng.normal(size=(m, 3)), keys, k, RerankPolicy("mmr", 1.0),
                 eligible=eligible)  # fmt: skip
    assert got.tolist() == [i for i in np.lexsort((keys, -rel)) if eligible[i]][:k]


def test_mmr_trades_a_near_duplicate_for_a_different_item() -> None:
    vecs = np.array([[1, 0], [0.999, 0.045], [0, 1]], dtype=np.float32)
    rel = np.array([3.0, 2.9, 2.5])  # z-scores 0.93, 0.46, -1.39
    assert rerank(rel, vecs, np.arange(3), 2, RerankPolicy("mmr", 0.3)).tolist() == [0, 2]
    assert rerank(rel, vecs, np.arange(3), 2, RerankPolicy("mmr", 0.9)).tolist() == [0, 1]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), lam=st.floats(0.0, 1.0), cap=st.integers(1, 3))
def test_mmr_respects_the_category_cap(seed: int, lam: float, cap: int) -> None:
    rng = np.random.default_rng(seed)
    cats = rng.integers(-1, 4, size=(3, 30))
    kernel = similarity_kernel(rng.normal(size=(3, 30, 4)), cats, 0.3)
    rel = -np.sort(-rng.normal(size=(3, 30)), axis=1)
    got = mmr_greedy(kernel, rel, np.ones((3, 30), bool), 15, lam, cap=CategoryCap(cats, cap))
    for b in range(3):
        picked = cats[b][got[b][got[b] >= 0]]
        known = picked[picked >= 0]
        assert (np.bincount(known, minlength=4) <= cap).all()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_b=st.sampled_from([1, 4]), lam=st.floats(0.0, 0.95))
def test_category_rows_and_per_pick_comparison_pick_alike(seed: int, n_b: int, lam: float) -> None:
    rng = np.random.default_rng(seed)
    vecs, cats = rng.normal(size=(n_b, 25, 5)), rng.integers(-1, 3, (n_b, 25))
    rel = -np.sort(-rng.normal(size=(n_b, 25)), axis=1)
    allowed = rng.random((n_b, 25)) < 0.8
    got = [
        mmr_greedy(similarity_kernel(vecs, cats, 0.5, category_rows=rows), rel, allowed, 12, lam)
        for rows in (True, False)
    ]
    assert got[0].tolist() == got[1].tolist()
