"""The re-ranking entry points: many lists in one call, or one list.

Both take the model's scores for a pool of candidates (e.g. the top 200) and return the
positions, within that pool, of the list to show (e.g. 20 items), chosen by the policy's
method with the business rules applied during selection: ineligible candidates are never
picked and a per-category cap is respected pick by pick.

Determinism: candidates are first put in a canonical order (relevance descending, then item key
ascending) and every greedy step breaks exact ties by that order, so equal inputs give equal
lists whatever order the candidates came in (as long as item keys are distinct).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from stream_rec.rerank.dpp import dpp_greedy, dpp_shrinkage, log_det_weight
from stream_rec.rerank.mmr import mmr_greedy
from stream_rec.rerank.policy import RerankPolicy
from stream_rec.rerank.pool_vectors import PoolVectors
from stream_rec.rerank.prefix import dpp_prefix_first, first_width
from stream_rec.rerank.rules import CategoryCap
from stream_rec.rerank.similarity import (
    DEFAULT_CATEGORY_WEIGHT,
    similarity_kernel,
    standardise_relevance,
)

#: Lists prepared (similarity rows, standardised relevance) and re-ranked per chunk: few enough
#: that their working rows (~190 KB a list) stay in the L3 cache. With the compiled greedy,
#: 16, 32 and 64 measured the same and 128 or more slower (bench-core pools).
CHUNK_LISTS = 32


def rerank_batch(
    relevance: NDArray[np.floating],
    item_vectors: NDArray[np.floating] | PoolVectors,
    item_keys: NDArray[np.integer],
    k: int,
    policy: RerankPolicy,
    categories: NDArray[np.integer] | None = None,
    eligible: NDArray[np.bool_] | None = None,
    max_per_category: int | None = None,
    category_weight: float = DEFAULT_CATEGORY_WEIGHT,
    *,
    window: int | None = None,
) -> NDArray[np.int64]:
    """Re-rank B candidate pools at once; returns (B, k) int64 positions into M, -1 padded.

    Args:
        relevance: (B, M) model scores, any scale (standardised per list inside); a
            non-finite score makes that candidate ineligible.
        item_vectors: (B, M, D) item embeddings, L2-normalised (re-normalised inside), or
            a ``PoolVectors`` that gathers only the ones the policy reads.
        item_keys: (B, M) int64 tie-break keys, e.g. item ids (see ``stable_item_keys``).
        k: list length to return (items).
        policy: method and parameter, see :class:`RerankPolicy`.
        categories: (B, M) int64 category codes, -1 = unknown; None = no categories.
        eligible: (B, M) bool from the business rules; None = all eligible.
        max_per_category: at most this many items of one known category per list.
        category_weight: weight w of category equality in the similarity blend, in [0, 1].
        window: DPP only: diversity counted over any ``window`` consecutive items (Chen et
            al.'s sliding window, for long lists); None = the whole list.

    Each row has min(k, reachable) entries before its -1 padding, where reachable is the
    number of eligible candidates that the category cap lets in.
    """
    rel = np.asarray(relevance, dtype=np.float64)
    if rel.ndim != 2:
        raise ValueError(f"relevance must be (B, M), got shape {rel.shape}")
    n_b, n_m = rel.shape
    vecs = item_vectors if isinstance(item_vectors, PoolVectors) else np.asarray(item_vectors)
    if vecs.ndim != 3 or vecs.shape[:2] != (n_b, n_m):
        raise ValueError(f"item_vectors must be ({n_b}, {n_m}, D), got shape {vecs.shape}")
    keys = np.asarray(item_keys, dtype=np.int64)
    if keys.shape != (n_b, n_m):
        raise ValueError(f"item_keys must be ({n_b}, {n_m}), got shape {keys.shape}")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if window is not None and window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    ok = np.isfinite(rel)
    if eligible is not None:
        ok &= np.asarray(eligible, dtype=bool).reshape(n_b, n_m)
    cats = None if categories is None else np.asarray(categories, np.int64).reshape(n_b, n_m)

    order = np.lexsort((keys, -np.where(ok, rel, -np.inf)), axis=1)
    rows = np.arange(n_b)[:, None]
    rel_s, ok_s = rel[rows, order], ok[rows, order]
    cats_s = None if cats is None else cats[rows, order]
    picked = np.full((n_b, k), -1, dtype=np.int64)
    if policy.is_identity:
        picked = _relevance_order(ok_s, k, CategoryCap(cats_s, max_per_category))
    else:
        z = standardise_relevance(rel_s, ok_s)
        dpp = policy.method == "dpp"
        spare = max(k - 1, 0) if dpp else 0  # the DPP's Cholesky rows
        shrink = dpp_shrinkage(k, window) if dpp else 1.0  # MMR compares S itself
        theta = log_det_weight(policy.param, shrink) if dpp else policy.param
        prefix = dpp and window is None
        width = first_width(n_m, k, theta) if prefix else n_m
        # One buffer for every chunk: a fresh few MB per chunk would be paged in each time.
        shape = (min(n_b, CHUNK_LISTS), vecs.shape[2] + spare, width)
        buf = np.empty(shape) if n_b > 1 else None
        for lo in range(0, n_b, CHUNK_LISTS):
            part = slice(lo, lo + CHUNK_LISTS)
            part_cats = None if cats_s is None else cats_s[part]
            if prefix:
                picked[part] = dpp_prefix_first(
                    vecs[part], order[part], part_cats, z[part], ok_s[part], k, theta,
                    category_weight=category_weight, max_per_category=max_per_category,
                    out=buf, shrink=shrink,
                )  # fmt: skip
                continue
            kernel = similarity_kernel(
                vecs[rows[part], order[part]], part_cats, category_weight, spare=spare, out=buf,
                shrink=shrink,
            )  # fmt: skip
            cap = CategoryCap(part_cats, max_per_category)
            if dpp:
                picked[part] = dpp_greedy(
                    kernel, z[part], ok_s[part], k, theta, cap=cap, window=window
                )
            else:
                picked[part] = mmr_greedy(kernel, z[part], ok_s[part], k, theta, cap=cap)
    back = order[rows, np.maximum(picked, 0)]
    return np.where(picked >= 0, back, -1).astype(np.int64, copy=False)


def rerank(
    relevance: NDArray[np.floating],
    item_vectors: NDArray[np.floating],
    item_keys: NDArray[np.integer],
    k: int,
    policy: RerankPolicy,
    categories: NDArray[np.integer] | None = None,
    eligible: NDArray[np.bool_] | None = None,
    max_per_category: int | None = None,
    category_weight: float = DEFAULT_CATEGORY_WEIGHT,
    *,
    window: int | None = None,
) -> NDArray[np.int64]:
    """Re-rank one pool: (M,), (M, D), (M,) inputs; returns the chosen positions, best first.

    Same rules as :func:`rerank_batch`; the result has min(k, reachable) entries, no padding.
    """
    picked = rerank_batch(
        np.asarray(relevance)[None],
        np.asarray(item_vectors)[None],
        np.asarray(item_keys)[None],
        k,
        policy,
        None if categories is None else np.asarray(categories)[None],
        None if eligible is None else np.asarray(eligible)[None],
        max_per_category,
        category_weight,
        window=window,
    )[0]
    return picked[picked >= 0]


def _relevance_order(allowed: NDArray[np.bool_], k: int, cap: CategoryCap) -> NDArray[np.int64]:
    """The first k allowed positions of the canonical order, respecting the category cap."""
    n_b, n_m = allowed.shape
    if not cap.active:
        first = np.argsort(~allowed, axis=1, kind="stable")[:, :k]
        hit = np.take_along_axis(allowed, first, axis=1)
        out = np.full((n_b, k), -1, dtype=np.int64)
        out[:, : first.shape[1]] = np.where(hit, first, -1)
        return out
    allowed = allowed.copy()
    out = np.full((n_b, k), -1, dtype=np.int64)
    rows = np.arange(n_b)
    for step in range(k):
        pick = allowed.argmax(axis=1)
        alive = allowed[rows, pick]
        if not alive.any():
            break
        out[:, step] = np.where(alive, pick, -1)
        allowed[rows, pick] = False
        cap.after_pick(out[:, step], allowed)
    return out
