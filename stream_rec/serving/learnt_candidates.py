"""Candidates among the cold items the live stream has placed (``ItemTable.stream``).

Retrieval over the model's item vectors never finds an item the model has not seen. This
source finds the ones the stream has taught something about, by what each shopper has just
viewed (their latest ``RECENT_WINDOW`` items, weighted 1, 1/2, 1/3 from the most recent):

- first, the cold items whose neighbours those items are, by the weights of those
  co-occurrences (up to half of the ``n`` asked for);
- then, the cold items whose learnt vectors are closest to the sum of those items' vectors
  (the model's vectors for known items, the learnt ones for cold items).

Why not the model's shopper query, as ``ExactRetrieval`` uses: on jdata2018 (a model trained
with ``--hide-items 0.2``, events replayed one at a time), 12 % of the hidden items' targets
were among the 50 learnt items closest to the shopper's query, 31 % among the 50 closest to
the latest items, 36 % counting the co-occurrences too; putting the co-occurrences first
raised the served P@20 on those targets from 23 % to 27 %. That model leans on attributes;
its collaborative side alone is a weak guide.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from stream_rec.serving.candidates import History, Shoppers
from stream_rec.serving.item_table import ItemTable
from stream_rec.serving.lists import REASON_SIMILAR
from stream_rec.serving.retrieval import top_n
from stream_rec.serving.stream_vectors import StreamVectors

RECENT_WINDOW = 3  # latest history items a shopper is matched by
RECENT_WEIGHTS = np.float32(1.0) / np.arange(1, RECENT_WINDOW + 1, dtype=np.float32)
# Added to the scores of items out of stock or delisted: ``top_n`` needs finite scores, and
# no match adds up to this.
NEVER = np.float32(-1e30)


class LearntColdItems:
    """Up to n cold items per shopper, by what the stream taught about them; they are
    found for the same reason as retrieval's items."""

    reason = REASON_SIMILAR

    def propose(self, queries: NDArray[np.float32], table: ItemTable, n: int
                ) -> NDArray[np.int64]:
        """Without histories: the learnt items closest to the model's shopper queries."""
        learnt = table.stream  # read once: the learner replaces it whole
        open_ = ~table.unavailable[learnt.positions]
        n = min(n, int(open_.sum()))
        if not n:
            return np.empty((len(queries), 0), dtype=np.int64)
        return learnt.positions[open_][top_n(queries @ learnt.vectors[open_].T, n)]

    def propose_for(self, shoppers: Shoppers, table: ItemTable, n: int) -> NDArray[np.int64]:
        """See ``HistorySource.propose_for``."""
        learnt = table.stream
        rows = len(shoppers.histories)
        open_ = ~table.unavailable[learnt.positions]
        n = min(n, int(open_.sum()))
        if not n:
            return np.empty((rows, 0), dtype=np.int64)
        recent = recent_positions(shoppers.histories, table)
        closed = np.where(open_, np.float32(0.0), NEVER)
        # Co-occurrences first: a shopper's own evidence, where there is any.
        together = learnt.co_occurrence(recent, RECENT_WEIGHTS) + closed
        by_together = _best_positive(together, n // 2)
        queries = recent_items_queries(recent, table, learnt)
        nearest = top_n(queries @ learnt.vectors.T + closed, n)
        nearest[~queries.any(axis=1)] = -1  # nothing viewed that the table knows a vector of
        return _merged(by_together, nearest, learnt.positions, n)


def recent_positions(histories: Sequence[History], table: ItemTable,
                     window: int = RECENT_WINDOW) -> NDArray[np.int64]:
    """(B, window): table positions of each shopper's latest items, most recent first; -1
    where there is none (a short history, or an item the table does not know)."""
    get = table.position.get
    out = np.full((len(histories), window), -1, dtype=np.int64)
    for row, history in enumerate(histories):
        for back, (item_id, _) in enumerate(reversed(history[-window:])):
            out[row, back] = get(item_id, -1)
    return out


def recent_items_queries(recent: NDArray[np.int64], table: ItemTable, learnt: StreamVectors
                         ) -> NDArray[np.float32]:
    """(B, D): per shopper, the weighted sum of their latest items' vectors (``recent``, as
    ``recent_positions`` gives them): the model's for items it knows, the learnt ones for
    cold items; items with neither add nothing."""
    vectors = table.model.item_vectors
    out = np.zeros((len(recent), vectors.shape[1]), dtype=np.float32)
    known = (recent >= 0) & (recent < table.n_vocab)
    slots = learnt.rows_of(recent)
    for back in range(recent.shape[1]):
        weight = RECENT_WEIGHTS[back] if back < len(RECENT_WEIGHTS) else 0.0
        rows = np.flatnonzero(known[:, back])
        out[rows] += weight * vectors[recent[rows, back]]
        rows = np.flatnonzero(slots[:, back] >= 0)
        out[rows] += weight * learnt.vectors[slots[rows, back]]
    return out


def _best_positive(scores: NDArray[np.float32], n: int) -> NDArray[np.int64]:
    """(B, n) columns of each row's n best positive scores, best first, -1 padded.

    Most scores are 0 (no co-occurrence), so the positive ones are sorted alone: a partition
    over rows full of ties cost ten times as much."""
    out = np.full((len(scores), n), -1, dtype=np.int64)
    rows, cols = np.nonzero(scores > 0)
    if not n or not len(rows):
        return out
    order = np.lexsort((-scores[rows, cols], rows))  # by row, then best first
    rows, cols = rows[order], cols[order]
    rank = np.arange(len(rows)) - np.searchsorted(rows, rows)  # place within its row
    kept = rank < n
    out[rows[kept], rank[kept]] = cols[kept]
    return out


def _merged(first: NDArray[np.int64], then: NDArray[np.int64], positions: NDArray[np.int64],
            n: int) -> NDArray[np.int64]:
    """(B, n) table positions of each row's ``first`` then ``then`` learnt rows (indices
    into ``positions``, each distinct within itself, -1 for none), an item once, in order;
    -1 padded."""
    repeated = (then[:, :, None] == first[:, None, :]).any(axis=2)
    rows = np.concatenate([first, np.where(repeated, -1, then)], axis=1)
    keep = rows >= 0
    order = np.argsort(~keep, axis=1, kind="stable")[:, :n]  # kept columns first, in order
    picked = np.take_along_axis(rows, order, axis=1)
    return np.where(picked >= 0, positions[np.maximum(picked, 0)], -1)
