"""Offline next-item evaluation through ``model.onnx`` and the worker's own feature code.

Two steps, so re-ranking sweeps never re-score:

1. ``prepare_pools(artifact, dataset, pool=200, k=20)`` scores every item of the catalog
   once per test case (through onnxruntime, inputs built by ``stream_rec.model.features``,
   as the worker builds them) and keeps the top ``pool`` candidates with their scores.
2. ``metrics_for(pools, policy, k)`` turns pools into lists (the plain top-k, or a re-ranking
   policy applied to the pool) and computes the metrics.

The catalog ("universe") is every item of the model's vocabulary plus every item the dataset
describes with attributes that the model has never seen (they score through the content
branch). Items already in the history are not removed: repeats count, as in the published
tables. A target outside the universe counts as a miss.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stream_rec.core.metrics import (
    catalog_coverage,
    distinct_categories,
    intra_list_diversity,
    relevance_metrics,
)
from stream_rec.datasets import Dataset, TestCase
from stream_rec.model.artifact import ModelArtifact
from stream_rec.model.features import FeatureBuilder
from stream_rec.model.scorer import OnnxScorer

CATEGORY_ATTRIBUTE = "category"


@dataclass
class Pools:
    """Per test case, the best ``pool`` candidates of the whole catalog, best first.

    ``candidates`` are positions into ``universe`` (B, pool); ``scores`` their fused scores;
    ``targets`` the target's position in ``universe`` (-1: not in it); ``cold_target`` marks
    targets the model's id vocabulary does not know. ``item_vectors`` (U, D) are the
    L2-normalised retrieval vectors (zero for items the model never trained on) and
    ``categories`` (U,) dense category codes, -1 unknown; None when the data has none.
    """

    universe: list[str]
    candidates: NDArray[np.int64]
    scores: NDArray[np.float32]
    targets: NDArray[np.int64]
    cold_target: NDArray[np.bool_]
    item_vectors: NDArray[np.float32]
    item_keys: NDArray[np.int64]
    categories: NDArray[np.int64] | None

    def __len__(self) -> int:
        return int(self.targets.shape[0])


SCORES_PER_RUN = 2**24  # scores per onnxruntime run at most (64 MB of float32)


def candidate_universe(item_ids: Sequence[str], dataset: Dataset) -> list[str]:
    """The model's vocabulary, then the dataset's described items it does not know."""
    known = set(item_ids)
    return [*item_ids, *sorted(i for i in dataset.items if i not in known)]


def history_of(case: TestCase) -> list[tuple[str, str]]:
    """A test case's history as the model's features take it: (item, event type)."""
    return [(e.item_id, e.event_type) for e in case.history]


def prepare_pools(artifact: ModelArtifact, dataset: Dataset, pool: int = 200, k: int = 20,
                  batch_size: int = 256, threads: int = 2,
                  cases: Sequence[TestCase] | None = None,
                  progress: Callable[[str], None] | None = None) -> Pools:
    """Score the whole catalog once per test case and keep the top ``max(pool, k)``."""
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    cases = dataset.test_cases() if cases is None else list(cases)
    universe = candidate_universe(artifact.item_ids, dataset)
    features = FeatureBuilder(artifact)
    scorer = OnnxScorer(artifact.model_path, threads=threads)
    shared = features.candidate_inputs(universe, dataset.items)
    keep = min(max(pool, k), len(universe))
    # onnxruntime keeps several (cases x universe) intermediates per run: fewer cases a run
    # on a large catalog bounds them (a 200,000-item run of 256 peaked at 6 GB).
    batch_size = max(8, min(batch_size, SCORES_PER_RUN // len(universe)))
    candidates = np.empty((len(cases), keep), dtype=np.int64)
    scores = np.empty((len(cases), keep), dtype=np.float32)
    started, last_report = time.monotonic(), time.monotonic()
    for lo in range(0, len(cases), batch_size):
        chunk = cases[lo:lo + batch_size]
        inputs = {**features.history_inputs([history_of(c) for c in chunk], dataset.items),
                  **shared}
        batch_scores, _ = scorer.run(inputs)
        top = np.argpartition(-batch_scores, keep - 1, axis=1)[:, :keep]
        top_scores = np.take_along_axis(batch_scores, top, axis=1)
        order = np.lexsort((top, -top_scores), axis=1)  # best first, ties by position
        candidates[lo:lo + len(chunk)] = np.take_along_axis(top, order, axis=1)
        scores[lo:lo + len(chunk)] = np.take_along_axis(top_scores, order, axis=1)
        if time.monotonic() - last_report > 10:
            last_report = time.monotonic()
            say(f"  scored {lo + len(chunk):,}/{len(cases):,} test cases "
                f"({time.monotonic() - started:.0f} s)")
    return pools_of(artifact, dataset, cases, universe, candidates, scores)


def pools_of(artifact: ModelArtifact, dataset: Dataset, cases: Sequence[TestCase],
             universe: list[str], candidates: NDArray[np.int64], scores: NDArray[np.float32]
             ) -> Pools:
    """``Pools`` around the cases' candidates (universe positions) and their scores."""
    from stream_rec.rerank import stable_item_keys

    position = {item: n for n, item in enumerate(universe)}
    targets = np.fromiter((position.get(c.target.item_id, -1) for c in cases), dtype=np.int64,
                          count=len(cases))
    cold = artifact.positions([c.target.item_id for c in cases]) < 0
    vectors = np.zeros((len(universe), artifact.item_embeddings.shape[1]), dtype=np.float32)
    vectors[: len(artifact.item_ids)] = artifact.item_embeddings
    return Pools(universe, candidates, scores, targets, cold, vectors,
                 stable_item_keys(universe), category_codes(universe, dataset))


def category_codes(universe: list[str], dataset: Dataset) -> NDArray[np.int64] | None:
    """Dense category codes of the universe's items (-1 unknown); None without categories."""
    raw = [dataset.items.get(i, {}).get(CATEGORY_ATTRIBUTE) for i in universe]
    if all(v is None for v in raw):
        return None
    codes: dict[str, int] = {}
    return np.array([-1 if v is None else codes.setdefault(v, len(codes)) for v in raw],
                    dtype=np.int64)


def lists_for(pools: Pools, policy: Any, k: int,
              category_weight: float | None = None) -> NDArray[np.int64]:
    """(B, k) universe positions: the plain top-k, or ``policy`` applied to each pool.

    ``category_weight`` is the re-rankers' w (setting ``rerank_category_weight``; None: the
    re-rankers' default), so offline lists use the similarity the worker is configured with.
    """
    if policy is None or getattr(policy, "is_identity", False):
        return pools.candidates[:, :k]
    from stream_rec.rerank import DEFAULT_CATEGORY_WEIGHT, rerank_batch

    weight = DEFAULT_CATEGORY_WEIGHT if category_weight is None else category_weight

    out = np.full((len(pools), k), -1, dtype=np.int64)
    for lo in range(0, len(pools), 1024):
        cand = pools.candidates[lo:lo + 1024]
        cats = pools.categories[cand] if pools.categories is not None else None
        picked = rerank_batch(pools.scores[lo:lo + 1024], pools.item_vectors[cand],
                              pools.item_keys[cand], k, policy, categories=cats,
                              category_weight=weight)
        out[lo:lo + len(cand)] = np.where(picked >= 0,
                                          np.take_along_axis(cand, np.maximum(picked, 0), 1),
                                          -1)
    return out


def metrics_for(pools: Pools, policy: Any = None, k: int = 20,
                only: NDArray[np.bool_] | None = None,
                category_weight: float | None = None) -> dict[str, Any]:
    """``n_cases``, ``P@K``, ``MRR@K``, ``NDCG@K``, ``catalog_coverage@K`` and, with
    categories, ``ILD@K`` and ``categories@K`` (units: see ``stream_rec.core.metrics``).

    ``policy`` is a ``stream_rec.rerank.RerankPolicy`` or None; ``only`` restricts the cases;
    ``category_weight`` as in ``lists_for``.
    """
    lists = lists_for(pools, policy, k, category_weight)
    targets = pools.targets
    if only is not None:
        lists, targets = lists[only], targets[only]
    out: dict[str, Any] = {"n_cases": int(len(targets))}
    out.update({name: round(v, 4) for name, v in relevance_metrics(lists, targets, k).items()})
    out[f"catalog_coverage@{k}"] = round(catalog_coverage(lists, len(pools.universe)), 4)
    if pools.categories is not None:
        cats = np.where(lists >= 0, pools.categories[np.maximum(lists, 0)], -1)
        out[f"ILD@{k}"] = round(intra_list_diversity(cats), 4)
        out[f"categories@{k}"] = round(distinct_categories(cats), 4)
    return out


def summarise(pools: Pools, policy: Any = None, k: int = 20,
              category_weight: float | None = None) -> dict[str, Any]:
    """``metrics_for`` over all cases, plus a ``cold_targets`` block (same metrics over the
    cases whose target the model never saw in training) when there are such cases."""
    out = metrics_for(pools, policy, k, category_weight=category_weight)
    if pools.cold_target.any():
        cold = metrics_for(pools, policy, k, only=pools.cold_target,
                           category_weight=category_weight)
        out["cold_targets"] = {key: cold[key] for key in ("n_cases", f"P@{k}", f"MRR@{k}",
                                                           f"NDCG@{k}")}
    return out


def evaluate(artifact: ModelArtifact, dataset: Dataset, k: int = 20, policy: Any = None,
             pool: int = 200, batch_size: int = 256, threads: int = 2,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Metrics over the test split (see ``summarise``)."""
    pools = prepare_pools(artifact, dataset, pool=pool, k=k, batch_size=batch_size,
                          threads=threads, progress=progress)
    return summarise(pools, policy, k)
