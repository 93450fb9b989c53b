"""MMR's greedy loop, compiled with numba: one list after another (see dpp_kernels for why).

:mod:`stream_rec.rerank.mmr_reference` is the readable specification; the loops here do the
same floating-point operations in the same order, so both give identical lists. Imported by
:mod:`stream_rec.rerank.mmr` on first use only (numba is slow to import).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from stream_rec.rerank.dpp_kernels import compiled


def mmr_lists(
    feats_t: NDArray[np.float64],
    fix: NDArray[np.float64],
    codes: NDArray[np.int64] | None,
    category_weight: float,
    relevance: NDArray[np.float64],
    allowed: NDArray[np.bool_],
    k: int,
    lam: float,
    cap_codes: NDArray[np.int64] | None,
    cap_counts: NDArray[np.int64] | None,
    cap: int,
) -> NDArray[np.int64]:
    """(B, k) picks, -1 padded, for the kernel's (B, F, M) ``feats_t`` and (B, M) ``fix``.

    ``codes`` None: no category term. ``cap_counts`` is updated in place (None, ``cap`` 0: no
    cap). Every array is passed on C-contiguous with one dtype, so numba compiles one
    specialisation (:func:`stream_rec.rerank.dpp.warm_up` compiles it).
    """
    n_b = feats_t.shape[0]
    empty = np.zeros((n_b, 0), dtype=np.int64)
    codes = empty if codes is None else np.ascontiguousarray(codes, dtype=np.int64)
    cap_codes = empty if cap_codes is None else np.ascontiguousarray(cap_codes, dtype=np.int64)
    if cap_counts is None or cap <= 0:
        cap_counts, cap = empty, 0
    elif not (cap_counts.flags.c_contiguous and cap_counts.dtype == np.int64):
        raise ValueError("cap_counts must be C-contiguous int64 (it is updated in place)")
    picks = np.full((n_b, k), -1, dtype=np.int64)
    _mmr_lists(
        np.ascontiguousarray(feats_t, dtype=np.float64),
        np.ascontiguousarray(fix, dtype=np.float64), codes, float(category_weight),
        np.ascontiguousarray(relevance, dtype=np.float64),
        np.ascontiguousarray(allowed, dtype=np.bool_), int(k), float(lam),
        cap_codes, cap_counts, int(cap), picks,
    )  # fmt: skip
    return picks


@compiled
def _mmr_lists(
    feats_t: NDArray[np.float64],
    fix: NDArray[np.float64],
    codes: NDArray[np.int64],
    category_weight: float,
    relevance: NDArray[np.float64],
    allowed: NDArray[np.bool_],
    k: int,
    lam: float,
    cap_codes: NDArray[np.int64],
    cap_counts: NDArray[np.int64],
    cap: int,
    picks: NDArray[np.int64],
) -> None:
    """Every list in turn (an empty (B, 0) ``codes`` or ``cap_codes``: no category term/cap)."""
    n_b, n_f, n_m = feats_t.shape
    base = np.empty(n_m)
    score = np.empty(n_m)
    max_sim = np.empty(n_m)
    row = np.empty(n_m)
    for b in range(n_b):
        cols, out = feats_t[b], picks[b]
        for m in range(n_m):
            base[m] = lam * relevance[b, m] if allowed[b, m] else -np.inf
            score[m] = relevance[b, m] if allowed[b, m] else -np.inf  # no redundancy yet
            max_sim[m] = -np.inf
        for step in range(k):
            j = 0
            for m in range(1, n_m):  # the first largest score
                if score[m] > score[j]:
                    j = m
            if score[j] == -np.inf:
                break
            out[step] = j
            base[j] = -np.inf
            if cap > 0 and cap_codes[b, j] >= 0:  # CategoryCap.filled_by
                code = cap_codes[b, j]
                for m in range(n_m):
                    if cap_codes[b, m] == code:
                        cap_counts[b, m] += 1
                if cap_counts[b, j] >= cap:
                    for m in range(n_m):
                        if cap_codes[b, m] == code:
                            base[m] = -np.inf
            if step == k - 1:
                break
            # Row j of S, summed feature by feature in the reference's order.
            row[:] = 0.0
            for f in range(n_f):
                weight = cols[f, j]
                for m in range(n_m):
                    row[m] += cols[f, m] * weight
            if codes.shape[1] and codes[b, j] >= 0:
                for m in range(n_m):
                    if codes[b, m] == codes[b, j]:
                        row[m] += category_weight
            row[j] += fix[b, j]
            for m in range(n_m):
                max_sim[m] = max(max_sim[m], row[m])
                score[m] = max_sim[m] * (lam - 1.0) + base[m]
