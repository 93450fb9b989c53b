"""Maximal marginal relevance (Carbonell & Goldstein, 1998).

Each step takes the candidate with the largest

    lambda * relevance_i - (1 - lambda) * max_{j chosen} S_ij,

with relevance standardised per list and S the same blended similarity the DPP uses
(:mod:`stream_rec.rerank.similarity`), so the two methods differ only in how they count
redundancy: MMR looks at the single most similar chosen item, the DPP at the volume the whole
list spans. lambda = 1 is the relevance order. O(K M D) per list; ties go to the earlier
position of the canonical order. The loop runs compiled (:mod:`stream_rec.rerank.mmr_kernels`);
:mod:`stream_rec.rerank.mmr_reference` is the same in plain numpy, its readable specification.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

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
    ``cap``'s counts are updated in place, as :meth:`CategoryCap.filled_by` does.
    """
    n_b, n_m = relevance.shape
    cap = cap or CategoryCap(None, None)
    if k <= 0 or n_m == 0:
        return np.full((n_b, max(k, 0)), -1, dtype=np.int64)
    # Imported here, not at the top: numba costs ~0.3 s to import (see dpp_kernels).
    from stream_rec.rerank.mmr_kernels import mmr_lists

    has_codes = kernel.has_categories and kernel.codes is not None
    return mmr_lists(
        kernel.feats_t, kernel.fix, kernel.codes if has_codes else None,
        kernel.category_weight, relevance, allowed, k, lam,
        cap.codes, cap.same, cap.cap if cap.active else 0,
    )  # fmt: skip
