"""From shopper states to re-ranked recommendation lists, a batch at a time.

No Kafka and no Faust here: the worker's agent hands over the states of the shoppers whose
events arrived in one batch and gets their lists back. With a model, candidates come from
retrieval over the whole catalog (one matmul for the batch), the same for catalog items the
model has never seen but the live stream has placed among known ones (``stream_learner.py``),
trending items and the newest unseen catalog items (scored through their attributes); the
ONNX model scores them in one call and the re-ranker picks the list. Without a model,
trending and the shopper's own recent items and favourite categories stand in, and the lists
say so (``fallback``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from stream_rec.core.attribution import group_key
from stream_rec.core.catalog import CatalogItem
from stream_rec.core.events import Event
from stream_rec.core.state import (
    StateLimits,
    UserState,
    apply_event,
    update_profile,
)
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
from stream_rec.serving.candidates import (
    CandidateSource,
    IndexRetrieval,
    NewItems,
    TrendingItems,
    gather,
)
from stream_rec.serving.catalog_view import CatalogView
from stream_rec.serving.error_log import ErrorSampler
from stream_rec.serving.fallback import fallback_candidates
from stream_rec.serving.item_table import ItemTable
from stream_rec.serving.learnt_candidates import LearntColdItems
from stream_rec.serving.lists import REASON_CODE, Pool, RecItem, RecList, RecRequest
from stream_rec.serving.scoring import ModelScorer, Scorer
from stream_rec.serving.stage_clock import StageClock
from stream_rec.serving.stream_learner import StreamLearner, learner_for

log = logging.getLogger(__name__)

History = Sequence[tuple[str, int]]  # (raw item id, event type code), oldest first


@dataclass
class RecommenderConfig:
    """List length, candidates per source, default policy and business rules."""

    k: int = 20
    pool: int = 200
    trending_candidates: int = 20
    new_item_candidates: int = 20
    policy: RerankPolicy = field(default_factory=lambda: RerankPolicy.parse("dpp"))
    rules: BusinessRules = field(default_factory=BusinessRules)
    category_weight: float = 0.5
    # Candidates kept with each shopper's latest list for request-time re-ranking (0: none)
    pool_kept: int = 200
    # Cold items placed by the live stream (settings stream_item_*): candidates per list
    # (0: nothing learnt), events before an item counts, and the memory's bounds.
    stream_item_candidates: int = 50
    stream_item_min_observations: int = 1
    stream_items_max: int = 5_000
    stream_item_neighbours: int = 32


class Recommender:
    """Holds the current model, catalog and trending counts; turns batches into lists.

    Candidates come from ``sources`` (default: retrieval over the whole catalog, trending
    items, new catalog items; ``stream_rec/serving/candidates.py``), scores from the served
    model's ``Scorer`` (``stream_rec/serving/scoring.py``); this class only puts them together
    with the shoppers' own exclusions and the re-ranking policy.
    """

    def __init__(self, config: RecommenderConfig, catalog: CatalogView | None = None,
                 trending: Trending | None = None,
                 sources: Sequence[tuple[CandidateSource, int]] | None = None) -> None:
        self.config = config
        self.catalog = catalog or CatalogView()
        self.trending = trending or Trending()
        self.sources: list[tuple[CandidateSource, int]] = list(sources) if sources else [
            (IndexRetrieval(), config.pool),
            (LearntColdItems(), config.stream_item_candidates),
            (TrendingItems(self.trending), config.trending_candidates),
            (NewItems(), config.new_item_candidates)]
        self._learning_errors = ErrorSampler(log)
        # What the stream teaches about items the model never saw (None: learn nothing)
        self.learner: StreamLearner | None = None if config.stream_item_candidates <= 0 else \
            learner_for(config.stream_items_max, config.stream_item_neighbours,
                        config.stream_item_min_observations, self.catalog.items)
        self.model: ServedModel | None = None
        self.scorer: Scorer | None = None
        self.table: ItemTable | None = None
        # Model versions that experiment arms ask for, served beside ``model`` to the shoppers
        # of those arms (version -> scorer and item table); swapped whole, like ``model``.
        self.arm_models: dict[str, tuple[Scorer, ItemTable]] = {}

    def item_table_for(self, model: ServedModel) -> ItemTable:
        """``model``'s item table over the current catalog, its retrieval matrix built.

        Seconds at a million items: the worker calls it on a helper thread while it holds
        catalog changes back (``WorkerRuntime.catalog_held``), then swaps on the event loop."""
        table = ItemTable(model, self.catalog.items, self.catalog.delisted)
        if model.ann is None:
            table.retrieval_matrix()
        else:  # retrieval goes through the graph: only catalog-only items need columns
            table.catalog_matrix()
        return table

    def swap_model(self, model: ServedModel | None, table: ItemTable | None = None) -> None:
        """Serve ``model`` from the next batch on, with ``table`` (``item_table_for``; built
        here when not given)."""
        if model is not None and table is None:
            table = self.item_table_for(model)
        scorer = None if model is None else ModelScorer(model)
        self.model, self.scorer, self.table = model, scorer, None if model is None else table
        self._serve_learnt()

    def set_arm_models(self, models: Sequence[ServedModel],
                       tables: Mapping[str, ItemTable] | None = None) -> None:
        """Serve these versions, beside the main model, to requests that ask for them; a
        version already served keeps its item table, a new one gets ``tables[version]`` or
        one built here."""
        kept, tables = self.arm_models, tables or {}
        self.arm_models = {m.version: kept[m.version] if m.version in kept else
                           (ModelScorer(m), tables.get(m.version) or self.item_table_for(m))
                           for m in models}
        self._serve_learnt()

    def _serve_learnt(self) -> None:
        """Learnt vectors for every table served now, each in its own model's space."""
        if self.learner is not None:
            self.learner.serve(self.table, self._tables())

    def learn(self) -> None:
        """Bring the learnt vectors up to the events observed so far: once per batch, on the
        thread that observes events (lists read the snapshots it leaves, see
        ``stream_vectors.py``)."""
        if self.learner is not None:
            self.learner.refresh()

    def planned_group(self, request: RecRequest) -> str:
        """The group (``attribution.group_key``) the request's list will count in, as far as
        it can be known before it is made: the model that will score it and the policy."""
        arm = self.arm_models.get(request.model) if request.model else None
        scorer = arm[0] if arm is not None else self.scorer
        return group_key(None if scorer is None else scorer.version,
                         str(request.policy or self.config.policy), request.experiment)

    def observe(self, state: UserState, event: Event, limits: StateLimits,
                source: tuple[int, int], source_topic: str = "",
                active_ms: int = 0) -> UserState:
        """The shopper's state after ``event`` (from message ``source`` = (partition, offset)
        of the topic whose id digest is ``source_topic``, sent at ``active_ms``): history and
        affinities, the profile in the served model's space, trending counts, and what the
        event says about items the model never saw (``learn`` makes that count).
        """
        history = state.history
        state = apply_event(state, event, self.catalog.category(event.item_id), limits)
        state = state.evolve(source=source, source_topic=source_topic,
                        active_ms=active_ms or state.active_ms)
        model = self.model
        if model is not None:
            index = model.row_of(event.item_id)
            vector = model.item_vectors[index] if index >= 0 else None
            state = update_profile(state, vector, event.type_code, model.version, limits)
        self.trending.add(event.item_id, event.ts_ms, event.type_code)
        learner, table = self.learner, self.table
        if learner is not None and table is not None:
            try:
                learner.observe(history, event.item_id, event.ts_ms, table)
            except Exception as exc:  # noqa: BLE001 - optional learning never costs an event
                self._learning_errors.report(exc, f"learning from event {event.event_id!r}")
        return state

    def upsert_item(self, item: CatalogItem) -> None:
        self.catalog.upsert(item)
        for table in self._tables():
            table.upsert(item, self.catalog.items)
        if self.learner is not None:
            self.learner.placed(item.item_id)

    def delist_item(self, item_id: str) -> None:
        self.catalog.delist(item_id)
        for table in self._tables():
            table.delist(item_id)

    def _tables(self) -> list[ItemTable]:
        tables = [table for _, table in self.arm_models.values()]
        return tables if self.table is None else [self.table, *tables]

    def recommend(self, requests: Sequence[RecRequest],
                  clock: StageClock | None = None) -> list[RecList]:
        """One list per request, in order; ``clock`` collects per-stage time if given."""
        if not requests:
            return []
        clock = clock or StageClock()
        scorer, table = self.scorer, self.table  # one model per batch, even mid-swap
        arms = self.arm_models
        if arms and any(r.model in arms for r in requests):
            return self._by_model(requests, arms, clock)
        if scorer is None or table is None:
            return self._fallback(requests, clock)
        return self._with_model(scorer, table, requests, clock)

    def _by_model(self, requests: Sequence[RecRequest],
                  arms: dict[str, tuple[Scorer, ItemTable]], clock: StageClock
                  ) -> list[RecList]:
        """A batch whose requests ask for different model versions: one pass per version (a
        version not loaded gets the main model, and its lists say which model made them)."""
        rows: dict[str | None, list[int]] = {}
        for row, req in enumerate(requests):
            rows.setdefault(req.model if req.model in arms else None, []).append(row)
        out: list[RecList | None] = [None] * len(requests)
        for version, chosen in rows.items():
            part = [requests[row] for row in chosen]
            if version is not None:
                made = self._with_model(*arms[version], part, clock)
            elif self.scorer is not None and self.table is not None:
                made = self._with_model(self.scorer, self.table, part, clock)
            else:
                made = self._fallback(part, clock)
            for row, rec in zip(chosen, made, strict=True):
                out[row] = rec
        return [rec for rec in out if rec is not None]

    # -- with a model --------------------------------------------------------------------
    def _with_model(self, scorer: Scorer, table: ItemTable,
                    requests: Sequence[RecRequest], clock: StageClock) -> list[RecList]:
        cfg = self.config
        with clock.stage("scoring"):
            histories = [[(h.item_id, h.type_code) for h in r.state.history] for r in requests]
            queries = scorer.queries(histories, self.catalog.items)  # once per batch
        with clock.stage("retrieval"):
            candidates, reasons = gather(self.sources, queries.embedding, table, histories)
        with clock.stage("scoring"):
            safe = np.maximum(candidates, 0)
            scores = scorer.scores(queries, safe, table)
            scores = np.where(candidates >= 0, scores, -np.inf)
        with clock.stage("reranking"):
            eligible = candidates >= 0
            eligible &= ~table.unavailable[safe]
            eligible &= ~blocked_mask(candidates, [
                table.positions(_blocked_items(req.state, cfg.rules)) for req in requests])
            picked = self._pick(requests, scores, table.vectors(candidates), table.keys[safe],
                                np.where(eligible, table.category[safe], -1), eligible)
            rows = np.arange(len(requests))[:, None]
            chosen_pos = candidates[rows, np.maximum(picked, 0)].tolist()
            chosen_score = scores[rows, np.maximum(picked, 0)].tolist()
        with clock.stage("pool"):
            id_array = table.id_array()
            pools = self._pools(scores, eligible, picked, reasons,
                                lambda row, cols: id_array[candidates[row, cols]].tolist())
        out = []
        for row, (req, policy) in enumerate(zip(requests, self._policies(requests),
                                                strict=True)):
            items = [(table.ids[p], s, reasons[c]) for p, s, c in
                     zip(chosen_pos[row], chosen_score[row], picked[row].tolist(),
                         strict=True) if c >= 0]
            out.append(self._rec_list(req, items, scorer.version, policy, fallback=False,
                                      pool=pools[row]))
        return out

    # -- without a model -----------------------------------------------------------------
    def fallback(self, requests: Sequence[RecRequest],
                 clock: StageClock | None = None) -> list[RecList]:
        """Lists made without the model (as when none is served), marked ``fallback``."""
        return self._fallback(requests, clock or StageClock()) if requests else []

    def _fallback(self, requests: Sequence[RecRequest], clock: StageClock) -> list[RecList]:
        """Trending, favourite-category and recently-viewed items, scored by popularity."""
        with clock.stage("retrieval"):
            candidate_ids, reasons, scores = fallback_candidates(
                requests, self.trending, self.catalog, self.config.pool)
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
        with clock.stage("pool"):
            pools = self._pools(scores, eligible, picked, reasons,
                                lambda row, cols: [candidate_ids[row][c] for c in cols.tolist()])
        return [self._rec_list(req, [(candidate_ids[row][c], float(scores[row, c]),
                                      reasons[row][c]) for c in picked[row] if c >= 0],
                               None, policy, fallback=True, pool=pools[row])
                for row, (req, policy) in enumerate(
                    zip(requests, self._policies(requests), strict=True))]

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

    def _pools(self, scores: NDArray[np.floating], eligible: NDArray[np.bool_],
               picked: NDArray[np.int64], reasons: Sequence[str] | Sequence[Sequence[str]],
               ids_of: Callable[[int, NDArray[np.int64]], list[str]]) -> list[Pool | None]:
        """Per row, the list's items (``picked``: columns, -1 padded) and the other eligible
        candidates by score, at most ``pool_kept`` in all (``Pool``); ``reasons`` per column,
        or per row and column. Vectorised but for one gather of ids
        per row: this runs for every list."""
        kept = self.config.pool_kept
        if kept <= 0 or not scores.shape[1]:
            return [None] * len(scores)
        masked = np.where(eligible & np.isfinite(scores), scores, -np.inf)
        width = min(kept, masked.shape[1])
        # The list's own items always stay in the pool (a diversity pick may score below the
        # cut), so the shopper's own policy re-ranks the pool back into the same list; then
        # best score first.
        key = masked.copy()
        rows = np.arange(len(masked))[:, None]
        key[rows, np.maximum(picked, 0)] = np.where(picked >= 0, np.inf,
                                                    key[rows, np.maximum(picked, 0)])
        chosen = np.argsort(-key, axis=1, kind="stable")[:, :width]
        by_score = np.argsort(-np.take_along_axis(masked, chosen, axis=1), axis=1,
                              kind="stable")
        order = np.take_along_axis(chosen, by_score, axis=1)
        best = np.take_along_axis(masked, order, axis=1).astype(np.float32)
        counts = np.isfinite(best).sum(axis=1).tolist()
        per_row = bool(reasons) and not isinstance(reasons[0], str)
        column_codes = None if per_row else _reason_codes(reasons)  # type: ignore[arg-type]
        pools: list[Pool | None] = []
        for row, count in enumerate(counts):
            cols = order[row, :count]
            codes = _reason_codes(reasons[row]) if per_row else column_codes
            assert codes is not None
            pools.append(Pool(tuple(ids_of(row, cols)), best[row, :count],
                              codes[cols].tobytes().decode("ascii")))
        return pools

    @staticmethod
    def _rec_list(req: RecRequest, chosen: list[tuple[str, float, str]], version: str | None,
                  policy: RerankPolicy, fallback: bool, pool: Pool | None = None) -> RecList:
        now_ms = time.time() * 1000
        named = {} if req.list_id is None else {"list_id": req.list_id}
        return RecList(req.user_id, req.event_id, tuple(map(RecItem._make, chosen)), version,
                       policy, fallback, now_ms, now_ms - req.received_ms,
                       experiment=req.experiment, pool=pool, **named)


def _reason_codes(reasons: Sequence[str]) -> NDArray[np.uint8]:
    """One ASCII code byte per column (``lists.REASON_CODE``)."""
    return np.frombuffer("".join(REASON_CODE.get(r, "0") for r in reasons).encode("ascii"),
                         dtype=np.uint8)


def _blocked_items(state: UserState, rules: BusinessRules) -> list[str]:
    """The shopper's own exclusions: purchases (if configured) and items shown too often."""
    blocked = list(state.purchased) if rules.exclude_purchased else []
    limit = rules.max_shows_without_click
    if limit:
        blocked += [item for item, shows in zip(state.shown_items, state.shown_counts,
                                                strict=True) if shows >= limit]
    return blocked
