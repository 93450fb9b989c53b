"""Compile the re-rankers' loops before the first real request needs them."""

from __future__ import annotations

import numpy as np

from stream_rec.rerank.batch import rerank_batch
from stream_rec.rerank.policy import RerankPolicy


def warm_up() -> None:
    """Re-rank two tiny lists with the DPP and with MMR, so numba compiles their loops now.

    Compiling takes seconds (loading them from numba's disk cache, a fraction of one); a
    long-running process such as the worker calls this at start-up so that its first batch
    does not wait for it. Every call of a re-ranker uses the one compiled specialisation of
    its loop (see :func:`stream_rec.rerank.dpp_kernels.greedy_lists`), so one small call
    each covers them all.
    """
    rel = np.array([[2.0, 1.0, 0.5, 0.0], [1.0, 0.9, 0.8, 0.7]])
    vecs = np.array([[[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [0.6, 0.8]]] * 2)
    cats = np.array([[0, 0, 1, -1], [1, -1, 1, 0]])
    keys = np.arange(8).reshape(2, 4)
    for policy in ("dpp:0.5", "mmr:0.5"):
        rerank_batch(rel, vecs, keys, 3, RerankPolicy.parse(policy), cats, max_per_category=1)
