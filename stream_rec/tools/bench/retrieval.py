"""Exact retrieval against approximate nearest-neighbour indexes, on a served model's vectors.

The worker retrieves the top ``k`` items for each shopper by an exact inner product over the
whole catalog (``serving/candidates.ExactRetrieval``). An approximate index is only worth its
weight where it is faster at the same recall, so this measures both on the same queries: the
model's own query vectors for real session prefixes of the dataset, against its item vectors.
For each index: build time, CPU per query on one thread, and recall@k against the exact top
``k`` (the share of the exact top-k that the index returns). Libraries that are not installed
(``pip install 'stream-rec[ann]'``) are skipped with a note.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stream_rec.serving.retrieval import top_n

Search = Callable[[NDArray[np.float32], int], NDArray[np.int64]]  # (queries, k) -> (B, k) ids


@dataclass(frozen=True)
class Candidate:
    """One index configuration: its name, parameters and how to build it."""

    library: str
    params: dict[str, Any]
    build: Callable[[NDArray[np.float32]], Search]


def recall_at_k(found: NDArray[np.int64], exact: NDArray[np.int64]) -> float:
    """Mean over queries of |found ∩ exact| / k (``-1`` in ``found`` is no item)."""
    k = exact.shape[1]
    if not len(exact) or not k:
        return 0.0
    hits = [len(set(f[f >= 0].tolist()) & set(e.tolist())) for f, e in zip(found, exact,
                                                                              strict=True)]
    return float(np.mean(hits)) / k


def exact_search(vectors: NDArray[np.float32]) -> Search:
    """The worker's retrieval: one product with the whole matrix, exact top-k."""
    vectors_t = np.ascontiguousarray(vectors.T)
    return lambda queries, k: top_n(queries @ vectors_t, k)


def candidates() -> tuple[list[Candidate], list[str]]:
    """The index configurations whose libraries are installed, and notes on those that are
    not."""
    found: list[Candidate] = [
        Candidate("int8-scan", {"margin": margin}, _int8_scan(margin)) for margin in SCAN_MARGINS]
    notes: list[str] = []
    try:
        import faiss
    except ImportError:
        notes.append("faiss-cpu not installed: skipped")
    else:
        faiss.omp_set_num_threads(1)
        for m, ef in ((32, 256), (32, 400)):
            found.append(Candidate("faiss-hnsw", {"M": m, "efSearch": ef},
                                   _faiss_hnsw(faiss, m, ef)))
        for nlist, nprobe in ((256, 32), (1024, 64)):
            found.append(Candidate("faiss-ivf", {"nlist": nlist, "nprobe": nprobe},
                                   _faiss_ivf(faiss, nlist, nprobe)))
    try:
        from usearch.index import Index
    except ImportError:
        notes.append("usearch not installed: skipped")
    else:
        for connectivity, expansion in ((16, 256), (32, 400)):
            found.append(Candidate("usearch-hnsw",
                                   {"connectivity": connectivity, "expansion_search": expansion},
                                   _usearch(Index, connectivity, expansion)))
    return found, notes


SCAN_MARGINS = (0, 50, 100)  # the 8-bit scan's rows scored again beyond k (``model/scan``)
SHIPPED_EF_SEARCH = (200, 256, 400)  # the shipped graph's search beam widths measured


def shipped_candidates(index: Any, ef_values: Sequence[int] = SHIPPED_EF_SEARCH
                       ) -> list[Candidate]:
    """The model artifact's own graph (``model/ann.AnnIndex``) at several beam widths: built
    by the trainer, so nothing is built here."""
    from stream_rec.model.ann import AnnIndex

    def at(ef: int) -> Callable[[NDArray[np.float32]], Search]:
        searcher = AnnIndex(index.index, ef)
        return lambda vectors: lambda queries, k: searcher.search(queries, k)[1]

    return [Candidate("shipped-hnsw", {"efSearch": ef}, at(ef)) for ef in ef_values]


def compare(vectors: NDArray[np.float32], queries: NDArray[np.float32], k: int,
            indexes: Sequence[Candidate], batch: int = 256) -> list[dict[str, Any]]:
    """One row per index (exact first): build seconds, CPU microseconds per query (batches of
    ``batch``, one thread) and recall@k against exact."""
    k = min(k, len(vectors))
    rows: list[dict[str, Any]] = []
    exact = exact_search(vectors)
    cpu = time.process_time()
    truth = np.vstack([exact(queries[i:i + batch], k) for i in range(0, len(queries), batch)])
    rows.append({"library": "exact", "params": {}, "build_s": 0.0,
                 "us_per_query": _per_query(cpu, len(queries)), "recall_at_k": 1.0})
    for candidate in indexes:
        start = time.perf_counter()
        search = candidate.build(vectors)
        built = time.perf_counter() - start
        cpu = time.process_time()
        found = np.vstack([search(queries[i:i + batch], k)
                           for i in range(0, len(queries), batch)])
        rows.append({"library": candidate.library, "params": candidate.params,
                     "build_s": round(built, 2), "us_per_query": _per_query(cpu, len(queries)),
                     "recall_at_k": round(recall_at_k(found, truth), 4)})
    return rows


def _per_query(cpu_start: float, n: int) -> float:
    return round((time.process_time() - cpu_start) / max(n, 1) * 1e6, 1)


def _int8_scan(margin: int) -> Callable[[NDArray[np.float32]], Search]:
    def build(vectors: NDArray[np.float32]) -> Search:
        from stream_rec.model.scan import Int8Scan

        scan = Int8Scan(vectors, margin)
        return lambda queries, k: scan.search(queries, k)[1]
    return build


def _faiss_hnsw(faiss: Any, m: int, ef: int) -> Callable[[NDArray[np.float32]], Search]:
    def build(vectors: NDArray[np.float32]) -> Search:
        index = faiss.IndexHNSWFlat(vectors.shape[1], m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 200
        index.add(vectors)
        index.hnsw.efSearch = ef
        return lambda queries, k: index.search(queries, k)[1].astype(np.int64)
    return build


def _faiss_ivf(faiss: Any, nlist: int, nprobe: int) -> Callable[[NDArray[np.float32]], Search]:
    def build(vectors: NDArray[np.float32]) -> Search:
        quantizer = faiss.IndexFlatIP(vectors.shape[1])
        index = faiss.IndexIVFFlat(quantizer, vectors.shape[1], nlist,
                                   faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.add(vectors)
        index.nprobe = nprobe
        return lambda queries, k: index.search(queries, k)[1].astype(np.int64)
    return build


def _usearch(index_type: Any, connectivity: int, expansion: int
             ) -> Callable[[NDArray[np.float32]], Search]:
    def build(vectors: NDArray[np.float32]) -> Search:
        index = index_type(ndim=vectors.shape[1], metric="ip", dtype="f32",
                           connectivity=connectivity, expansion_add=128,
                           expansion_search=expansion)
        index.add(np.arange(len(vectors)), vectors, threads=1)
        return lambda queries, k: np.asarray(index.search(queries, k, threads=1).keys,
                                             dtype=np.int64)
    return build
