"""Fast greedy DPP: same picks as the naive log-determinant greedy, and its edge cases.

Kernels are random PSD matrices with a unit diagonal, S = F F^T + Diag(1 - |F_i|^2), built
with duplicate rows, zero rows and low rank so that the stopping rule and the fill-up are
exercised, not only the happy path.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from stream_rec.rerank import (
    CategoryCap,
    RerankPolicy,
    SimilarityKernel,
    dpp_greedy,
    naive_dpp_greedy,
    rerank,
    similarity_kernel,
)
from stream_rec.rerank import dpp as dpp_module

EPS = 1e-9


def random_kernel(rng: np.random.Generator, n_b: int, m: int, rank: int) -> SimilarityKernel:
    """Random unit-diagonal PSD kernels with duplicates, zero rows and shorter rows."""
    feats = rng.normal(size=(n_b, m, rank))
    feats /= np.linalg.norm(feats, axis=2, keepdims=True)
    if m > 2:
        feats[:, 1] = feats[:, 0]  # an exact duplicate
    lengths = rng.choice([1.0, 1.0, 0.7, 0.0], size=(n_b, m))
    feats *= lengths[:, :, None]
    return SimilarityKernel(np.swapaxes(feats, 1, 2).copy(), 1.0 - lengths**2)


def logd2(sim: NDArray[np.float64], ctx: list[int], i: int) -> float:
    """log of the Schur complement of item i given the context items."""
    idx = [*ctx, i]
    sign, full = np.linalg.slogdet(sim[np.ix_(idx, idx)])
    base = np.linalg.slogdet(sim[np.ix_(ctx, ctx)])[1] if ctx else 0.0
    return float(full - base) if sign > 0 else -np.inf


def context(picks: list[int], window: int | None) -> list[int]:
    if window is None:
        return picks
    return picks[max(0, len(picks) - window + 1) :] if window > 1 else []


def assert_same_greedy(
    fast: NDArray[np.int64],
    naive: NDArray[np.int64],
    sim: NDArray[np.float64],
    rel: NDArray[np.float64],
    theta: float,
    window: int | None,
) -> None:
    """Equal, except that the two may part at a numerical near-tie (then both are greedy)."""
    for step, (a, b) in enumerate(zip(fast.tolist(), naive.tolist(), strict=True)):
        if a == b:
            continue
        assert a >= 0 and b >= 0, f"lengths differ at step {step}: {fast} vs {naive}"
        ctx = context(fast[:step].tolist(), window)
        la, lb = logd2(sim, ctx, a), logd2(sim, ctx, b)
        near_eps = any(abs(x - np.log(EPS)) < 2.0 for x in (la, lb))
        ga, gb = ((1 - theta) * rel[i] + theta * li for i, li in ((a, la), (b, lb)))
        both_spanned = max(la, lb) < np.log(EPS)  # then both are in the relevance fill
        assert near_eps or both_spanned or abs(ga - gb) <= 1e-7 * (1 + abs(gb)), (
            f"step {step}: fast picked {a} (gain {ga}), naive {b} (gain {gb})"
        )
        return


thetas = st.one_of(st.floats(0.0, 1.0), st.floats(1e-4, 0.02), st.sampled_from([0.0, 1.0]))


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    m=st.integers(1, 16),
    rank=st.integers(1, 8),
    k=st.integers(0, 18),
    theta=thetas,
    window=st.sampled_from([None, None, 1, 2, 3, 5]),
    cap=st.sampled_from([None, 1, 2]),
    n_b=st.sampled_from([1, 3]),
)
def test_fast_greedy_picks_what_the_naive_greedy_picks(
    seed: int,
    m: int,
    rank: int,
    k: int,
    theta: float,
    window: int | None,
    cap: int | None,
    n_b: int,
) -> None:
    rng = np.random.default_rng(seed)
    kernel = random_kernel(rng, n_b, m, rank)
    rel = -np.sort(-rng.normal(size=(n_b, m)) * rng.choice([0.1, 1.0, 30.0]), axis=1)
    allowed = rng.random((n_b, m)) < 0.85
    cats = rng.integers(-1, 3, size=(n_b, m))
    fast = dpp_greedy(
        kernel, rel, allowed, k, theta, cap=CategoryCap(cats, cap), window=window, eps=EPS
    )
    sims = kernel.matrix()
    naive_cap = CategoryCap(cats, cap)
    for b in range(n_b):
        naive = naive_dpp_greedy(
            sims[b], rel[b], allowed[b], k, theta,
            cap=naive_cap, list_index=b, window=window, eps=EPS,
        )  # fmt: skip
        assert_same_greedy(fast[b], naive, sims[b], rel[b], theta, window)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    m=st.integers(20, 40),
    rank=st.integers(6, 16),
    k=st.integers(8, 25),
    window=st.sampled_from([3, 4, 6]),
    theta=st.floats(0.05, 1.0),
)
def test_sliding_window_picks_what_the_naive_window_greedy_picks(
    seed: int, m: int, rank: int, k: int, window: int, theta: float
) -> None:
    """Long lists, so the oldest item leaves the window (Givens downdate) many times."""
    rng = np.random.default_rng(seed)
    kernel = random_kernel(rng, 2, m, rank)
    rel = -np.sort(-rng.normal(size=(2, m)), axis=1)
    allowed = np.ones((2, m), dtype=bool)
    fast = dpp_greedy(kernel, rel, allowed, k, theta, window=window)
    sims = kernel.matrix()
    for b in range(2):
        naive = naive_dpp_greedy(sims[b], rel[b], allowed[b], k, theta, window=window)
        assert_same_greedy(fast[b], naive, sims[b], rel[b], theta, window)
        one = dpp_greedy(
            SimilarityKernel(kernel.feats_t[b : b + 1], kernel.fix[b : b + 1]),
            rel[b : b + 1], allowed[b : b + 1], k, theta, window=window,
        )  # fmt: skip
        assert_same_greedy(one[0], naive, sims[b], rel[b], theta, window)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(2, 30), k=st.integers(1, 25))
def test_a_batch_equals_one_list_at_a_time(seed: int, m: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    kernel = random_kernel(rng, 5, m, 6)
    rel = -np.sort(-rng.normal(size=(5, m)), axis=1)
    allowed = rng.random((5, m)) < 0.9
    theta = float(rng.uniform(0.05, 0.95))
    batched = dpp_greedy(kernel, rel, allowed, k, theta)
    for b in range(5):
        one = dpp_greedy(
            SimilarityKernel(kernel.feats_t[b : b + 1], kernel.fix[b : b + 1]),
            rel[b : b + 1], allowed[b : b + 1], k, theta,
        )  # fmt: skip
        assert_same_greedy(one[0], batched[b], kernel.matrix()[b], rel[b], theta, None)


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 40), k=st.integers(0, 45))
def test_theta_zero_is_the_relevance_order(seed: int, m: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    rel = rng.normal(size=m).round(1)  # rounding makes ties, broken by key
    keys = rng.permutation(m).astype(np.int64) * 7
    vecs = rng.normal(size=(m, 4)).astype(np.float32)
    eligible = rng.random(m) < 0.8
    got = rerank(rel, vecs, keys, k, RerankPolicy("dpp", 0.0), eligible=eligible)
    order = [i for i in np.lexsort((keys, -rel)) if eligible[i]][:k]
    assert got.tolist() == order


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    m=st.integers(1, 40),
    k=st.integers(0, 45),
    theta=st.floats(0.0, 1.0),
    rank=st.integers(1, 5),
)
def test_list_is_full_even_when_the_kernel_runs_out_of_rank(
    seed: int, m: int, k: int, theta: float, rank: int
) -> None:
    """Stopping rule: once d^2 < eps the rest is filled by relevance, so no short lists."""
    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(m, rank)).astype(np.float32)
    eligible = rng.random(m) < 0.7
    got = rerank(rng.normal(size=m), vecs, np.arange(m), k, RerankPolicy("dpp", theta),
                 eligible=eligible)  # fmt: skip
    assert len(got) == min(k, int(eligible.sum()))
    assert len(set(got.tolist())) == len(got)
    assert eligible[got].all()


def test_fill_after_the_span_is_exhausted_follows_relevance() -> None:
    # Four items in a 2-d space: after two picks every other item is spanned (d^2 = 0).
    vecs = np.array([[1, 0], [0, 1], [1, 1], [1, -1]], dtype=np.float32)
    rel = np.array([4.0, 1.0, 3.0, 2.0])
    got = rerank(rel, vecs, np.arange(4), 4, RerankPolicy("dpp", 0.9))
    assert got.tolist()[:2] == [0, 1]  # most relevant, then the orthogonal one
    assert got.tolist()[2:] == [2, 3]  # the rest by relevance


def test_diverse_item_beats_near_duplicate() -> None:
    vecs = np.array([[1, 0, 0], [0.999, 0.045, 0], [0, 0, 1]], dtype=np.float32)
    rel = np.array([3.0, 2.9, 2.5])
    assert rerank(rel, vecs, np.arange(3), 2, RerankPolicy("dpp", 0.5)).tolist() == [0, 2]
    assert rerank(rel, vecs, np.arange(3), 2, RerankPolicy("dpp", 0.0)).tolist() == [0, 1]


@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e6, 1e30])
def test_score_scale_does_not_matter_and_nothing_overflows(scale: float) -> None:
    """Relevance is standardised per list, so logits, probabilities or huge scores agree."""
    rng = np.random.default_rng(3)
    rel = rng.normal(size=200)
    vecs = rng.normal(size=(200, 16)).astype(np.float32)
    cats = rng.integers(0, 8, size=200)
    policy = RerankPolicy("dpp", 0.6)
    want = rerank(rel, vecs, np.arange(200), 20, policy, cats)
    got = rerank(rel * scale + 5 * scale, vecs, np.arange(200), 20, policy, cats)
    assert got.tolist() == want.tolist()


def test_tiny_theta_uses_the_log_form_and_still_matches_naive() -> None:
    rng = np.random.default_rng(11)
    kernel = random_kernel(rng, 1, 60, 6)
    rel = -np.sort(-rng.normal(size=(1, 60)) * 5, axis=1)
    allowed = np.ones((1, 60), dtype=bool)
    base, use_log = dpp_module.gain_base(rel, allowed, 0.001)
    assert use_log and np.isfinite(base).all()
    fast = dpp_greedy(kernel, rel, allowed, 20, 0.001)[0]
    naive = naive_dpp_greedy(kernel.matrix()[0], rel[0], allowed[0], 20, 0.001)
    assert_same_greedy(fast, naive, kernel.matrix()[0], rel[0], 0.001, None)


def test_sliding_window_lets_old_items_repeat_their_kind() -> None:
    """With window 2 only the previous item counts: categories may alternate A, B, A, B."""
    cats = np.array([0, 0, 0, 1, 1, 1])
    vecs = np.tile(np.array([[1, 0]], dtype=np.float32), (6, 1))
    rel = np.array([6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    policy = RerankPolicy("dpp", 0.8)
    whole = rerank(rel, vecs, np.arange(6), 4, policy, cats, category_weight=0.9)
    windowed = rerank(rel, vecs, np.arange(6), 4, policy, cats, category_weight=0.9, window=2)
    assert cats[windowed].tolist() == [0, 1, 0, 1]
    assert cats[whole].tolist()[:2] == [0, 1]


def test_similarity_kernel_is_psd_with_unit_diagonal() -> None:
    rng = np.random.default_rng(5)
    vecs = rng.normal(size=(2, 30, 8))
    vecs[0, 3] = 0.0  # no vector
    cats = rng.integers(-1, 4, size=(2, 30))
    sim = similarity_kernel(vecs, cats, 0.4).matrix()
    assert np.allclose(np.diagonal(sim, axis1=1, axis2=2), 1.0)
    assert np.linalg.eigvalsh(sim).min() > -1e-9
    same = (cats[:, :, None] == cats[:, None, :]) & (cats[:, :, None] >= 0)
    unit = vecs / np.maximum(np.linalg.norm(vecs, axis=2, keepdims=True), 1e-300)
    want = 0.6 * unit @ np.swapaxes(unit, 1, 2) + 0.4 * same
    off = ~np.eye(30, dtype=bool)
    assert np.allclose(sim[:, off], want[:, off])


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    m=st.integers(1, 30),
    k=st.integers(1, 25),
    n_b=st.sampled_from([1, 3]),
    theta=st.floats(0.05, 1.0),
    weight=st.sampled_from([0.3, 1.0]),
    window=st.sampled_from([None, 3]),
)
def test_category_rows_and_per_pick_comparison_are_the_same_kernel(
    seed: int, m: int, k: int, n_b: int, theta: float, weight: float, window: int | None
) -> None:
    """One list keeps categories as one-hot feature rows, a lock-step batch compares codes."""
    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(n_b, m, 4))
    vecs[:, 0] = 0.0  # no vector
    cats = rng.integers(-1, 4, size=(n_b, m)) * 10**9  # large codes, unknowns among them
    cats[0, 0] = 10**9  # a known one at least (with none, the category term is dropped)
    rows = similarity_kernel(vecs, cats, weight, category_rows=True)
    codes = similarity_kernel(vecs, cats, weight, category_rows=False)
    assert codes.codes is not None and rows.codes is None
    sims = codes.matrix()
    assert np.allclose(rows.matrix(), sims)
    assert np.allclose(codes.row(n_b - 1, m - 1), sims[n_b - 1, m - 1])
    rel = -np.sort(-rng.normal(size=(n_b, m)), axis=1)
    allowed = rng.random((n_b, m)) < 0.9
    got_rows = dpp_greedy(rows, rel, allowed, k, theta, window=window)
    got_codes = dpp_greedy(codes, rel, allowed, k, theta, window=window)
    for b in range(n_b):
        assert_same_greedy(got_codes[b], got_rows[b], sims[b], rel[b], theta, window)
        naive = naive_dpp_greedy(sims[b], rel[b], allowed[b], k, theta, window=window)
        assert_same_greedy(got_codes[b], naive, sims[b], rel[b], theta, window)


@pytest.mark.parametrize("rows", [True, False])
def test_shrunk_kernel_is_the_identity_blended_with_the_similarity(rows: bool) -> None:
    rng = np.random.default_rng(11)
    vecs = rng.normal(size=(2, 25, 6))
    vecs[1, 4] = 0.0  # no vector
    cats = rng.integers(-1, 3, size=(2, 25))
    full = similarity_kernel(vecs, cats, 0.5, category_rows=rows).matrix()
    eps = dpp_module.dpp_shrinkage(20)
    shrunk = similarity_kernel(vecs, cats, 0.5, category_rows=rows, shrink=eps)
    want = eps * full + (1.0 - eps) * np.eye(25)
    assert np.allclose(shrunk.matrix(), want)
    assert np.allclose(shrunk.row(1, 4), want[1, 4])
    with pytest.raises(ValueError):
        similarity_kernel(vecs, cats, 0.5, shrink=0.0)


def test_shrinkage_follows_the_conditioning_width_and_theta_keeps_its_ends() -> None:
    assert dpp_module.dpp_shrinkage(20) == pytest.approx(1 / 19)
    assert dpp_module.dpp_shrinkage(20, window=5) == pytest.approx(1 / 4)
    assert dpp_module.dpp_shrinkage(2) == dpp_module.dpp_shrinkage(1) == 1.0
    for theta in (0.0, 1.0):
        assert dpp_module.log_det_weight(theta, 0.05) == theta
    assert dpp_module.log_det_weight(0.3, 1.0) == pytest.approx(0.3)
    t = dpp_module.log_det_weight(0.3, 0.1)
    assert t / (1 - t) == pytest.approx(0.3 / 0.7 / 0.01)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), theta=st.sampled_from([0.05, 0.2, 0.5, 0.9]))
def test_weakly_shrunk_dpp_is_the_pairwise_similarity_greedy(seed: int, theta: float) -> None:
    """As eps -> 0 the greedy maximises (1 - theta) sum(z) - theta * sum over pairs of S_ij^2."""
    rng = np.random.default_rng(seed)
    m, k, eps = 30, 8, 1e-4
    vecs = rng.normal(size=(1, m, 5))
    cats = rng.integers(0, 4, size=(1, m))
    z = np.sort(rng.normal(size=(1, m)), axis=1)[:, ::-1].copy()
    allowed = np.ones((1, m), dtype=bool)
    sim = similarity_kernel(vecs, cats, 0.5).matrix()[0]
    kernel = similarity_kernel(vecs, cats, 0.5, shrink=eps)
    got = dpp_greedy(kernel, z, allowed, k, dpp_module.log_det_weight(theta, eps))[0]
    want: list[int] = []
    penalty = np.zeros(m)
    for _ in range(k):
        gain = np.where(allowed[0], (1 - theta) * z[0] - theta * penalty, -np.inf)
        gain[want] = -np.inf
        top = np.sort(gain)[-2:]
        if top[1] - top[0] < 1e-3:  # a near tie: O(eps) terms may decide it
            return
        want.append(int(gain.argmax()))
        penalty += sim[want[-1]] ** 2
    assert got.tolist() == want


def test_a_new_category_beats_embedding_novelty_within_a_spent_category() -> None:
    """Five items of category 0 are in; the sixth slot goes to category 1 on the shrunk kernel.

    Candidate 5 is of category 0 with a vector orthogonal to all; candidate 6 is of category 1
    with the vector of item 0. Five same-category pairs outweigh one same-vector pair, as a
    pair-counting diversity metric sees it; on the unshrunk kernel the category's volume is
    spent and the novel vector wins.
    """
    vecs = np.eye(8)[[0, 1, 2, 3, 4, 5, 0]]
    cats = np.array([0, 0, 0, 0, 0, 0, 1])
    rel = np.array([3.0, 2.9, 2.8, 2.7, 2.6, 1.0, 1.0])
    for theta in (0.05, 0.15, 0.5):
        picked = rerank(rel, vecs, np.arange(7), 6, RerankPolicy("dpp", theta), cats)
        assert picked.tolist() == [0, 1, 2, 3, 4, 6]
        unshrunk = similarity_kernel(vecs[None], cats[None], 0.5)
        z = (rel - rel.mean()) / rel.std()
        old = dpp_greedy(unshrunk, z[None], np.ones((1, 7), dtype=bool), 6, theta)[0]
        assert old.tolist() == [0, 1, 2, 3, 4, 5]
