"""Candidates while no model is served: trending items, boosted in the shopper's favourite
categories, and the shopper's own recent items, scored by popularity."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from stream_rec.core.trending import Trending
from stream_rec.serving.catalog_view import CatalogView
from stream_rec.serving.lists import (
    REASON_CATEGORY,
    REASON_RECENT,
    REASON_TRENDING,
    RecRequest,
)


def fallback_candidates(requests: Sequence[RecRequest], trending: Trending,
                        catalog: CatalogView, pool: int
                        ) -> tuple[list[list[str]], list[list[str]], NDArray[np.float64]]:
    """Per request: candidate ids and their reasons (rows padded to one width), and a
    (B, M) score matrix (-inf where a row has no candidate)."""
    popular = trending.top(pool)
    popularity = dict(popular)
    candidate_ids: list[list[str]] = []
    reasons: list[list[str]] = []
    rows: list[list[float]] = []
    for req in requests:
        liked = dict(req.state.category_affinity)
        top_affinity = max(liked.values(), default=1.0) or 1.0
        scored: dict[str, tuple[float, str]] = {}
        for item, pop in popular:
            boost = liked.get(catalog.category(item) or "", 0.0) / top_affinity
            reason = REASON_CATEGORY if boost > 0 else REASON_TRENDING
            scored[item] = (pop + boost, reason)
        for entry in reversed(req.state.history):
            if entry.item_id not in scored:
                scored[entry.item_id] = (popularity.get(entry.item_id, 0.0) + 0.5,
                                         REASON_RECENT)
        ids = list(scored)[:pool] or [""]
        candidate_ids.append(ids)
        reasons.append([scored[i][1] if i in scored else "" for i in ids])
        rows.append([scored[i][0] if i in scored else -np.inf for i in ids])
    width = max(len(c) for c in candidate_ids)
    scores = np.full((len(requests), width), -np.inf)
    padded = []
    for row, ids in enumerate(candidate_ids):
        scores[row, : len(ids)] = rows[row]
        padded.append(ids + [ids[0]] * (width - len(ids)))
        reasons[row] += [""] * (width - len(ids))
    return padded, reasons, scores
