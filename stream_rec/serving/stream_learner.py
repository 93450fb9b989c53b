"""Vectors for cold items in a served model's space, from what the stream taught.

Per cold item (``stream_rec/core/stream_items.py``) and served model:

- to find it, the weighted mean of its known neighbours' item vectors, normalised like the
  model's own: it sits where the items shoppers view around it sit;
- to score it, the mean of the model's (normalised) shopper queries for the contexts it came
  in: where the model would have moved the item's vector had it been trained on those
  sessions (the neighbours' mean stands in while it has no context). On jdata2018 this scored
  cold items four points of P@20 better than the neighbours' mean;
- its known neighbours' table positions, to find it by what a shopper has just viewed.

An item counts once ``min_observations`` events taught it something.

``StreamLearner`` is the one writer: it feeds the memory from each applied event and, once per
batch, recomputes what changed in every served table (one shopper-tower call for the batch's
new contexts), then replaces each table's snapshot (``ItemTable.stream``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stream_rec.core.state import HistoryEntry
from stream_rec.core.stream_items import Context, StreamItems
from stream_rec.serving.item_table import ItemTable
from stream_rec.serving.stream_vectors import StreamVectors

QUERY_CHUNK = 512  # contexts per shopper-tower call (a new model recomputes them all)


def known_neighbours(neighbours: Mapping[str, float], table: ItemTable
                     ) -> tuple[list[int], list[float]]:
    """Table positions and weights of the neighbours that ``table``'s model knows."""
    get, n_vocab = table.position.get, table.n_vocab
    positions: list[int] = []
    weights: list[float] = []
    for item_id, weight in neighbours.items():
        pos = get(item_id, n_vocab)
        if pos < n_vocab:
            positions.append(pos)
            weights.append(weight)
    return positions, weights


def stream_vector(neighbours: Mapping[str, float], table: ItemTable
                  ) -> NDArray[np.float32] | None:
    """The weighted mean of the neighbours' vectors that ``table``'s model knows, unit length;
    None when it knows none of them."""
    positions, weights = known_neighbours(neighbours, table)
    if not positions:
        return None
    return _unit(np.asarray(weights, dtype=np.float32) @ table.model.item_vectors[positions])


def _unit(vector: NDArray[np.float32]) -> NDArray[np.float32] | None:
    norm = float(np.linalg.norm(vector))
    return None if norm == 0.0 or not np.isfinite(norm) else (vector / norm).astype(np.float32)


class _TableVectors:
    """One table's learnt vectors, kept between batches in slots (the writer's side), so that
    a snapshot is a few numpy gathers however many items changed."""

    def __init__(self, table: ItemTable, catalog: Mapping[str, Any], max_neighbours: int
                 ) -> None:
        self.table = table
        self.catalog = catalog  # attributes of the items in contexts, for the model's queries
        self.dim = table.model.item_vectors.shape[1]
        self.width = max_neighbours
        self.slot: dict[str, int] = {}
        self.free: list[int] = []
        self.vectors = np.zeros((0, self.dim), dtype=np.float32)
        self.scoring = np.zeros((0, self.dim), dtype=np.float32)
        # Table position of each slot's item; -1 for a free slot or an item not in the table
        self.position = np.zeros(0, dtype=np.int64)
        self.neighbours = np.zeros((0, self.width), dtype=np.int64)  # positions, -1 padded
        self.weights = np.zeros((0, self.width), dtype=np.float32)
        # item -> context number -> the model's unit query for it (computed once per context)
        self.queries: dict[str, dict[int, NDArray[np.float32]]] = {}

    def update(self, memory: StreamItems, item_ids: Iterable[str], min_observations: int
               ) -> None:
        counted = []
        for item_id in item_ids:
            record = memory.get(item_id)
            if record is None or record.observations < min_observations:
                self._drop(item_id)
            else:
                counted.append(item_id)
        self._add_queries(memory, counted)
        for item_id in counted:
            record = memory.get(item_id)
            assert record is not None
            positions, weights = known_neighbours(record.neighbours, self.table)
            vector = None if not positions else _unit(
                np.asarray(weights, dtype=np.float32) @ self.table.model.item_vectors[positions])
            known = self.queries.get(item_id, {})
            scoring = _unit(np.mean(list(known.values()), axis=0)) if known else vector
            if scoring is None:
                self._drop(item_id)
                continue
            slot = self.slot.get(item_id)
            if slot is None:
                slot = self.slot[item_id] = self.free.pop() if self.free else self._grow()
            # With no known neighbour, the scoring vector stands in to find it by.
            self.vectors[slot] = scoring if vector is None else vector
            self.scoring[slot] = scoring
            self.position[slot] = self._position(item_id)
            self.neighbours[slot] = -1
            self.weights[slot] = 0.0
            count = min(len(positions), self.width)
            self.neighbours[slot, :count] = positions[:count]
            self.weights[slot, :count] = weights[:count]

    def _add_queries(self, memory: StreamItems, item_ids: Sequence[str]) -> None:
        """The model's queries for the items' contexts it has not seen yet, in one call; the
        queries of contexts the memory no longer keeps are dropped."""
        pending: list[tuple[str, int, Context]] = []
        for item_id in item_ids:
            record = memory.get(item_id)
            assert record is not None
            known = self.queries.get(item_id, {})
            kept = {number for number, _ in record.contexts}
            self.queries[item_id] = {n: q for n, q in known.items() if n in kept}
            pending += [(item_id, number, context) for number, context in record.contexts
                        if number not in known]
        for start in range(0, len(pending), QUERY_CHUNK):
            part = pending[start:start + QUERY_CHUNK]
            queries = self.table.model.query_vectors([context for _, _, context in part],
                                                     self.catalog)
            for (item_id, number, _), query in zip(part, queries, strict=True):
                unit = _unit(query)
                if unit is not None:
                    self.queries[item_id][number] = unit

    def _drop(self, item_id: str) -> None:
        self.queries.pop(item_id, None)
        slot = self.slot.pop(item_id, None)
        if slot is not None:
            self.position[slot] = -1
            self.free.append(slot)

    def place(self, item_ids: Iterable[str]) -> None:
        """Look the items' table positions up again (their catalog entry may have come)."""
        for item_id in item_ids:
            slot = self.slot.get(item_id)
            if slot is not None:
                self.position[slot] = self._position(item_id)

    def _position(self, item_id: str) -> int:
        # Only catalog-only items: an item the model knows has its own vector, and one with
        # no catalog entry yet has no table position to recommend it by.
        pos = self.table.position.get(item_id, -1)
        return pos if pos >= self.table.n_vocab else -1

    def _grow(self) -> int:
        used = len(self.position)
        more = max(16, used)
        self.vectors = np.concatenate([self.vectors, np.zeros((more, self.dim), np.float32)])
        self.scoring = np.concatenate([self.scoring, np.zeros((more, self.dim), np.float32)])
        self.position = np.concatenate([self.position, np.full(more, -1, np.int64)])
        self.neighbours = np.concatenate(
            [self.neighbours, np.full((more, self.width), -1, np.int64)])
        self.weights = np.concatenate([self.weights, np.zeros((more, self.width), np.float32)])
        self.free.extend(range(used + more - 1, used, -1))
        return used

    def snapshot(self) -> StreamVectors:
        """The placed items by ascending table position: fresh arrays, never shared."""
        slots = np.flatnonzero(self.position >= 0)
        slots = slots[np.argsort(self.position[slots], kind="stable")]
        neighbours = self.neighbours[slots]
        rows, places = np.nonzero(neighbours >= 0)
        by_neighbour = np.argsort(neighbours[rows, places], kind="stable")
        rows, places = rows[by_neighbour], places[by_neighbour]
        return StreamVectors(self.position[slots], self.vectors[slots], self.scoring[slots],
                             neighbours[rows, places], rows.astype(np.int64),
                             self.weights[slots][rows, places])


class StreamLearner:
    """Feeds the memory from events and keeps every served table's snapshot current.

    Runs where events are applied (the worker's event loop); the tables' ``stream``
    attributes are what the list-making side reads.
    """

    def __init__(self, memory: StreamItems, min_observations: int = 1,
                 catalog: Mapping[str, Any] | None = None) -> None:
        self.memory = memory
        self.min_observations = min_observations
        self.catalog: Mapping[str, Any] = {} if catalog is None else catalog
        self._tables: dict[int, _TableVectors] = {}  # by id() of the table
        self._placed: set[str] = set()  # items whose catalog entry came since the last refresh

    def observe(self, history: Sequence[HistoryEntry], item_id: str, ts_ms: int,
                table: ItemTable) -> None:
        """One applied event; ``table`` is the main model's: what it knows is not cold."""
        get, n_vocab = table.position.get, table.n_vocab
        self.memory.observe(history, item_id, ts_ms,
                            lambda other: get(other, n_vocab) < n_vocab)

    def placed(self, item_id: str) -> None:
        """A catalog entry arrived: the item may now have a table position for its vector."""
        if item_id in self.memory:
            self._placed.add(item_id)

    def serve(self, main: ItemTable | None, tables: Sequence[ItemTable]) -> None:
        """The tables served from now on (main model's first, if any): items the main model
        knows leave the memory, and a table not served before gets every vector computed in
        its model's space."""
        if main is not None:
            get, n_vocab = main.position.get, main.n_vocab
            self.memory.forget_known(lambda item_id: get(item_id, n_vocab) < n_vocab)
        self.refresh()  # tables still served drop what left and catch up on what changed
        everything = self.memory.item_ids()
        served: dict[int, _TableVectors] = {}
        for table in tables:
            current = self._tables.get(id(table))
            if current is None or current.table is not table:
                current = _TableVectors(table, self.catalog, self.memory.max_neighbours)
                current.update(self.memory, everything, self.min_observations)
                table.stream = current.snapshot()
            served[id(table)] = current
        self._tables = served

    def refresh(self) -> None:
        """Recompute the vectors of the items that changed, in every table (once per batch)."""
        changed = self.memory.take_changed()
        placed, self._placed = self._placed, set()
        if not changed and not placed:
            return
        for current in self._tables.values():
            current.update(self.memory, changed, self.min_observations)
            current.place(placed)
            current.table.stream = current.snapshot()


def learner_for(max_items: int, max_neighbours: int, min_observations: int,
                catalog: Mapping[str, Any]) -> StreamLearner:
    """A learner with an empty memory of the given bounds; ``catalog`` (read, never changed)
    gives the attributes of the items in contexts."""
    return StreamLearner(StreamItems(max_items, max_neighbours), min_observations, catalog)

