"""Offline evaluation through the worker's retrieval: retrieve, then score the pool.

``offline.evaluate.prepare_pools`` scores every catalog item for every test case: the model's
own ranking, whatever retrieval would have found. The worker instead retrieves ``pool``
candidates per shopper (``serving/candidates.IndexRetrieval``: exactly, or through the
model's approximate-retrieval graph) and scores only those. This runs that path with the
worker's own classes (``ServedModel``, ``ItemTable``, the candidate sources) on a dataset's
test split, so the cost of approximate retrieval reads as metrics: the lists of exact and
approximate retrieval side by side, and recall@pool of the approximate candidates against the
exact ones.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stream_rec.core.catalog import CatalogItem, parse_catalog_item
from stream_rec.datasets import Dataset, TestCase
from stream_rec.model.ann import DEFAULT_KIND, AnnIndex, build_index
from stream_rec.model.artifact import ModelArtifact
from stream_rec.model.runtime import ServedModel
from stream_rec.model.scan import Int8Scan
from stream_rec.offline.evaluate import Pools, candidate_universe, history_of, pools_of
from stream_rec.offline.replay import catalog_messages
from stream_rec.serving.candidates import ExactRetrieval, IndexRetrieval
from stream_rec.serving.item_table import ItemTable


@dataclass
class RetrievalPools:
    """The pools of exact and approximate retrieval for the same cases, and how many of the
    exact candidates the approximate search found (recall@pool, mean over cases)."""

    exact: Pools
    index: Pools
    recall: float
    index_info: dict[str, Any]


def dataset_catalog(dataset: Dataset) -> dict[str, CatalogItem]:
    """The dataset's described items as the worker's catalog feed would hold them."""
    return {key.decode(): parse_catalog_item(key.decode(), value)
            for key, value in catalog_messages(dataset)}


def retrieval_pools(artifact: ModelArtifact, dataset: Dataset, pool: int = 200, k: int = 20,
                    batch_size: int = 256, ef_search: int = 256, threads: int = 2,
                    kind: str = DEFAULT_KIND, scan: str = "float32",
                    cases: Sequence[TestCase] | None = None,
                    progress: Callable[[str], None] | None = None) -> RetrievalPools:
    """Per test case, ``pool`` candidates retrieved exactly and as the worker retrieves them
    (the artifact's graph; else the 8-bit scan when ``scan`` is ``int8``; else a graph of
    ``kind`` built now), each pool scored by the model and sorted, best first."""
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    cases = dataset.test_cases() if cases is None else list(cases)
    model = ServedModel(artifact, threads=threads, retrieval_index=True, ef_search=ef_search,
                        retrieval_scan=scan)
    info: dict[str, Any] = dict(artifact.manifest.get("model", {}).get("ann") or {})
    if isinstance(model.ann, Int8Scan):
        info = {"kind": model.ann.kind}
    elif model.ann is None:
        say(f"the artifact ships no approximate-retrieval index: building one over "
            f"{len(artifact.item_ids):,} items ...")
        started = time.perf_counter()
        model.ann = AnnIndex(build_index(artifact.item_embeddings, kind, progress=say),
                             ef_search)
        info = {"built_for_this_evaluation": True, "kind": kind,
                "build_s": round(time.perf_counter() - started, 1)}
    if isinstance(model.ann, AnnIndex):
        info["ef_search"] = ef_search
    catalog = dataset_catalog(dataset)
    table = ItemTable(model, catalog)
    universe = candidate_universe(artifact.item_ids, dataset)
    position = {item: n for n, item in enumerate(universe)}
    # Item-table position -> universe position (the table appends catalog-only items in
    # catalog order; the universe sorts them).
    to_universe = np.array([position.get(i, -1) for i in table.ids], dtype=np.int64)
    keep = min(max(pool, k), len(universe))
    exact = _Collector(len(cases), keep)
    approx = _Collector(len(cases), keep)
    found = 0
    started, last_report = time.monotonic(), time.monotonic()
    for lo in range(0, len(cases), batch_size):
        chunk = cases[lo:lo + batch_size]
        histories = [history_of(c) for c in chunk]
        queries = model.query_vectors(histories, catalog)
        by_exact = ExactRetrieval().propose(queries, table, keep)
        by_index = IndexRetrieval().propose(queries, table, keep)
        for row in range(len(chunk)):
            truth = set(by_exact[row][by_exact[row] >= 0].tolist())
            found += len(truth & set(by_index[row].tolist()))
        exact.add(lo, *_scored(model, histories, by_exact, table, catalog, to_universe))
        approx.add(lo, *_scored(model, histories, by_index, table, catalog, to_universe))
        if time.monotonic() - last_report > 10:
            last_report = time.monotonic()
            say(f"  retrieved and scored {lo + len(chunk):,}/{len(cases):,} test cases "
                f"({time.monotonic() - started:.0f} s)")
    base = pools_of(artifact, dataset, cases, universe, exact.candidates, exact.scores)
    recall = found / max(1, len(cases) * keep)
    return RetrievalPools(base, replace(base, candidates=approx.candidates,
                                        scores=approx.scores), recall, info)


class _Collector:
    """(cases, keep) candidates and scores, filled a batch at a time (-1 / -inf: none)."""

    def __init__(self, n_cases: int, keep: int) -> None:
        self.candidates = np.full((n_cases, keep), -1, dtype=np.int64)
        self.scores = np.full((n_cases, keep), -np.inf, dtype=np.float32)

    def add(self, lo: int, candidates: NDArray[np.int64], scores: NDArray[np.float32]
            ) -> None:
        width = min(candidates.shape[1], self.candidates.shape[1])
        self.candidates[lo:lo + len(candidates), :width] = candidates[:, :width]
        self.scores[lo:lo + len(candidates), :width] = scores[:, :width]


def _scored(model: ServedModel, histories: list[list[tuple[str, str]]],
            positions: NDArray[np.int64], table: ItemTable, catalog: dict[str, CatalogItem],
            to_universe: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """The retrieved candidates (table positions, -1 none) scored by the model, best first,
    as universe positions."""
    ids = table.id_array()
    # Rows must be equally long: a missing candidate is scored as the row's first and dropped.
    filler = np.where(positions >= 0, positions, np.maximum(positions[:, :1], 0))
    scores = model.score(histories, ids[filler].tolist(), catalog)
    scores = np.where(positions >= 0, scores, -np.inf).astype(np.float32)
    order = np.argsort(-scores, axis=1, kind="stable")
    universe = to_universe[np.take_along_axis(filler, order, axis=1)]
    sorted_scores = np.take_along_axis(scores, order, axis=1)
    return np.where(np.isfinite(sorted_scores), universe, -1), sorted_scores
