"""What the stream taught about cold items, as one immutable snapshot per item table.

Items the served model has never seen get vectors from what the live stream taught
(``stream_learner.py``): one among the model's item vectors (where their neighbours are) to
find them, one among its shopper queries (where the shoppers who came to them were) to score
them, and their neighbours themselves, to find them by what a shopper has just viewed. The
lists may be made on a helper thread while the event loop learns, so a table's
``StreamVectors`` is replaced whole, never changed in place: a reader holds a consistent
snapshot however the learning goes on meanwhile. Retrieval and scoring each read it once; if
it is replaced between the two (a batch's lists made while the next batch is taken in), a
cold candidate the newer snapshot lacks keeps the model's own score, and nothing else changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class StreamVectors:
    """Table positions of the cold items with learnt vectors, ascending; per item its vector
    among the model's item vectors and its collaborative vector for scoring (both unit
    length); and who its neighbours are: (table position of a known neighbour, row of the
    cold item, weight) triples sorted by the neighbour's position."""

    positions: NDArray[np.int64]
    vectors: NDArray[np.float32]  # (n, D): retrieval
    scoring: NDArray[np.float32]  # (n, D): the model's collaborative term
    neighbour_positions: NDArray[np.int64]
    neighbour_rows: NDArray[np.int64]
    neighbour_weights: NDArray[np.float32]

    def __len__(self) -> int:
        return len(self.positions)

    def rows_of(self, positions: NDArray[np.int64]) -> NDArray[np.int64]:
        """Row of each table position in ``vectors`` (any shape), -1 where it has none."""
        if not len(self.positions):
            return np.full(np.shape(positions), -1, dtype=np.int64)
        rows = np.searchsorted(self.positions, positions)
        rows = np.minimum(rows, len(self.positions) - 1)
        return np.where(self.positions[rows] == positions, rows, -1).astype(np.int64)


    def co_occurrence(self, recent: NDArray[np.int64], weights: NDArray[np.float32]
                      ) -> NDArray[np.float32]:
        """(B, n): per shopper and cold item, the weights of the item's neighbours among the
        shopper's latest items (``recent``: (B, W) table positions, -1 padded; ``weights``:
        (W,), what each place in ``recent`` counts)."""
        out = np.zeros((len(recent), len(self.positions)), dtype=np.float32)
        index = self.neighbour_positions
        starts = np.searchsorted(index, recent, side="left")
        ends = np.searchsorted(index, recent, side="right")
        counts = np.where(recent >= 0, ends - starts, 0).ravel()
        if not counts.any():
            return out
        # One entry per (shopper, latest item, neighbour triple) that matches: the ranges of
        # the sorted index that each latest item spans, laid end to end.
        entry = np.repeat(starts.ravel() - np.cumsum(counts) + counts, counts) + np.arange(
            counts.sum())
        shopper = np.repeat(np.arange(recent.size) // recent.shape[1], counts)
        place = np.repeat(np.arange(recent.size) % recent.shape[1], counts)
        np.add.at(out, (shopper, self.neighbour_rows[entry]),
                  weights[place] * self.neighbour_weights[entry])
        return out


def no_stream_vectors(dim: int) -> StreamVectors:
    """The snapshot of a table that has learnt nothing yet."""
    no_rows = np.empty(0, dtype=np.int64)
    nothing = np.empty((0, dim), dtype=np.float32)
    return StreamVectors(no_rows, nothing, nothing, no_rows, no_rows,
                         np.empty(0, dtype=np.float32))
