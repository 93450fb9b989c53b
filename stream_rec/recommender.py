"""From shopper states to re-ranked recommendation lists, a batch at a time.

No Kafka and no Faust here: the worker's agent hands over the states of the shoppers whose
events arrived in one batch and gets their lists back. With a model, candidates come from
retrieval over the whole catalog (one matmul for the batch), trending items and catalog items
the model has never seen (scored through their attributes); the ONNX model scores them in one
call and the re-ranker picks the list. Without a model, trending and the shopper's own recent
items and favourite categories stand in, and the lists say so (``fallback``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from stream_rec.core.catalog import CatalogItem
from stream_rec.core.state import UserState
from stream_rec.core.trending import Trending
from stream_rec.rerank import (
    BusinessRules,
    RerankPolicy,
    eligible_mask,
    rerank_batch,
    stable_item_keys,
)
from stream_rec.stage_clock import StageClock

History = Sequence[tuple[str, int]]  # (raw item id, event type code), oldest first


class ScoringModel(Protocol):
    """What the recommender needs from a served model (see stream_rec.model.runtime)."""

    version: str
    item_ids: NDArray[Any]  # (N,) raw ids in vocabulary order
    item_vectors: NDArray[np.float32]  # (N, D) L2-normalised, for retrieval and diversity

    def index_of(self, item_ids: Sequence[str]) -> NDArray[np.int64]:
        """Vocabulary index per raw id, -1 for ids the model does not know."""

    def query_vectors(self, histories: Sequence[History]) -> NDArray[np.float32]:
        """(B, D) retrieval queries: ``query @ item_vectors.T`` ranks the catalog."""

    def score(self, histories: Sequence[History], candidates: Sequence[Sequence[str]],
              catalog: Mapping[str, CatalogItem]) -> NDArray[np.float32]:
        """(B, M) fused relevance of each candidate (unknown ids score via attributes)."""


@dataclass(frozen=True)
class RecRequest:
    user_id: str
    event_id: str
    state: UserState
    received_ms: float  # time.time() * 1000 when the event was taken off the topic
    policy: RerankPolicy | None = None  # None: the configured default


@dataclass(frozen=True)
class RecItem:
    item_id: str
    score: float
    reason: str


@dataclass(frozen=True)
class RecList:
    user_id: str
    event_id: str
    items: tuple[RecItem, ...]
    model_version: str | None
    policy: RerankPolicy
    fallback: bool
    generated_at_ms: float
    latency_ms: float

    def to_dict(self) -> dict[str, Any]:
        """The message on the recommendations topic (see docs/integration.md)."""
        return {
            "user_id": self.user_id,
            "event_id": self.event_id,
            "items": [{"item_id": i.item_id, "score": round(i.score, 6), "reason": i.reason}
                      for i in self.items],
            "model_version": self.model_version,
            "policy": self.policy.to_dict(),
            "fallback": self.fallback,
            "generated_at": datetime.fromtimestamp(self.generated_at_ms / 1000, UTC)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "latency_ms": round(self.latency_ms, 3),
        }


REASON_SIMILAR = "similar to your recent items"
REASON_TRENDING = "trending now"
REASON_NEW = "new in the catalog"
REASON_CATEGORY = "popular in a category you like"
REASON_RECENT = "you looked at this recently"


@dataclass
class CatalogView:
    """What the worker knows about the catalog, kept in step with ``storefront.items``."""

    items: dict[str, CatalogItem] = field(default_factory=dict)
    delisted: set[str] = field(default_factory=set)
    out_of_stock: set[str] = field(default_factory=set)
    version: int = 0  # bumped on every change, so derived masks know when to refresh

    def upsert(self, item: CatalogItem) -> None:
        self.items[item.item_id] = item
        self.delisted.discard(item.item_id)
        if item.in_stock:
            self.out_of_stock.discard(item.item_id)
        else:
            self.out_of_stock.add(item.item_id)
        self.version += 1

    def delist(self, item_id: str) -> None:
        self.items.pop(item_id, None)
        self.out_of_stock.discard(item_id)
        self.delisted.add(item_id)
        self.version += 1

    def category(self, item_id: str) -> str | None:
        item = self.items.get(item_id)
        return item.category if item else None


@dataclass
class RecommenderConfig:
    k: int = 20
    pool: int = 200
    trending_candidates: int = 20
    new_item_candidates: int = 20
    policy: RerankPolicy = field(default_factory=lambda: RerankPolicy.parse("dpp"))
    rules: BusinessRules = field(default_factory=BusinessRules)
    category_weight: float = 0.5


class Recommender:
    """Holds the current model, catalog and trending counts; turns batches into lists."""

    def __init__(self, config: RecommenderConfig, catalog: CatalogView | None = None,
                 trending: Trending | None = None) -> None:
        self.config = config
        self.catalog = catalog or CatalogView()
        self.trending = trending or Trending()
        self.model: ScoringModel | None = None
        self._unavailable: NDArray[np.bool_] | None = None  # per vocabulary index
        self._catalog_version = -1

    def swap_model(self, model: ScoringModel | None) -> None:
        """Serve ``model`` from the next batch on (one attribute write: atomic for readers)."""
        self.model = model
        self._unavailable = None

    def recommend(self, requests: Sequence[RecRequest],
                  clock: StageClock | None = None) -> list[RecList]:
        """One list per request, in order; ``clock`` collects per-stage time if given."""
        if not requests:
            return []
        clock = clock or StageClock()
        model = self.model  # one model per batch, even if a swap lands meanwhile
        if model is None:
            return self._fallback(requests, clock)
        return self._with_model(model, requests, clock)

    # -- with a model --------------------------------------------------------------------
    def _with_model(self, model: ScoringModel, requests: Sequence[RecRequest],
                    clock: StageClock) -> list[RecList]:
        histories = [[(h.item_id, h.type_code) for h in r.state.history] for r in requests]
        with clock.stage("scoring"):
            queries = model.query_vectors(histories)
        with clock.stage("retrieval"):
            top, sims = self._retrieve(model, queries)
            candidate_ids, reasons = self._merge_candidates(model, top, sims)
        with clock.stage("scoring"):
            width = max(len(c) for c in candidate_ids)
            padded = [c + [c[0]] * (width - len(c)) for c in candidate_ids]
            scores = model.score(histories, padded, self.catalog.items).astype(np.float64)
            for row, ids in enumerate(candidate_ids):
                scores[row, len(ids):] = -np.inf
        with clock.stage("reranking"):
            index = model.index_of([i for row in padded for i in row]).reshape(len(padded),
                                                                                width)
            known = (index >= 0)[..., None]
            vectors = np.where(known, model.item_vectors[np.maximum(index, 0)], 0.0)
            return self._rerank(requests, padded, reasons, scores, vectors.astype(np.float32),
                                model.version, fallback=False)

    def _retrieve(self, model: ScoringModel, queries: NDArray[np.float32]
                  ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Top ``pool`` available items per query over the whole catalog (one matmul)."""
        sims = queries @ model.item_vectors.T  # (B, N)
        sims[:, self._unavailable_mask(model)] = -np.inf
        n_retrieve = min(self.config.pool, sims.shape[1])
        top = np.argpartition(-sims, n_retrieve - 1, axis=1)[:, :n_retrieve]
        return top, sims

    def _merge_candidates(self, model: ScoringModel, top: NDArray[np.int64],
                          sims: NDArray[np.float32]) -> tuple[list[list[str]], list[list[str]]]:
        """Retrieved + trending + new catalog items, de-duplicated, with their reasons."""
        extra_ids, extra_reasons = self._extra_candidates(model)
        candidate_ids: list[list[str]] = []
        reasons: list[list[str]] = []
        vocab = model.item_ids
        for row in range(len(top)):
            retrieved = top[row][np.isfinite(sims[row, top[row]])]
            ids = [str(x) for x in vocab[retrieved]]
            seen = set(ids)
            why = [REASON_SIMILAR] * len(ids)
            for item, reason in zip(extra_ids, extra_reasons, strict=True):
                if item not in seen:
                    seen.add(item)
                    ids.append(item)
                    why.append(reason)
            candidate_ids.append(ids or [""])
            reasons.append(why or [""])
        return candidate_ids, reasons

    def _unavailable_mask(self, model: ScoringModel) -> NDArray[np.bool_]:
        if self._unavailable is None or self._catalog_version != self.catalog.version:
            gone = list(self.catalog.delisted | self.catalog.out_of_stock)
            mask = np.zeros(len(model.item_ids), dtype=bool)
            idx = model.index_of(gone) if gone else np.empty(0, np.int64)
            mask[idx[idx >= 0]] = True
            self._unavailable, self._catalog_version = mask, self.catalog.version
        return self._unavailable

    def _extra_candidates(self, model: ScoringModel) -> tuple[list[str], list[str]]:
        """Trending items and catalog items the model has never seen (newest first)."""
        cfg = self.config
        ids = [item for item, _ in self.trending.top(cfg.trending_candidates)]
        reasons = [REASON_TRENDING] * len(ids)
        if cfg.new_item_candidates and self.catalog.items:
            catalog_ids = list(self.catalog.items)
            unknown = np.asarray(model.index_of(catalog_ids)) < 0
            new = [i for i, u in zip(catalog_ids, unknown, strict=True) if u]
            new = new[-cfg.new_item_candidates:][::-1]
            ids += new
            reasons += [REASON_NEW] * len(new)
        return ids, reasons

    # -- without a model -----------------------------------------------------------------
    def _fallback(self, requests: Sequence[RecRequest], clock: StageClock) -> list[RecList]:
        """Trending, favourite-category and recently-viewed items, scored by popularity."""
        with clock.stage("retrieval"):
            candidate_ids, reasons, scores = self._fallback_candidates(requests)
        with clock.stage("reranking"):
            vectors = np.zeros((*scores.shape, 1), dtype=np.float32)
            return self._rerank(requests, candidate_ids, reasons, scores, vectors, None,
                                fallback=True)

    def _fallback_candidates(self, requests: Sequence[RecRequest]
                             ) -> tuple[list[list[str]], list[list[str]], NDArray[np.float64]]:
        cfg = self.config
        popular = self.trending.top(cfg.pool)
        popularity = dict(popular)
        candidate_ids: list[list[str]] = []
        reasons: list[list[str]] = []
        rows: list[list[float]] = []
        for req in requests:
            liked = dict(req.state.category_affinity)
            top_affinity = max(liked.values(), default=1.0) or 1.0
            scored: dict[str, tuple[float, str]] = {}
            for item, pop in popular:
                boost = liked.get(self.catalog.category(item) or "", 0.0) / top_affinity
                reason = REASON_CATEGORY if boost > 0 else REASON_TRENDING
                scored[item] = (pop + boost, reason)
            for entry in reversed(req.state.history):
                if entry.item_id not in scored:
                    scored[entry.item_id] = (popularity.get(entry.item_id, 0.0) + 0.5,
                                             REASON_RECENT)
            ids = list(scored)[: cfg.pool] or [""]
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

    # -- shared ----------------------------------------------------------------------------
    def _rerank(self, requests: Sequence[RecRequest], candidate_ids: list[list[str]],
                reasons: list[list[str]], scores: NDArray[np.float64],
                vectors: NDArray[np.float32], version: str | None,
                fallback: bool) -> list[RecList]:
        cfg = self.config
        n_b, width = scores.shape
        delisted, out_of_stock = self.catalog.delisted, self.catalog.out_of_stock
        eligible = np.zeros((n_b, width), dtype=bool)
        categories = np.full((n_b, width), -1, dtype=np.int64)
        codes: dict[str, int] = {}
        keys = np.zeros((n_b, width), dtype=np.int64)
        for row, (req, ids) in enumerate(zip(requests, candidate_ids, strict=True)):
            eligible[row] = eligible_mask(
                ids, cfg.rules, purchased=set(req.state.purchased),
                shows_without_click=dict(req.state.shown), delisted=delisted,
                out_of_stock=out_of_stock)
            keys[row] = stable_item_keys(ids)
            for col, item in enumerate(ids):
                category = self.catalog.category(item)
                if category is not None:
                    categories[row, col] = codes.setdefault(category, len(codes))
        eligible &= np.isfinite(scores) & (np.asarray(candidate_ids) != "")
        policies = [r.policy or cfg.policy for r in requests]
        picked = np.full((n_b, cfg.k), -1, dtype=np.int64)
        for policy in set(policies):
            rows = np.array([i for i, p in enumerate(policies) if p == policy])
            picked[rows] = rerank_batch(
                scores[rows].astype(np.float32), vectors[rows], keys[rows], cfg.k, policy,
                categories=categories[rows], eligible=eligible[rows],
                max_per_category=cfg.rules.category_cap, category_weight=cfg.category_weight)
        now_ms = time.time() * 1000
        out = []
        for row, req in enumerate(requests):
            chosen = [int(c) for c in picked[row] if c >= 0]
            items = tuple(RecItem(candidate_ids[row][c], float(scores[row, c]), reasons[row][c])
                          for c in chosen)
            out.append(RecList(req.user_id, req.event_id, items, version, policies[row],
                               fallback, now_ms, now_ms - req.received_ms))
        return out

