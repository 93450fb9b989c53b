"""The DPP over the most relevant candidates first: same lists as over the whole pool."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_rec.rerank import (
    CategoryCap,
    RerankPolicy,
    SimilarityKernel,
    dpp_greedy,
    rerank,
    rerank_batch,
    similarity_kernel,
    standardise_relevance,
)
from stream_rec.rerank import prefix as prefix_module
from stream_rec.rerank.dpp import DppTrace
from stream_rec.rerank.prefix import dpp_prefix_first, first_width
from tests.unit.test_rerank_dpp import assert_same_greedy


def pools(seed: int, n_b: int, m: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(n_b, m, 6)).astype(np.float32)
    vecs[:, 3] = vecs[:, 2]  # a duplicate
    cats = rng.integers(-1, 5, size=(n_b, m))
    rel = -np.sort(-rng.gumbel(size=(n_b, m)) * rng.choice([0.3, 2.0]), axis=1)
    ok = rng.random((n_b, m)) < 0.9
    return vecs, cats, standardise_relevance(rel, ok), ok


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_b=st.sampled_from([1, 3]),
    k=st.integers(2, 20),
    theta=st.floats(0.01, 1.0),
    cap=st.sampled_from([None, 1, 3]),
)
def test_prefix_first_picks_what_the_whole_pool_picks(
    seed: int, n_b: int, k: int, theta: float, cap: int | None
) -> None:
    m = 40
    vecs, cats, z, ok = pools(seed, n_b, m)
    order = np.tile(np.arange(m), (n_b, 1))
    got = dpp_prefix_first(
        vecs, order, cats, z, ok, k, theta, category_weight=0.5, max_per_category=cap, prefix=12
    )
    kernel = similarity_kernel(vecs, cats, 0.5)
    want = dpp_greedy(kernel, z, ok, k, theta, cap=CategoryCap(cats, cap))
    sims = kernel.matrix()
    for b in range(n_b):
        assert_same_greedy(got[b], want[b], sims[b], z[b], theta, None)


def test_lists_the_bound_cannot_vouch_for_are_rerun_on_the_whole_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    widths: list[int] = []
    traced = prefix_module.dpp_greedy_traced

    def spy(kernel: SimilarityKernel, *args: Any, **kwargs: Any) -> DppTrace:
        widths.append(kernel.feats_t.shape[2])
        return traced(kernel, *args, **kwargs)

    monkeypatch.setattr(prefix_module, "dpp_greedy_traced", spy)
    vecs, cats, z, ok = pools(3, 4, 120)
    order = np.tile(np.arange(120), (4, 1))
    dpp_prefix_first(vecs, order, cats, z, ok, 10, 0.3, category_weight=0.5)
    assert widths == [64]  # mild diversity: the first 64 decide every list
    widths.clear()
    dpp_prefix_first(vecs, order, cats, z, ok, 30, 1.0, category_weight=0.5)
    assert widths == [64, 120]  # pure diversity reaches past them: re-run


def test_small_pools_and_relevance_only_run_whole() -> None:
    assert first_width(200, 20, 0.4) == 64
    assert first_width(90, 20, 0.4) == 90
    assert first_width(200, 1, 0.4) == 200
    assert first_width(200, 20, 0.0) == 200


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), theta=st.sampled_from([0.2, 0.5, 0.9]))
def test_batch_rows_equal_single_list_calls_on_wide_pools(seed: int, theta: float) -> None:
    rng = np.random.default_rng(seed)
    rel = rng.normal(size=(5, 120)).astype(np.float32)
    vecs, cats = rng.normal(size=(5, 120, 8)).astype(np.float32), rng.integers(-1, 9, (5, 120))
    keys = rng.permutation(5 * 120).reshape(5, 120).astype(np.int64)
    pol = RerankPolicy("dpp", theta)
    got = rerank_batch(rel, vecs, keys, 20, pol, cats, max_per_category=4)
    for b in range(5):
        one = rerank(rel[b], vecs[b], keys[b], 20, pol, cats[b], max_per_category=4)
        assert got[b][got[b] >= 0].tolist() == one.tolist()
