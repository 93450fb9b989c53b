"""Offline ranking metrics for next-item prediction and list diversity (pure numpy).

Lists are ``(B, K)`` int64 arrays of item positions, best first, ``-1`` where a list is shorter.
Units: ``P@K``, ``MRR@K``, ``NDCG@K`` and ``catalog_coverage@K`` are percentages (as in the
published session-based tables); ``ILD@K`` is a share in 0..1; ``categories@K`` a count.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

IntArray = NDArray[np.int64]


def target_ranks(lists: IntArray, targets: IntArray) -> IntArray:
    """1-based rank of each target in its list, 0 when it is not there (or the target is -1)."""
    lists = np.asarray(lists, dtype=np.int64)
    targets = np.asarray(targets, dtype=np.int64)
    hits = (lists == targets[:, None]) & (targets[:, None] >= 0)
    found = hits.any(axis=1)
    return np.where(found, hits.argmax(axis=1) + 1, 0).astype(np.int64)


def precision_at_k(ranks: IntArray) -> float:
    """Share of cases whose target is in the list, in % (a.k.a. HR@K / Recall@K)."""
    ranks = np.asarray(ranks)
    return float(100.0 * (ranks > 0).mean()) if ranks.size else 0.0


def mrr_at_k(ranks: IntArray) -> float:
    """Mean reciprocal rank of the target, 0 for a miss, in %."""
    ranks = np.asarray(ranks)
    if not ranks.size:
        return 0.0
    return float(100.0 * np.where(ranks > 0, 1.0 / np.maximum(ranks, 1), 0.0).mean())


def ndcg_at_k(ranks: IntArray) -> float:
    """NDCG with one relevant item per case (ideal DCG = 1), in %."""
    ranks = np.asarray(ranks)
    if not ranks.size:
        return 0.0
    return float(100.0 * np.where(ranks > 0, 1.0 / np.log2(np.maximum(ranks, 1) + 1), 0.0).mean())


def catalog_coverage(lists: IntArray, catalog_size: int) -> float:
    """Share of the catalog that appears in at least one list, in %."""
    items = np.unique(np.asarray(lists)[np.asarray(lists) >= 0])
    return float(100.0 * items.size / catalog_size) if catalog_size > 0 else 0.0


def intra_list_diversity(list_categories: IntArray) -> float:
    """Mean over lists of the share of item pairs whose categories differ.

    ``list_categories`` is ``(B, K)``: the category of each listed item, -1 when unknown or
    the slot is empty. Pairs with an unknown side are not counted; lists with no countable
    pair are left out of the mean.
    """
    cats = np.asarray(list_categories, dtype=np.int64)
    if cats.ndim != 2 or cats.shape[1] < 2:
        return 0.0
    known = cats >= 0
    differ = cats[:, :, None] != cats[:, None, :]
    both = known[:, :, None] & known[:, None, :]
    upper = np.triu(np.ones((cats.shape[1], cats.shape[1]), dtype=bool), k=1)
    pairs = (both & upper).sum(axis=(1, 2))
    diff = (differ & both & upper).sum(axis=(1, 2))
    keep = pairs > 0
    return float((diff[keep] / pairs[keep]).mean()) if keep.any() else 0.0


def distinct_categories(list_categories: IntArray) -> float:
    """Mean number of distinct known categories per list."""
    cats = np.asarray(list_categories, dtype=np.int64)
    if not cats.size:
        return 0.0
    ordered = np.sort(cats, axis=1)
    new = np.ones_like(ordered, dtype=bool)
    new[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    return float((new & (ordered >= 0)).sum(axis=1).mean())


def relevance_metrics(lists: IntArray, targets: IntArray, k: int) -> dict[str, float]:
    """``P@K``, ``MRR@K``, ``NDCG@K`` of the first ``k`` slots of each list."""
    ranks = target_ranks(np.asarray(lists)[:, :k], targets)
    return {f"P@{k}": precision_at_k(ranks), f"MRR@{k}": mrr_at_k(ranks),
            f"NDCG@{k}": ndcg_at_k(ranks)}
