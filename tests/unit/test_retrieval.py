"""top_n: the exact n best columns of every row, whichever path computes them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_rec.serving.retrieval import SAMPLE_PER_PICK, masked_top_n, top_n


def assert_exact_top(scores: np.ndarray, got: np.ndarray, n: int) -> None:
    assert got.shape == (scores.shape[0], n)
    for row, cols in zip(scores, got, strict=True):
        assert len(set(cols.tolist())) == n  # no column twice
        expected = np.sort(row)[::-1][:n]
        np.testing.assert_array_equal(row[cols], expected)  # the best n, best first


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 6), cols=st.integers(1, 9000), n=st.integers(1, 60),
       seed=st.integers(0, 2**32 - 1), levels=st.sampled_from([3, 50, 0]))
def test_returns_the_n_largest_scores_of_every_row(rows: int, cols: int, n: int, seed: int,
                                                     levels: int) -> None:
    rng = np.random.default_rng(seed)
    n = min(n, cols)
    # levels > 0: few distinct values, so many ties at the n-th place
    scores = (rng.integers(0, levels, (rows, cols)) if levels
              else rng.standard_normal((rows, cols))).astype(np.float32)
    assert_exact_top(scores, top_n(scores, n), n)


@pytest.mark.parametrize("ordered", [True, False])
def test_a_row_whose_sample_misleads_falls_back_to_an_exact_pick(ordered: bool) -> None:
    n, cols = 20, 5120
    step = cols // (SAMPLE_PER_PICK * n)  # the sample takes every step-th column
    scores = np.zeros((3, cols), dtype=np.float32)
    # The row's best scores are all sampled: the threshold lets only about ten of them pass.
    scores[1, ::step] = np.arange(len(scores[1, ::step])) + 100.0
    scores[1, 1::step][:40] = np.arange(40) + 50.0
    scores[2] = np.random.default_rng(1).standard_normal(cols)
    got = top_n(scores, n, ordered=ordered)
    assert_exact_top(scores, got if ordered else best_first(scores, got), n)


@pytest.mark.parametrize("ordered", [True, False])
def test_a_row_where_far_more_pass_than_there_is_room_for_is_picked_exactly(ordered: bool
                                                                             ) -> None:
    n, cols = 20, 5120
    step = cols // (SAMPLE_PER_PICK * n)
    rng = np.random.default_rng(2)
    scores = rng.standard_normal((3, cols)).astype(np.float32) + 10.0
    # Row 1's sampled columns are its worst: every score passes their threshold.
    scores[1, ::step] = -10.0 - rng.random(len(scores[1, ::step]))
    scores[2, : cols // 2] = -np.inf  # a masked half
    got = top_n(scores, n, ordered=ordered)
    assert_exact_top(scores, got if ordered else best_first(scores, got), n)


def best_first(scores: np.ndarray, cols: np.ndarray) -> np.ndarray:
    order = np.argsort(-np.take_along_axis(scores, cols, axis=1), axis=1, kind="stable")
    return np.take_along_axis(cols, order, axis=1)


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 6), cols=st.integers(1, 9000), n=st.integers(1, 60),
       seed=st.integers(0, 2**32 - 1), levels=st.sampled_from([3, 0]))
def test_unordered_returns_the_same_columns_in_any_order(rows: int, cols: int, n: int,
                                                          seed: int, levels: int) -> None:
    rng = np.random.default_rng(seed)
    n = min(n, cols)
    scores = (rng.integers(0, levels, (rows, cols)) if levels
              else rng.standard_normal((rows, cols))).astype(np.float32)
    got = top_n(scores, n, ordered=False)
    assert_exact_top(scores, best_first(scores, got), n)


def test_rejects_an_impossible_n() -> None:
    with pytest.raises(ValueError):
        top_n(np.zeros((2, 5), dtype=np.float32), 6)


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 5), cols=st.integers(1, 3000), dim=st.integers(1, 8),
       n=st.integers(1, 80), chunk=st.integers(1, 1200), blocked_share=st.floats(0, 0.9),
       seed=st.integers(0, 2**32 - 1), levels=st.sampled_from([3, 0]))
def test_masked_top_n_by_chunks_is_the_top_n_of_the_open_columns(
        rows: int, cols: int, dim: int, n: int, chunk: int, blocked_share: float, seed: int,
        levels: int) -> None:
    rng = np.random.default_rng(seed)
    queries = rng.standard_normal((rows, dim)).astype(np.float32)
    vectors_t = (rng.integers(0, levels, (dim, cols)) if levels  # ties across chunks
                 else rng.standard_normal((dim, cols))).astype(np.float32)
    blocked = np.flatnonzero(rng.random(cols) < blocked_share)
    n = min(n, cols - len(blocked))
    if n <= 0:
        return
    got = masked_top_n(queries, vectors_t, blocked, n, chunk=chunk)
    assert not np.isin(got, blocked).any()
    scores = queries @ vectors_t
    scores[:, blocked] = -np.inf
    assert_exact_top(scores, got, n)
