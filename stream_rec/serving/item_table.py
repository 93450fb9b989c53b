"""Per-item arrays for the serving hot path, indexed by one integer position per item.

Positions ``0..N-1`` are the model's vocabulary (so they line up with its item vectors);
items only the catalog knows are appended after them as they arrive. Everything the pipeline
needs per candidate — model input index, attribute indices, category code, tie-break key,
availability, vector — is a gather from these arrays, so no Python loop runs per candidate.
Catalog-only rows are built with the model's own feature code (``FeatureBuilder``), the code
offline evaluation uses; the vocabulary's rows are the artifact's, which that code returns
for them (tests hold the two together), so online and offline inputs cannot drift apart.

The catalog changes all the time and the table is large (a million items of 100 floats is
400 MB), so no change copies it whole: arrays grow by a quarter of their size when full,
retrieval's (D, N) matrix gains columns for new items in place, and an item that goes out of
stock is masked in the retrieval scores instead of being cut out of the matrix.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

import numpy as np
from numpy.typing import NDArray

from stream_rec.core.catalog import CatalogItem
from stream_rec.model import ServedModel
from stream_rec.model.ann import allowed_bitmap
from stream_rec.model.artifact import FIRST_ITEM_INDEX, OOV_INDEX
from stream_rec.rerank import stable_item_keys
from stream_rec.rerank.pool_vectors import PoolVectors
from stream_rec.serving.stream_vectors import StreamVectors, no_stream_vectors

_T = TypeVar("_T")


class Positions:
    """Raw id -> position: the model's vocabulary (its artifact's own map, shared with every
    table of that model and never changed) and the catalog-only items appended after it.
    A table used to copy the vocabulary's map to extend it: ~40 MB at a million items, twice
    during a model swap."""

    __slots__ = ("_vocab", "_more")

    def __init__(self, vocab: Mapping[str, int]) -> None:
        self._vocab = vocab
        self._more: dict[str, int] = {}

    @overload
    def get(self, item_id: str) -> int | None: ...

    @overload
    def get(self, item_id: str, default: _T) -> int | _T: ...

    def get(self, item_id: str, default: object = None) -> object:
        pos = self._vocab.get(item_id)
        return self._more.get(item_id, default) if pos is None else pos

    def __getitem__(self, item_id: str) -> int:
        pos = self.get(item_id)
        if pos is None:
            raise KeyError(item_id)
        return pos

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._vocab or item_id in self._more

    def __setitem__(self, item_id: str, pos: int) -> None:
        if item_id in self._vocab:  # a vocabulary item keeps its row: it is never appended
            raise ValueError(f"{item_id!r} is in the model's vocabulary")
        self._more[item_id] = pos

    def __len__(self) -> int:
        return len(self._vocab) + len(self._more)


@dataclass
class _Columns:
    """Retrieval columns of positions ``first..``, transposed, in a buffer with room to grow."""

    first: int
    buffer: NDArray[np.float32] | None = None
    stale: list[int] = field(default_factory=list)  # catalog-only positions to write again
    norms: NDArray[np.float32] | None = None


class ItemTable:
    """The model's items and the catalog-only ones, as arrays indexed by position."""

    def __init__(self, model: ServedModel, catalog: dict[str, CatalogItem],
                 delisted: Iterable[str] = ()) -> None:
        self.model = model
        vocab = model.artifact.item_ids
        self.ids: list[str] = list(vocab)
        self.position = Positions(model.artifact.position_map())
        self.n_vocab = n = len(vocab)
        # Each per-position array is a view of the first len(ids) rows of a buffer that
        # grows by a quarter when full, so appending catalog-only items costs amortised O(1)
        # each. (Doubling gave a million-item table a million free rows of every array, ~50
        # MB, for its first catalog-only item, which a swap's new table always meets.)
        self._buffers: dict[str, NDArray[Any]] = {}
        # Position p < n is the model's item p: its model index is p + FIRST_ITEM_INDEX and its
        # attributes the artifact's (``FeatureBuilder.attributes_of`` for a known item), so
        # neither needs a lookup per id. Indices fit 32 bits (the scorer feeds them to the
        # model as int64): 20 MB less per table at a million items.
        self.model_index = self._start(
            "model_index", np.arange(FIRST_ITEM_INDEX, FIRST_ITEM_INDEX + n, dtype=np.int32))
        self.attributes = self._start(
            "attributes", np.array(model.artifact.item_attributes, dtype=np.int32))
        self.keys = self._start("keys", stable_item_keys(vocab))
        self.category = self._start("category", np.full(n, -1, dtype=np.int32))
        self.unavailable = self._start("unavailable", np.zeros(n, dtype=bool))
        self.category_codes: dict[str, int] = {}
        # Retrieval's matrix, column p = position p (``retrieval_matrix``), and the catalog-only
        # items' columns alone (``catalog_matrix``: retrieval through the model's graph needs
        # only those), each built at its first lookup; the positions retrieval must not return.
        self._all = _Columns(0)
        self._catalog_only = _Columns(len(vocab))
        self._blocked: NDArray[np.int64] | None = None
        # The approximate-retrieval graph's filter: (bitmap of the vocabulary positions that
        # may be recommended, or None when all may), built at the first lookup after a change
        self._vocab_allowed: tuple[NDArray[np.uint8] | None] | None = None
        self._lock = threading.Lock()
        self._id_array: NDArray[np.object_] | None = None
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

    def _start(self, name: str, values: NDArray[Any]) -> NDArray[Any]:
        self._buffers[name] = values
        return values

    def _grown(self, name: str, row: Any) -> NDArray[Any]:
        """The view of ``name`` with ``row`` appended (the buffer grows when full)."""
        used = len(self.ids) - 1  # the new id is already in ``ids``
        buffer = self._buffers[name]
        if used == len(buffer):
            bigger = np.empty((used + max(used // 4, 1024),) + buffer.shape[1:],
                              dtype=buffer.dtype)
            bigger[:used] = buffer[:used]
            buffer = self._buffers[name] = bigger
        buffer[used] = row
        return buffer[:used + 1]

    # -- catalog changes ---------------------------------------------------------------------
    def upsert(self, item: CatalogItem, catalog: dict[str, CatalogItem]) -> None:
        pos = self.position.get(item.item_id)
        if pos is None:
            pos = self._append(item, catalog)
        elif pos >= self.n_vocab:
            self.attributes[pos] = self.model.features.attributes_of([item.item_id], catalog)[0]
            self._column_changed(pos)
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
        self.model_index = self._grown("model_index", OOV_INDEX)  # the model never saw it
        self.attributes = self._grown(
            "attributes", self.model.features.attributes_of([item.item_id], catalog)[0])
        self.keys = self._grown("keys", stable_item_keys([item.item_id])[0])
        self.category = self._grown("category", np.int64(-1))
        self.unavailable = self._grown("unavailable", np.bool_(False))
        self._new_items.append(pos)
        self._column_changed(pos)
        return pos

    def _column_changed(self, pos: int) -> None:
        if self._catalog_retrieval:  # its retrieval column is rebuilt at the next lookup
            for columns in (self._all, self._catalog_only):
                if columns.buffer is not None:  # (a first build writes every column)
                    columns.stale.append(pos)

    def _set_unavailable(self, pos: int, gone: bool) -> None:
        if self.unavailable[pos] != gone:
            self.unavailable[pos] = gone
            self._blocked = None
            if pos < self.n_vocab:
                self._vocab_allowed = None

    def _code(self, category: str | None) -> int:
        if category is None:
            return -1
        return self.category_codes.setdefault(category, len(self.category_codes))

    # -- lookups for the hot path ----------------------------------------------------------
    def retrieval_matrix(self) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """(D, n) retrieval vectors of positions ``0..n-1``, and the positions among them that
        may not be recommended now (out of stock or delisted: mask their scores). The columns
        are the vocabulary, then the catalog-only items when the model builds their rows from
        their attributes.

        Stored transposed: ``queries @ vectors_t`` ran ~8 % faster than ``queries @ vectors.T``
        on a (D, N) view (OpenBLAS, 43,097 x 100, batches of 32 to 256). Once built, it only
        gains or rewrites the columns of catalog-only items (a batch's changes at once)."""
        with self._lock:  # a batch's thread and an HTTP request may both bring it up to date
            return self._up_to_date(self._all), self._blocked_now()

    def catalog_matrix(self) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """``retrieval_matrix`` without the vocabulary: (D, m) columns of the catalog-only
        positions ``n_vocab..``, and which of them (counted from ``n_vocab``) may not be
        recommended. Retrieval through the model's graph needs only these, so at a million
        items it holds no second copy of the vocabulary's rows."""
        with self._lock:
            columns = self._up_to_date(self._catalog_only)
            blocked = self._blocked_now()
            return columns, blocked[blocked >= self.n_vocab] - self.n_vocab

    def vocab_allowed(self) -> NDArray[np.uint8] | None:
        """The vocabulary positions that may be recommended now, as the bitmap the model's
        approximate-retrieval graph filters its search with (``model/ann.allowed_bitmap``);
        None when every one may."""
        with self._lock:
            if self._vocab_allowed is None:
                blocked = np.flatnonzero(self.unavailable[: self.n_vocab])
                self._vocab_allowed = (
                    allowed_bitmap(blocked, self.n_vocab) if len(blocked) else None,)
            return self._vocab_allowed[0]

    def _blocked_now(self) -> NDArray[np.int64]:
        if self._blocked is None:
            n = len(self.ids) if self._catalog_retrieval else self.n_vocab
            self._blocked = np.flatnonzero(self.unavailable[:n])
        return self._blocked

    def _up_to_date(self, columns: _Columns) -> NDArray[np.float32]:
        """``columns``' buffer brought up to date: grown to every retrievable position, the
        catalog-only columns written since the last lookup rewritten (under the lock)."""
        n = len(self.ids) if self._catalog_retrieval else self.n_vocab
        buffer = columns.buffer
        if buffer is None or n - columns.first > buffer.shape[1]:
            buffer = self._grown_columns(columns, n)
        if columns.stale:
            stale = np.unique(np.asarray(columns.stale, dtype=np.int64))
            stale = stale[(stale < n) & (stale >= columns.first)]
            columns.stale = []
            if len(stale):
                rows = self.model.catalog_rows(self.attributes[stale])
                if rows is not None:
                    buffer[:, stale - columns.first] = rows.T
                    columns.norms = None
        return buffer[:, : n - columns.first]

    def _grown_columns(self, columns: _Columns, n: int) -> NDArray[np.float32]:
        """A (D, capacity) buffer for ``columns`` holding the current ones, with room for as
        many catalog-only items again (at least 1,024)."""
        vectors = self.model.item_vectors
        room = 2 * max(n - self.n_vocab, 512) if self._catalog_retrieval else 0
        buffer = np.zeros((vectors.shape[1], self.n_vocab + room - columns.first),
                          dtype=np.float32)
        old = columns.buffer
        if old is not None:  # a plain copy of the columns built so far (the transpose is slow)
            buffer[:, : old.shape[1]] = old
        else:
            if columns.first == 0:
                buffer[:, : self.n_vocab] = vectors.T
            if self._catalog_retrieval:
                columns.stale = list(range(self.n_vocab, n))
        columns.buffer, columns.norms = buffer, None
        return buffer

    def retrieval_norms(self) -> NDArray[np.float32]:
        """The norms of ``retrieval_matrix``'s columns (1 where a column is zero), for cosine
        similarity; computed again only after columns were written."""
        columns, _ = self.retrieval_matrix()
        norms = self._all.norms
        if norms is None or len(norms) < columns.shape[1]:
            norms = np.linalg.norm(columns, axis=0).astype(np.float32)
            norms[norms == 0] = 1.0
            self._all.norms = norms
        return norms[: columns.shape[1]]

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
        inside = (positions >= 0) & (positions < self.n_vocab)
        return PoolVectors(self.model.item_vectors, np.where(inside, positions, -1))
