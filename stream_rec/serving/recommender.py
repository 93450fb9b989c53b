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
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from stream_rec.core.catalog import CatalogItem
from stream_rec.core.events import Event
from stream_rec.core.rounding import round6
from stream_rec.core.state import StateLimits, UserState, apply_event, update_profile
from stream_rec.core.trending import Trending
from stream_rec.model import ServedModel
from stream_rec.rerank import (
    BusinessRules,
    RerankPolicy,
    blocked_mask,
    eligible_mask,
    rerank_batch,
    stable_item_keys,
)
from stream_rec.rerank.pool_vectors import PoolVectors
from stream_rec.serving.item_table import ItemTable
from stream_rec.serving.retrieval import top_n
from stream_rec.serving.stage_clock import StageClock

History = Sequence[tuple[str, int]]  # (raw item id, event type code), oldest first


@dataclass(frozen=True)
class RecRequest:
    user_id: str
    event_id: str
    state: UserState
    received_ms: float  # time.time() * 1000 when the event was taken off the topic
    policy: RerankPolicy | None = None  # None: the configured default


class RecItem(NamedTuple):
    """One recommended item (a named tuple: a batch makes thousands, and building one took
    0.68 us as a frozen dataclass against 0.24 us as a named tuple)."""

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
            "items": [{"item_id": i.item_id, "score": round6(i.score), "reason": i.reason}
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
        self.model: ServedModel | None = None
        self.table: ItemTable | None = None

    def swap_model(self, model: ServedModel | None) -> None:
        """Serve ``model`` from the next batch on; builds its item table first."""
        table = None if model is None else ItemTable(model, self.catalog.items)
        self.model, self.table = model, table

    def observe(self, state: UserState, event: Event, limits: StateLimits,
                source: tuple[int, int], source_topic: str = "") -> UserState:
        """The shopper's state after ``event`` (from message ``source`` = (partition, offset)
        of the topic whose id digest is ``source_topic``): history and affinities, the profile
        in the served model's space, and trending counts.
        """
        state = apply_event(state, event, self.catalog.category(event.item_id), limits)
        state = replace(state, source=source, source_topic=source_topic)
        model = self.model
        if model is not None:
            index = int(model.index_of([event.item_id])[0])
            vector = model.item_vectors[index] if index >= 0 else None
            state = update_profile(state, vector, event.type_code, model.version, limits)
        self.trending.add(event.item_id, event.ts_ms, event.type_code)
        return state

    def upsert_item(self, item: CatalogItem) -> None:
        self.catalog.upsert(item)
        if self.table is not None:
            self.table.upsert(item, self.catalog.items)

    def delist_item(self, item_id: str) -> None:
        self.catalog.delist(item_id)
        if self.table is not None:
            self.table.delist(item_id)

    def recommend(self, requests: Sequence[RecRequest],
                  clock: StageClock | None = None) -> list[RecList]:
        """One list per request, in order; ``clock`` collects per-stage time if given."""
        if not requests:
            return []
        clock = clock or StageClock()
        model, table = self.model, self.table  # one model per batch, even mid-swap
        if model is None or table is None:
            return self._fallback(requests, clock)
        return self._with_model(model, table, requests, clock)

    # -- with a model --------------------------------------------------------------------
    def _with_model(self, model: ServedModel, table: ItemTable,
                    requests: Sequence[RecRequest], clock: StageClock) -> list[RecList]:
        cfg = self.config
        with clock.stage("scoring"):
            histories = [[(h.item_id, h.type_code) for h in r.state.history] for r in requests]
            history_inputs = model.features.history_inputs(histories, self.catalog.items)
            tower = model.scorer.shopper_tower(history_inputs)  # the query vectors, once
        with clock.stage("retrieval"):
            candidates, n_retrieved, extra_reasons = self._candidates(model, table,
                                                                       tower.embedding)
        with clock.stage("scoring"):
            safe = np.maximum(candidates, 0)
            inputs = {"candidate_items": table.model_index[safe]}
            if model.features.with_attributes:
                inputs["candidate_attributes"] = table.attributes[safe]
            scores = model.scorer.candidate_scores(tower, inputs)
            scores = np.where(candidates >= 0, scores, -np.inf)
        with clock.stage("reranking"):
            eligible = candidates >= 0
            eligible &= ~table.unavailable[safe]
            eligible &= ~blocked_mask(candidates, [
                table.positions(_blocked_items(req.state, cfg.rules)) for req in requests])
            picked = self._pick(requests, scores, table.vectors(candidates), table.keys[safe],
                                np.where(eligible, table.category[safe], -1), eligible)
            reasons = [REASON_SIMILAR] * n_retrieved + extra_reasons
            rows = np.arange(len(requests))[:, None]
            chosen_pos = candidates[rows, np.maximum(picked, 0)].tolist()
            chosen_score = scores[rows, np.maximum(picked, 0)].tolist()
            out = []
            for row, (req, policy) in enumerate(zip(requests, self._policies(requests),
                                                    strict=True)):
                items = [(table.ids[p], s, reasons[c]) for p, s, c in
                         zip(chosen_pos[row], chosen_score[row], picked[row].tolist(),
                             strict=True) if c >= 0]
                out.append(self._rec_list(req, items, model.version, policy, fallback=False))
            return out

    def _candidates(self, model: ServedModel, table: ItemTable, queries: NDArray[np.float32]
                    ) -> tuple[NDArray[np.int64], int, list[str]]:
        """(B, M) item positions: retrieved over the whole catalog, then trending and new
        catalog items; -1 marks an extra that a row already retrieved (a duplicate)."""
        cfg = self.config
        available, vectors_t = table.available_vocab()
        n_retrieve = min(cfg.pool, len(available))
        if n_retrieve:
            sims = queries @ vectors_t  # (B, N): the whole catalog, one matmul for the batch
            retrieved = available[top_n(sims, n_retrieve)]
        else:
            retrieved = np.empty((len(queries), 0), dtype=np.int64)
        trending = table.positions(i for i, _ in self.trending.top(cfg.trending_candidates))
        new = [p for p in table.new_items(cfg.new_item_candidates) if p not in set(trending)]
        extras = np.asarray(trending + new, dtype=np.int64)
        reasons = [REASON_TRENDING] * len(trending) + [REASON_NEW] * len(new)
        block = np.broadcast_to(extras, (len(queries), len(extras))).copy()
        if len(extras) and retrieved.shape[1]:
            seen = (block[:, :, None] == retrieved[:, None, :]).any(axis=2)
            block[seen] = -1
        return np.concatenate([retrieved, block], axis=1), n_retrieve, reasons

    # -- without a model -----------------------------------------------------------------
    def fallback(self, requests: Sequence[RecRequest],
                 clock: StageClock | None = None) -> list[RecList]:
        """Lists made without the model (as when none is served), marked ``fallback``."""
        return self._fallback(requests, clock or StageClock()) if requests else []

    def _fallback(self, requests: Sequence[RecRequest], clock: StageClock) -> list[RecList]:
        """Trending, favourite-category and recently-viewed items, scored by popularity."""
        with clock.stage("retrieval"):
            candidate_ids, reasons, scores = self._fallback_candidates(requests)
        with clock.stage("reranking"):
            cfg, catalog = self.config, self.catalog
            n_b, width = scores.shape
            eligible = np.isfinite(scores)
            categories = np.full((n_b, width), -1, dtype=np.int64)
            keys = np.zeros((n_b, width), dtype=np.int64)
            codes: dict[str, int] = {}
            for row, (req, ids) in enumerate(zip(requests, candidate_ids, strict=True)):
                eligible[row] &= eligible_mask(
                    ids, cfg.rules, purchased=set(req.state.purchased),
                    shows_without_click=dict(req.state.shown), delisted=catalog.delisted,
                    out_of_stock=catalog.out_of_stock)
                keys[row] = stable_item_keys(ids)
                for col, item in enumerate(ids):
                    category = catalog.category(item)
                    if category is not None:
                        categories[row, col] = codes.setdefault(category, len(codes))
            vectors = np.zeros((n_b, width, 1), dtype=np.float32)
            picked = self._pick(requests, scores, vectors, keys, categories, eligible)
            return [self._rec_list(req, [(candidate_ids[row][c], float(scores[row, c]),
                                          reasons[row][c]) for c in picked[row] if c >= 0],
                                   None, policy, fallback=True)
                    for row, (req, policy) in enumerate(
                        zip(requests, self._policies(requests), strict=True))]

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
    def _policies(self, requests: Sequence[RecRequest]) -> list[RerankPolicy]:
        return [r.policy or self.config.policy for r in requests]

    def _pick(self, requests: Sequence[RecRequest], scores: NDArray[np.floating],
              vectors: NDArray[np.float32] | PoolVectors, keys: NDArray[np.int64],
              categories: NDArray[np.int64], eligible: NDArray[np.bool_]) -> NDArray[np.int64]:
        """(B, k) positions chosen by each request's re-ranking policy (-1 padded)."""
        cfg = self.config
        policies = self._policies(requests)
        picked = np.full((len(requests), cfg.k), -1, dtype=np.int64)
        for policy in set(policies):
            chosen = [i for i, p in enumerate(policies) if p == policy]
            # One policy for the whole batch is the usual case: no copies of its arrays.
            rows = slice(None) if len(chosen) == len(requests) else np.array(chosen)
            picked[rows] = rerank_batch(
                scores[rows].astype(np.float32), vectors[rows], keys[rows], cfg.k, policy,
                categories=categories[rows], eligible=eligible[rows],
                max_per_category=cfg.rules.category_cap, category_weight=cfg.category_weight)
        return picked

    @staticmethod
    def _rec_list(req: RecRequest, chosen: list[tuple[str, float, str]], version: str | None,
                  policy: RerankPolicy, fallback: bool) -> RecList:
        now_ms = time.time() * 1000
        return RecList(req.user_id, req.event_id,
                       tuple(map(RecItem._make, chosen)), version,
                       policy, fallback, now_ms, now_ms - req.received_ms)


def _blocked_items(state: UserState, rules: BusinessRules) -> list[str]:
    """The shopper's own exclusions: purchases (if configured) and items shown too often."""
    blocked = list(state.purchased) if rules.exclude_purchased else []
    limit = rules.max_shows_without_click
    if limit:
        blocked += [item for item, shows in zip(state.shown_items, state.shown_counts,
                                                strict=True) if shows >= limit]
    return blocked
