"""The compiled greedy loops (DPP and MMR) give exactly what their numpy specifications give.

stream_rec/rerank/dpp_reference.py and mmr_reference.py are the readable versions; the
compiled kernels repeat their floating-point operations in the same order, so the lists, the
DPP's trace (smallest pick gain, cleanness) and the category cap's counts must be identical,
not merely close. Inputs are built to reach the edge cases: fewer candidates than k, exact
ties (duplicate vectors, equal relevance), all-zero vectors, eligibility masks, category caps,
sliding windows, both gain forms (a tiny theta takes the log form) and gains on a wider pool's
scale (as the prefix run passes them).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from stream_rec.rerank import CategoryCap, RerankPolicy, rerank_batch, similarity_kernel
from stream_rec.rerank.dpp import dpp_greedy_traced, gain_base
from stream_rec.rerank.dpp_reference import dpp_greedy_reference
from stream_rec.rerank.mmr import mmr_greedy
from stream_rec.rerank.mmr_reference import mmr_greedy_reference
from stream_rec.rerank.similarity import SimilarityKernel

ROOT = Path(__file__).resolve().parents[2]


def make_case(
    seed: int,
    n_b: int,
    m: int,
    dim: int,
    category_weight: float,
    shrink: float,
    spare: int,
    category_rows: bool | None,
) -> tuple[SimilarityKernel, NDArray[np.float64], NDArray[np.bool_], NDArray[np.int64]]:
    """A kernel with duplicate and zero vectors, tied relevance, a mask and category codes."""
    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(n_b, m, dim))
    if m > 2:
        vecs[:, 1] = vecs[:, 0]  # an exact duplicate, and equal relevance below
    vecs[rng.random((n_b, m)) < 0.15] = 0.0  # items without a vector
    rel = np.round(rng.normal(size=(n_b, m)) * rng.choice([0.1, 1.0, 30.0]), 1)
    if m > 2:
        rel[:, 1] = rel[:, 0]
    rel = -np.sort(-rel, axis=1)  # canonical order: relevance descending
    allowed = rng.random((n_b, m)) < 0.85
    cats = rng.integers(-1, 4, size=(n_b, m))
    kernel = similarity_kernel(vecs, cats, category_weight, spare=spare, shrink=shrink,
                               category_rows=category_rows)  # fmt: skip
    return kernel, rel, allowed, cats


def assert_same_trace(got: Any, want: Any) -> None:
    assert got.picks.tolist() == want.picks.tolist()
    assert got.clean.tolist() == want.clean.tolist()
    # Bit for bit, inf included (a list without a DPP pick).
    assert got.least_gain.tobytes() == want.least_gain.tobytes()


thetas = st.one_of(
    st.sampled_from([0.0, 1.0, 0.15, 0.9845, 1e-4]),
    st.floats(0.0, 1.0),
    st.floats(1e-5, 0.02),  # small enough for the log form when relevance is spread out
)


@settings(max_examples=250, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_b=st.sampled_from([1, 1, 3]),
    m=st.integers(1, 30),
    dim=st.integers(1, 8),
    k=st.integers(0, 24),
    theta=thetas,
    window=st.sampled_from([None, None, None, 1, 2, 3, 5]),
    cap=st.sampled_from([None, None, 1, 2]),
    category_weight=st.sampled_from([0.0, 0.5, 1.0]),
    shrink=st.sampled_from([1.0, 1.0, 0.25, 1 / 19]),
    category_rows=st.sampled_from([None, False, True]),
    wider=st.booleans(),
)
def test_compiled_dpp_is_the_reference_bit_for_bit(
    seed: int,
    n_b: int,
    m: int,
    dim: int,
    k: int,
    theta: float,
    window: int | None,
    cap: int | None,
    category_weight: float,
    shrink: float,
    category_rows: bool | None,
    wider: bool,
) -> None:
    kernel, rel, allowed, cats = make_case(
        seed, n_b, m, dim, category_weight, shrink, max(k - 1, 0), category_rows
    )
    base = None
    if wider:  # gains on the scale of a pool with more, and more relevant, candidates
        wide_rel = np.concatenate([rel, rel - 1.0], axis=1)
        wide = gain_base(wide_rel + 0.5, np.concatenate([allowed, allowed], axis=1), theta)
        base = (wide[0][:, :m], wide[1])
    caps = CategoryCap(cats, cap), CategoryCap(cats, cap)
    got = dpp_greedy_traced(kernel, rel, allowed, k, theta, cap=caps[0], window=window,
                            base=base)  # fmt: skip
    want = dpp_greedy_reference(kernel, rel, allowed, k, theta, cap=caps[1], window=window,
                                base=base)  # fmt: skip
    assert_same_trace(got, want)
    if cap is not None:
        assert caps[0].same is not None and caps[1].same is not None
        assert caps[0].same.tolist() == caps[1].same.tolist()


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_b=st.sampled_from([1, 3]),
    m=st.integers(1, 30),
    dim=st.integers(1, 8),
    k=st.integers(0, 24),
    lam=st.one_of(st.sampled_from([0.0, 0.7, 1.0]), st.floats(0.0, 1.0)),
    cap=st.sampled_from([None, None, 1, 2]),
    category_weight=st.sampled_from([0.0, 0.5, 1.0]),
    category_rows=st.sampled_from([None, False, True]),
)
def test_compiled_mmr_is_the_reference(
    seed: int,
    n_b: int,
    m: int,
    dim: int,
    k: int,
    lam: float,
    cap: int | None,
    category_weight: float,
    category_rows: bool | None,
) -> None:
    kernel, rel, allowed, cats = make_case(seed, n_b, m, dim, category_weight, 1.0, 0,
                                           category_rows)  # fmt: skip
    caps = CategoryCap(cats, cap), CategoryCap(cats, cap)
    got = mmr_greedy(kernel, rel, allowed, k, lam, cap=caps[0])
    want = mmr_greedy_reference(kernel, rel, allowed, k, lam, cap=caps[1])
    assert got.tolist() == want.tolist()
    if cap is not None:
        assert caps[0].same is not None and caps[1].same is not None
        assert caps[0].same.tolist() == caps[1].same.tolist()


def test_every_call_shape_uses_the_one_compiled_specialisation() -> None:
    """So warm_up's one small call compiles everything a worker will ever run."""
    from stream_rec.rerank.dpp_kernels import _greedy_lists
    from stream_rec.rerank.mmr_kernels import _mmr_lists

    rng = np.random.default_rng(5)
    for n_b, m, window, cap in [(1, 40, None, None), (40, 240, None, 2), (3, 50, 4, 1)]:
        rel = rng.normal(size=(n_b, m)).astype(np.float32)
        vecs = rng.normal(size=(n_b, m, 6)).astype(np.float32)
        cats = rng.integers(-1, 5, size=(n_b, m))
        keys = np.arange(n_b * m).reshape(n_b, m)
        for policy in ("dpp:0.15", "dpp:0.001", "mmr:0.7"):
            rerank_batch(
                rel,
                vecs,
                keys,
                20,
                RerankPolicy.parse(policy),
                cats,
                max_per_category=cap,
                window=window if "dpp" in policy else None,
            )
    assert len(_greedy_lists.signatures) == 1
    assert len(_mmr_lists.signatures) == 1


def test_no_writable_cache_directory_still_reranks(tmp_path: Path) -> None:
    """A read-only install (and no writable home): numba finds nowhere to cache and compiles
    in memory instead of failing at import."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {
        **os.environ,
        "NUMBA_CACHE_DIR": str(blocker / "cache"),  # cannot be created
        "NUMBA_CACHE_LOCATOR_CLASSES": "UserProvidedCacheLocator",
    }  # only that one
    code = ("from stream_rec.rerank import warm_up, rerank, RerankPolicy\n"
            "warm_up()\n"
            "got = rerank([3.0, 2.9, 1.0], [[1, 0], [1, 0], [0, 1]], [1, 2, 3], 2,\n"
            "             RerankPolicy.parse('dpp:0.5'))\n"
            "assert got.tolist() == [0, 2], got\n")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
