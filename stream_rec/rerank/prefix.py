"""The DPP on the most relevant candidates first, kept wherever a bound proves it exact.

A candidate's gain is q^2 d^2 (or, in log form, (1 - theta) relevance + theta log d^2), and
d^2 <= 1, so its gain never exceeds its base q^2 (resp. (1 - theta) relevance). Run the greedy
on the first P candidates of the canonical order only; if every pick of a list was a plain
argmax (nothing spanned, no fill) made at a gain above the largest base among the candidates
left out, none of those could have won any step, and the list is exactly what the greedy over
the whole pool picks (ties go to earlier positions, and every left-out one comes later).
Lists that fail the test are re-run over the whole pool.

In pools like the worker's (bench-rerank's: 200 candidates, 20 picks, the default theta 0.15)
the picks come from the first ~25 positions (~35 at theta 0.4 before the kernel was shrunk),
so with P = 64 the kernel and every greedy step touch a third of the pool.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from stream_rec.rerank.dpp import DEFAULT_EPS, dpp_greedy_traced, gain_base
from stream_rec.rerank.pool_vectors import PoolVectors
from stream_rec.rerank.rules import CategoryCap
from stream_rec.rerank.similarity import similarity_kernel

#: Candidates (canonical order) the DPP tries first; pools under 1.5x this run whole.
PREFIX = 64


def first_width(n_m: int, k: int, theta: float, prefix: int = PREFIX) -> int:
    """How many candidates of an M-candidate pool the first run covers."""
    return n_m if n_m < prefix * 3 // 2 or k <= 1 or theta == 0.0 else prefix


def dpp_prefix_first(
    vectors: NDArray[np.floating] | PoolVectors,
    order: NDArray[np.intp],
    categories: NDArray[np.int64] | None,
    relevance: NDArray[np.float64],
    allowed: NDArray[np.bool_],
    k: int,
    theta: float,
    *,
    category_weight: float,
    max_per_category: int | None = None,
    out: NDArray[np.float64] | None = None,
    eps: float = DEFAULT_EPS,
    prefix: int = PREFIX,
    shrink: float = 1.0,
) -> NDArray[np.int64]:
    """Fast greedy DPP (no window) over (B, M) pools; (B, k) positions in canonical order.

    ``vectors`` (B, M, D) are in the caller's order and ``order`` (B, M) is the canonical
    order (only the rows a run needs are gathered); ``categories`` (B, M) or None,
    ``relevance`` (standardised) and ``allowed`` (B, M) are in canonical order. ``out`` is an
    optional kernel buffer for the first run and ``shrink`` the kernel's eps (see
    :func:`similarity_kernel`); ``theta`` is the greedy's weight of log d^2.
    """
    n_b, n_m = relevance.shape
    base = gain_base(relevance, allowed, theta)
    spare = max(k - 1, 0)

    def run(
        rows: NDArray[np.intp] | slice, width: int
    ) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """The greedy over the first ``width`` candidates of some lists (a slice: all)."""
        cats = None if categories is None else categories[rows, :width]
        lists = np.arange(n_b)[rows]
        vecs = vectors[lists[:, None], order[rows, :width]]
        kernel = similarity_kernel(vecs, cats, category_weight, spare=spare, out=out, shrink=shrink)
        trace = dpp_greedy_traced(
            kernel,
            relevance[rows, :width],
            allowed[rows, :width],
            k,
            theta,
            cap=CategoryCap(cats, max_per_category),
            eps=eps,
            base=(base[0][rows, :width], base[1]),
        )
        left_out = np.where(allowed[rows, width:], base[0][rows, width:], -np.inf)
        bound = np.maximum.reduce(left_out, axis=1, initial=-np.inf)
        return trace.picks, trace.clean & (bound < trace.least_gain)

    width = first_width(n_m, k, theta, prefix)
    picks, exact = run(slice(None), width)  # a slice keeps the other inputs as views
    if width < n_m and not exact.all():
        redo = np.flatnonzero(~exact)
        picks[redo] = run(redo, n_m)[0]
    return picks
