"""Maximal marginal relevance (Carbonell & Goldstein, 1998).

Each step takes the candidate with the largest

    lambda * relevance_i - (1 - lambda) * max_{j chosen} S_ij,

with relevance standardised per list and S the same blended similarity the DPP uses
(:mod:`stream_rec.rerank.similarity`), so the two methods differ only in how they count
redundancy: MMR looks at the single most similar chosen item, the DPP at the volume the whole
list spans. lambda = 1 is the relevance order. O(K M D) per list as vector operations over the
M candidates; ties go to the earlier position of the canonical order.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from stream_rec.rerank.dpp import LOOP_MAX_LISTS
from stream_rec.rerank.rules import CategoryCap
from stream_rec.rerank.similarity import SimilarityKernel


def mmr_greedy(
    kernel: SimilarityKernel,
    relevance: NDArray[np.float64],
    allowed: NDArray[np.bool_],
    k: int,
    lam: float,
    *,
    cap: CategoryCap | None = None,
) -> NDArray[np.int64]:
    """Pick up to ``k`` positions per list, (B, k) int64, -1 where a list ran out.

    Arguments as for :func:`stream_rec.rerank.dpp.dpp_greedy`; ``lam`` is lambda in [0, 1].
    """
    n_b, n_m = relevance.shape
    cap = cap or CategoryCap(None, None)
    if k <= 0 or n_m == 0:
        return np.full((n_b, max(k, 0)), -1, dtype=np.int64)
    if n_b <= LOOP_MAX_LISTS:
        return np.stack(
            [_mmr_one(kernel, b, relevance[b], allowed[b], k, lam, cap) for b in range(n_b)]
        )
    return _mmr_many(kernel, relevance, allowed, k, lam, cap)


def _mmr_one(
    kernel: SimilarityKernel,
    b: int,
    relevance: NDArray[np.float64],
    allowed: NDArray[np.bool_],
    k: int,
    lam: float,
    cap: CategoryCap,
) -> NDArray[np.int64]:
    """One list, with preallocated buffers."""
    out = np.full(k, -1, dtype=np.int64)
    base = np.where(allowed, lam * relevance, -np.inf)
    score = np.where(allowed, relevance, -np.inf)  # nothing chosen yet: no redundancy term
    cols, fix = kernel.feats_t[b], kernel.fix[b]
    codes = kernel.codes[b] if kernel.has_categories and kernel.codes is not None else None
    same = np.empty(relevance.shape[0], dtype=bool)
    row = np.empty(relevance.shape[0])
    max_sim = np.full(relevance.shape[0], -np.inf)
    for step in range(k):
        j = int(score.argmax())
        if score[j] == -np.inf:
            break
        out[step] = j
        base[j] = -np.inf
        full = cap.filled_by(b, j)
        if full is not None:
            base[full] = -np.inf
        if step == k - 1:
            break
        np.dot(cols.T, cols[:, j], out=row)
        if codes is not None and codes[j] >= 0:
            np.equal(codes, codes[j], out=same)
            np.add(row, kernel.category_weight, out=row, where=same)
        row[j] += fix[j]
        np.maximum(max_sim, row, out=max_sim)
        np.multiply(max_sim, lam - 1.0, out=score)
        score += base
    return out


def _mmr_many(
    kernel: SimilarityKernel,
    relevance: NDArray[np.float64],
    allowed: NDArray[np.bool_],
    k: int,
    lam: float,
    cap: CategoryCap,
) -> NDArray[np.int64]:
    """All B lists in lock-step."""
    n_b, n_m = relevance.shape
    cols, fix = kernel.feats_t, kernel.fix
    codes = kernel.codes if kernel.has_categories else None
    out = np.full((n_b, k), -1, dtype=np.int64)
    allowed = allowed.copy()
    rows_b = np.arange(n_b)
    # Blocked candidates carry a base of -inf, so the argmax needs no mask.
    base = np.where(allowed, lam * relevance, -np.inf)
    score = np.where(allowed, relevance, -np.inf)
    max_sim = np.full((n_b, n_m), -np.inf)
    for step in range(k):
        pick = score.argmax(axis=1)
        alive = allowed[rows_b, pick]
        if not alive.any():
            break
        out[:, step] = np.where(alive, pick, -1)
        allowed[rows_b, pick] = False
        base[rows_b, pick] = -np.inf
        if cap.active:
            cap.after_pick(out[:, step], allowed)
            np.copyto(base, -np.inf, where=~allowed)
        if step == k - 1:
            break
        row = np.matmul(cols[rows_b, :, pick][:, None, :], cols)[:, 0]
        if codes is not None:
            code = codes[rows_b, pick]
            row += (codes == code[:, None]) * np.where(code >= 0, kernel.category_weight, 0.0)[
                :, None
            ]
        row[rows_b, pick] += fix[rows_b, pick]
        np.maximum(max_sim, row, out=max_sim)
        np.multiply(max_sim, lam - 1.0, out=score)
        score += base
    return out
