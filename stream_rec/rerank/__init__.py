"""Diversity-aware re-ranking: fast greedy DPP, MMR and business rules, in numpy and numba.

Used by the online worker (one list per event, or a batch) and by offline evaluation, so both
re-rank the same way. No I/O and no imports beyond numpy, and numba for the greedy loops
(compiled on first use: a long-running process calls :func:`warm_up` at start-up).

>>> import numpy as np
>>> rel = np.array([[3.0, 2.9, 1.0]], dtype=np.float32)
>>> vecs = np.array([[[1, 0], [1, 0], [0, 1]]], dtype=np.float32)
>>> rerank_batch(rel, vecs, np.array([[1, 2, 3]]), 2, RerankPolicy.parse("dpp:0.5")).tolist()
[[0, 2]]
"""

from stream_rec.rerank.batch import rerank, rerank_batch
from stream_rec.rerank.dpp import DEFAULT_EPS, dpp_greedy
from stream_rec.rerank.mmr import mmr_greedy
from stream_rec.rerank.naive import naive_dpp_greedy
from stream_rec.rerank.policy import (
    DEFAULT_DPP_THETA,
    DEFAULT_MMR_LAMBDA,
    METHODS,
    RerankPolicy,
)
from stream_rec.rerank.rules import (
    BusinessRules,
    CategoryCap,
    blocked_mask,
    eligible_mask,
    stable_item_keys,
)
from stream_rec.rerank.similarity import (
    DEFAULT_CATEGORY_WEIGHT,
    SimilarityKernel,
    similarity_kernel,
    standardise_relevance,
)
from stream_rec.rerank.warm import warm_up

__all__ = [
    "DEFAULT_CATEGORY_WEIGHT",
    "DEFAULT_DPP_THETA",
    "DEFAULT_EPS",
    "DEFAULT_MMR_LAMBDA",
    "METHODS",
    "BusinessRules",
    "CategoryCap",
    "RerankPolicy",
    "SimilarityKernel",
    "blocked_mask",
    "dpp_greedy",
    "eligible_mask",
    "mmr_greedy",
    "naive_dpp_greedy",
    "rerank",
    "rerank_batch",
    "similarity_kernel",
    "stable_item_keys",
    "standardise_relevance",
    "warm_up",
]
