"""Approximate retrieval: an HNSW graph over a model's retrieval rows, shipped in its artifact.

Exact retrieval is one matrix product with the whole catalog, linear in its size: the best
choice at tens of thousands of items (``docs/performance.md``, *Approximate retrieval*), about
four milliseconds a shopper at a million. A graph index (faiss HNSW, inner
product) finds the top few hundred by visiting a few thousand rows whatever the catalog's size.

The trainer builds it once over ``item_embeddings.npy`` (the rows whose product with the
shopper's query is the model's score) and lists it in the manifest like every other file, so
the worker loads a verified graph in seconds instead of building one for minutes. The graph
covers the model's vocabulary only: items listed after training (catalog-only positions) are
few and change as the stream teaches them, so retrieval scores them exactly beside the graph
(``serving/candidates.IndexRetrieval``); they join the graph at the next training.

faiss is optional (``pip install 'stream-rec[ann]'``): without it the trainer builds no index
and a worker given an artifact with one retrieves exactly, saying so once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)

ANN_INDEX_FILE = "ann_index.faiss"
# The graphs the trainer can build (setting ``retrieval_index_kind``): name -> (graph degree M,
# rows stored as 8-bit codes). "hnsw-flat" keeps the rows as float32 (recall@200 0.996 at
# efSearch 256 on the 1M synthetic catalog, ~400 bytes an item at width 32); "hnsw-sq8"
# half the links and a quarter of the row bytes (0.984, ~176 bytes an item, a third less
# search CPU). The pool is scored exactly afterwards either way: on diginetica both gave the
# exact path's P@20 and MRR@20 (docs/performance.md), so the smaller one is the default.
INDEX_KINDS: dict[str, tuple[int, bool]] = {"hnsw-flat": (32, False), "hnsw-sq8": (16, True)}
DEFAULT_KIND = "hnsw-sq8"
EF_CONSTRUCTION = 128  # build-time beam: costs build time, not search time


def faiss_module() -> Any | None:
    """The faiss module, or None when it is not installed."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def build_index(vectors: NDArray[np.float32], kind: str = DEFAULT_KIND,
                ef_construction: int = EF_CONSTRUCTION, threads: int = 0,
                progress: Callable[[str], None] | None = None) -> Any:
    """An HNSW inner-product graph (``INDEX_KINDS``) over the rows of ``vectors`` (id = row).
    ``threads`` 0 leaves faiss's default (every core): the trainer builds it, the worker never
    does. ``progress`` hears how far it got, every 100,000 rows."""
    faiss = faiss_module()
    if faiss is None:
        raise RuntimeError("faiss is not installed (pip install 'stream-rec[ann]')")
    if threads:
        faiss.omp_set_num_threads(threads)
    m, quantised = INDEX_KINDS[kind]
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if quantised:
        index = faiss.IndexHNSWSQ(vectors.shape[1], faiss.ScalarQuantizer.QT_8bit, m,
                                  faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)  # each dimension's range, for the 8-bit codes
    else:
        index = faiss.IndexHNSWFlat(vectors.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    # Rows in chunks, so the caller can follow a build that takes minutes at a million items.
    started = time.perf_counter()
    for lo in range(0, len(vectors), 100_000):
        index.add(vectors[lo:lo + 100_000])
        if progress is not None and len(vectors) > 100_000:
            progress(f"  indexed {min(lo + 100_000, len(vectors)):,}/{len(vectors):,} items "
                     f"({time.perf_counter() - started:.0f} s)")
    return index


def write_index(folder: Path, vectors: NDArray[np.float32], kind: str = DEFAULT_KIND,
                progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Build the graph over ``vectors`` into ``folder``/ANN_INDEX_FILE; what the manifest
    says about it (``model.ann``)."""
    started = time.perf_counter()
    index = build_index(vectors, kind, progress=progress)
    faiss = faiss_module()
    assert faiss is not None  # build_index raised otherwise
    faiss.write_index(index, str(folder / ANN_INDEX_FILE))
    return {"library": "faiss", "kind": kind, "M": INDEX_KINDS[kind][0],
            "ef_construction": EF_CONSTRUCTION, "n_items": int(len(vectors)),
            "build_s": round(time.perf_counter() - started, 1)}


def add_index(folder: Path, manifest: dict[str, Any], kind: str = DEFAULT_KIND,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Build the graph over the artifact's retrieval rows in ``folder`` and list it in the
    manifest (written again, checksums and all); the new manifest."""
    from stream_rec.model.artifact import ITEM_EMBEDDINGS_FILE, write_manifest

    vectors = np.load(folder / ITEM_EMBEDDINGS_FILE, allow_pickle=False)
    info = write_index(folder, vectors, kind, progress)
    model = {**manifest.get("model", {}), "ann": info}
    return write_manifest(folder, {**manifest, "model": model},
                          files=[*manifest.get("files", {}), ANN_INDEX_FILE])


class VocabSearch(Protocol):
    """What retrieval asks of a search over the model's vocabulary: the shipped graph
    (``AnnIndex``) or the 8-bit scan (``model/scan.Int8Scan``)."""

    @property
    def n_items(self) -> int: ...

    def describe(self) -> str: ...

    def search(self, queries: NDArray[np.float32], k: int,
               allowed: NDArray[np.uint8] | None = None
               ) -> tuple[NDArray[np.float32], NDArray[np.int64]]: ...


@dataclass
class AnnIndex:
    """A loaded graph: ``search`` returns the best rows of the model's vocabulary."""

    index: Any
    ef_search: int
    kind: str = "hnsw"

    def describe(self) -> str:
        """How retrieval searches, for the log."""
        return f"through its {self.kind} graph of {self.n_items:,} items"

    @property
    def n_items(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: NDArray[np.float32], k: int,
               allowed: NDArray[np.uint8] | None = None
               ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """(B, k) scores (inner products) and rows, best first; row -1 (score -inf) where
        fewer than k were found. ``allowed``: a little-endian bitmap of the rows that may be
        returned (``allowed_bitmap``); None allows all."""
        faiss = faiss_module()
        assert faiss is not None  # an index was loaded
        params = faiss.SearchParametersHNSW()
        params.efSearch = max(self.ef_search, k)
        selector = None
        if allowed is not None:
            selector = faiss.IDSelectorBitmap(self.n_items, faiss.swig_ptr(allowed))
            params.sel = selector
        scores, rows = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k,
                                         params=params)
        del selector  # only now: faiss holds a raw pointer to it (and to ``allowed``)
        scores[rows < 0] = -np.inf
        return scores, rows.astype(np.int64, copy=False)


def allowed_bitmap(blocked: NDArray[np.int64], n_items: int) -> NDArray[np.uint8]:
    """The bitmap ``AnnIndex.search`` takes: every row of ``0..n_items-1`` but ``blocked``."""
    allowed = np.ones(n_items, dtype=bool)
    allowed[blocked[blocked < n_items]] = False
    return np.packbits(allowed, bitorder="little")


def load_index(folder: Path, manifest: dict[str, Any], n_items: int, width: int,
               ef_search: int) -> AnnIndex | None:
    """The artifact's graph (its checksum is verified with the folder), or None when it has
    none, or faiss is missing (logged: the worker then retrieves exactly)."""
    if ANN_INDEX_FILE not in manifest.get("files", {}):
        return None
    faiss = faiss_module()
    if faiss is None:
        log.warning("%s has an approximate-retrieval index but faiss is not installed "
                    "(pip install 'stream-rec[ann]'): retrieving exactly", folder)
        return None
    # Mapped from the file (as the item vectors are, ``model/artifact``): codes and links are
    # file pages the kernel can drop under memory pressure, ~20 MB less resident at a million
    # items than a read copy; same results.
    index = faiss.read_index(str(folder / ANN_INDEX_FILE), getattr(faiss, "IO_FLAG_MMAP_IFC", 0))
    if index.ntotal != n_items or index.d != width:
        raise ValueError(f"{folder / ANN_INDEX_FILE} holds {index.ntotal} x {index.d} rows, "
                         f"the model's item vectors are {n_items} x {width}")
    # The worker's CPU budget is one core per process (the BLAS threads setting likewise).
    faiss.omp_set_num_threads(1)
    return AnnIndex(index, ef_search, str(manifest.get("model", {}).get("ann", {})
                                          .get("kind", "hnsw")))
