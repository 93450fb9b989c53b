"""MMR's greedy one list at a time in plain numpy: the readable specification.

:mod:`stream_rec.rerank.mmr_kernels` runs the same steps compiled, with the same
floating-point operations in the same order (row j of S summed feature by feature, not by a
BLAS product), so tests/unit/test_dpp_compiled.py can require identical lists. See
:mod:`stream_rec.rerank.mmr` for the method.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from stream_rec.rerank.rules import CategoryCap
from stream_rec.rerank.similarity import SimilarityKernel


def mmr_greedy_reference(
    kernel: SimilarityKernel,
    relevance: NDArray[np.float64],
    allowed: NDArray[np.bool_],
    k: int,
    lam: float,
    *,
    cap: CategoryCap | None = None,
) -> NDArray[np.int64]:
    """What :func:`stream_rec.rerank.mmr.mmr_greedy` returns, list by list."""
    n_b, n_m = relevance.shape
    cap = cap or CategoryCap(None, None)
    out = np.full((n_b, max(k, 0)), -1, dtype=np.int64)
    if n_m == 0:
        return out
    for b in range(n_b):
        out[b] = mmr_one_reference(kernel, b, relevance[b], allowed[b], k, lam, cap)
    return out


def mmr_one_reference(
    kernel: SimilarityKernel,
    b: int,
    relevance: NDArray[np.float64],
    allowed: NDArray[np.bool_],
    k: int,
    lam: float,
    cap: CategoryCap,
) -> NDArray[np.int64]:
    """List ``b``: (k,) positions, -1 padded."""
    out = np.full(k, -1, dtype=np.int64)
    base = np.where(allowed, lam * relevance, -np.inf)
    score = np.where(allowed, relevance, -np.inf)  # nothing chosen yet: no redundancy term
    cols, fix = kernel.feats_t[b], kernel.fix[b]
    codes = kernel.codes[b] if kernel.has_categories and kernel.codes is not None else None
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
        row = np.zeros(relevance.shape[0])
        for feature in cols:  # in order: see the module docstring
            row += feature * feature[j]
        if codes is not None and codes[j] >= 0:
            row[codes == codes[j]] += kernel.category_weight
        row[j] += fix[j]
        max_sim = np.maximum(max_sim, row)
        score = max_sim * (lam - 1.0) + base
    return out
