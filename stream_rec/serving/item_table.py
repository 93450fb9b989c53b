"""Per-item arrays for the serving hot path, indexed by one integer position per item.

Positions ``0..N-1`` are the model's vocabulary (so they line up with its item vectors);
items only the catalog knows are appended after them as they arrive. Everything the pipeline
needs per candidate — model input index, attribute indices, category code, tie-break key,
availability, vector — is a gather from these arrays, so no Python loop runs per candidate.
The arrays are built with the model's own feature code (``FeatureBuilder``), the code offline
evaluation uses, so online and offline inputs cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

from stream_rec.core.catalog import CatalogItem
from stream_rec.model import ServedModel
from stream_rec.rerank import stable_item_keys
from stream_rec.rerank.pool_vectors import PoolVectors
from stream_rec.serving.stream_vectors import StreamVectors, no_stream_vectors


class ItemTable:
    """The model's items and the catalog-only ones, as arrays indexed by position."""

    def __init__(self, model: ServedModel, catalog: dict[str, CatalogItem],
                 delisted: Iterable[str] = ()) -> None:
        self.model = model
        vocab = [str(i) for i in model.item_ids]
        self.ids: list[str] = list(vocab)
        self.position: dict[str, int] = {item: pos for pos, item in enumerate(vocab)}
        self.n_vocab = len(vocab)
        features = model.features
        self.model_index = model.artifact.item_index(vocab)
        self.attributes = features.attributes_of(vocab, catalog)
        self.keys = stable_item_keys(vocab)
        self.category = np.full(len(vocab), -1, dtype=np.int64)
        self.unavailable = np.zeros(len(vocab), dtype=bool)
        self.category_codes: dict[str, int] = {}
        self._available: tuple[NDArray[np.int64], NDArray[np.float32]] | None = None
        self._norms: tuple[object, NDArray[np.float32]] | None = None
        self._id_array: NDArray[np.object_] | None = None
        self._vectors_and_zero: NDArray[np.float32] | None = None
        self._new_items: list[int] = []  # catalog-only positions, oldest first
        # Catalog-only items join retrieval when the model can build their rows from their
        # attributes (fused retrieval with the content branch: ServedModel.catalog_rows).
        self._catalog_retrieval = model.artifact.content_tables is not None
        # What the live stream taught about catalog-only items (``stream_learner.py``):
        # replaced whole by the learner, never changed in place (``stream_vectors.py``).
        self.stream: StreamVectors = no_stream_vectors(model.item_vectors.shape[1])
        for item in catalog.values():
            self.upsert(item, catalog)
        # A delisted item has left ``catalog``: only this says the model's copy must not come
        # back when a model is loaded after the delisting.
        for item_id in delisted:
            self.delist(item_id)

    # -- catalog changes ---------------------------------------------------------------------
    def upsert(self, item: CatalogItem, catalog: dict[str, CatalogItem]) -> None:
        pos = self.position.get(item.item_id)
        if pos is None:
            pos = self._append(item, catalog)
        elif pos >= self.n_vocab:
            self.attributes[pos] = self.model.features.attributes_of([item.item_id], catalog)[0]
            self._catalog_changed()
        self.category[pos] = self._code(item.category)
        self._set_unavailable(pos, not item.in_stock)

    def delist(self, item_id: str) -> None:
        pos = self.position.get(item_id)
        if pos is not None:
            self._set_unavailable(pos, True)

    def _append(self, item: CatalogItem, catalog: dict[str, CatalogItem]) -> int:
        pos = len(self.ids)
        self.ids.append(item.item_id)
        self.position[item.item_id] = pos
        oov = self.model.artifact.item_index([item.item_id])
        self.model_index = np.concatenate([self.model_index, oov])
        attrs = self.model.features.attributes_of([item.item_id], catalog)
        self.attributes = np.concatenate([self.attributes, attrs])
        self.keys = np.concatenate([self.keys, stable_item_keys([item.item_id])])
        self.category = np.append(self.category, -1)
        self.unavailable = np.append(self.unavailable, False)
        self._new_items.append(pos)
        self._catalog_changed()
        return pos

    def _set_unavailable(self, pos: int, gone: bool) -> None:
        if self.unavailable[pos] != gone:
            self.unavailable[pos] = gone
            if pos < self.n_vocab:
                self._available = None
            else:
                self._catalog_changed()

    def _catalog_changed(self) -> None:
        """A catalog-only item came, went or changed: rebuild the retrieval matrix at the next
        lookup (once per batch however many changed) when catalog-only items are in it."""
        if self._catalog_retrieval:
            self._available = None

    def _code(self, category: str | None) -> int:
        if category is None:
            return -1
        return self.category_codes.setdefault(category, len(self.category_codes))

    # -- lookups for the hot path ----------------------------------------------------------
    def available_vocab(self) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Positions that may be recommended, and their retrieval vectors as a contiguous
        (D, N) matrix for the retrieval matmul (rebuilt only after a change): the vocabulary,
        and catalog-only items too when the model builds their rows from their attributes.

        Stored transposed: ``queries @ vectors_t`` ran ~8 % faster than ``queries @ vectors.T``
        on a (D, N) view (OpenBLAS, 43,097 x 100, batches of 32 to 256)."""
        if self._available is None:
            positions = np.flatnonzero(~self.unavailable[: self.n_vocab])
            vectors = self.model.item_vectors[positions]
            if self._catalog_retrieval and len(self.ids) > self.n_vocab:
                extra = self.n_vocab + np.flatnonzero(~self.unavailable[self.n_vocab:])
                rows = self.model.catalog_rows(self.attributes[extra])
                if rows is not None and len(extra):
                    positions = np.concatenate([positions, extra])
                    vectors = np.concatenate([vectors, rows])
            self._available = (positions, np.ascontiguousarray(vectors.T))
        return self._available

    def available_norms(self) -> NDArray[np.float32]:
        """The norms of ``available_vocab``'s vectors (1 where a vector is zero), for cosine
        similarity; computed once per availability change."""
        available = self.available_vocab()
        if self._norms is None or self._norms[0] is not available:
            norms = np.linalg.norm(available[1], axis=0).astype(np.float32)
            norms[norms == 0] = 1.0
            self._norms = (available, norms)
        return self._norms[1]

    def new_items(self, n: int) -> list[int]:
        """The n newest catalog-only items that may be recommended, newest first."""
        out: list[int] = []
        for pos in reversed(self._new_items):
            if not self.unavailable[pos]:
                out.append(pos)
                if len(out) == n:
                    break
        return out

    def id_array(self) -> NDArray[np.object_]:
        """The ids as a numpy object array, for gathering many at once (rebuilt after an item
        is appended)."""
        if self._id_array is None or len(self._id_array) != len(self.ids):
            self._id_array = np.array(self.ids, dtype=object)
        return self._id_array

    def positions(self, item_ids: Iterable[str]) -> list[int]:
        """Positions of the ids this table knows (unknown ids are skipped)."""
        get = self.position.get
        return [p for p in (get(i) for i in item_ids) if p is not None]

    def vectors(self, positions: NDArray[np.int64]) -> PoolVectors:
        """Item vectors for diversity, gathered when read; catalog-only items (and padding)
        get zeros."""
        if self._vectors_and_zero is None:  # the model's vectors and one zero row after them
            vectors = self.model.item_vectors
            self._vectors_and_zero = np.concatenate(
                [vectors, np.zeros((1, vectors.shape[1]), dtype=vectors.dtype)])
        inside = (positions >= 0) & (positions < self.n_vocab)
        return PoolVectors(self._vectors_and_zero, np.where(inside, positions, self.n_vocab))
