"""The DPP greedy the slow way, recomputing log-determinants at every step.

The reference the fast greedy is tested against, and the baseline ``bench-rerank`` times: for
each candidate i it evaluates ``log det S_{W + i} - log det S_W`` from scratch (W = the chosen
items the pick is conditioned on), O(M K^3) per step instead of the fast greedy's O(M (D + K)).
Same objective, stopping rule, fill order and tie-breaking as :mod:`stream_rec.rerank.dpp`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from stream_rec.rerank.dpp import DEFAULT_EPS
from stream_rec.rerank.rules import CategoryCap


def naive_dpp_greedy(
    sim: NDArray[np.float64],
    relevance: NDArray[np.float64],
    allowed: NDArray[np.bool_],
    k: int,
    theta: float,
    *,
    cap: CategoryCap | None = None,
    list_index: int = 0,
    window: int | None = None,
    eps: float = DEFAULT_EPS,
) -> NDArray[np.int64]:
    """One list: ``sim`` (M, M) PSD, ``relevance`` (M,) standardised and in canonical order.

    Returns (k,) int64 positions, -1 padded; ``cap`` is consulted as list ``list_index``.
    """
    out = np.full(k, -1, dtype=np.int64)
    allowed = allowed.copy()
    chosen: list[int] = []
    limit = k if window is None else window
    fill = theta == 0.0 or min(limit, k) <= 1
    for step in range(k):
        cand = np.flatnonzero(allowed)
        if cand.size == 0:
            break
        best = 0
        if not fill:
            ctx = np.array(chosen[max(0, len(chosen) - limit + 1) :], dtype=np.int64)
            logdet_ctx = np.linalg.slogdet(sim[np.ix_(ctx, ctx)])[1] if ctx.size else 0.0
            idx = np.concatenate([np.tile(ctx, (cand.size, 1)), cand[:, None]], axis=1)
            sign, logdet = np.linalg.slogdet(sim[idx[:, :, None], idx[:, None, :]])
            logd2 = np.where(sign > 0, logdet - logdet_ctx, -np.inf)
            spanned = logd2 < np.log(eps)
            gains = np.where(spanned, -np.inf, (1.0 - theta) * relevance[cand] + theta * logd2)
            best = int(np.argmax(gains))
            fill = bool(spanned[best])
        pick = int(cand[0]) if fill else int(cand[best])
        out[step] = pick
        chosen.append(pick)
        allowed[pick] = False
        if cap is not None:
            full = cap.filled_by(list_index, pick)
            if full is not None:
                allowed &= ~full
    return out
