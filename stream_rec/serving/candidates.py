"""Candidate sources: the ways items are proposed for a batch of shoppers before scoring.

A source proposes item-table positions for each shopper of a batch, all for one reason.
``gather`` puts the sources' proposals side by side and blanks (-1) an item a shopper already
got from an earlier source, so scores and reasons stay with the first source that found it.
Retrieval over the whole catalog is one source: exact (``ExactRetrieval``), or through the
model's approximate-nearest-neighbour graph when its artifact ships one (``IndexRetrieval``).

A source sees the batch's shoppers as the model's query vectors. One that needs more (what
each shopper has just viewed, as ``learnt_candidates.LearntColdItems`` does) also has
``propose_for``, which ``gather`` calls with the batch's ``Shoppers`` when it has them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from stream_rec.core.trending import Trending
from stream_rec.model.ann import VocabSearch
from stream_rec.serving.item_table import ItemTable
from stream_rec.serving.lists import REASON_NEW, REASON_SIMILAR, REASON_TRENDING
from stream_rec.serving.retrieval import masked_top_n

History = Sequence[tuple[str, int]]  # (raw item id, event type code), oldest first


@dataclass(frozen=True)
class Shoppers:
    """One batch's shoppers: their query vectors and their histories."""

    queries: NDArray[np.float32]  # (B, D), in the space of the table's item vectors
    histories: Sequence[History]


class CandidateSource(Protocol):
    """Proposes up to ``n`` items per shopper; every one for the source's ``reason``."""

    reason: str

    def propose(self, queries: NDArray[np.float32], table: ItemTable, n: int
                ) -> NDArray[np.int64]:
        """(B, m) item-table positions for the B shoppers whose query vectors are given,
        m <= n; -1 where a shopper gets fewer."""
        ...


class HistorySource(CandidateSource, Protocol):
    """A source that reads what the shoppers did, not only their query vectors."""

    def propose_for(self, shoppers: Shoppers, table: ItemTable, n: int) -> NDArray[np.int64]:
        """As ``propose``, for these shoppers."""
        ...


class ExactRetrieval:
    """The n items closest to each shopper's query vector, over the whole available catalog:
    one matmul for the batch and an exact top-n (``retrieval.top_n``)."""

    reason = REASON_SIMILAR

    def propose(self, queries: NDArray[np.float32], table: ItemTable, n: int
                ) -> NDArray[np.int64]:
        """See ``CandidateSource.propose``."""
        vectors_t, blocked = table.retrieval_matrix()
        n = min(n, vectors_t.shape[1] - len(blocked))
        if n <= 0:
            return np.empty((len(queries), 0), dtype=np.int64)
        # The whole catalog, matmuls for the batch; out-of-stock and delisted items are never
        # among the top n. Columns are positions.
        return masked_top_n(queries, vectors_t, blocked, n)


class IndexRetrieval:
    """``ExactRetrieval``'s n items, found through the served model's approximate-retrieval
    graph (``model/ann.py``) when it has one; exactly otherwise.

    The graph holds the model's vocabulary; out-of-stock and delisted items are filtered
    inside its search. Catalog-only items (listed after training, their rows built from
    attributes and what the stream taught) are not in it: they are scored exactly, few as
    they are, and the best n of both kept."""

    reason = REASON_SIMILAR

    def __init__(self) -> None:
        self.exact = ExactRetrieval()

    def propose(self, queries: NDArray[np.float32], table: ItemTable, n: int
                ) -> NDArray[np.int64]:
        """See ``CandidateSource.propose``."""
        index = table.model.ann
        if index is None or n <= 0:
            return self.exact.propose(queries, table, n)
        return index_top_n(index, queries, table, n)[1]


def index_top_n(index: VocabSearch, queries: NDArray[np.float32], table: ItemTable, n: int,
                available_only: bool = True
                ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """(B, <= n) inner products and positions, best first: the vocabulary through the
    model's graph, the catalog-only items exactly; -inf and -1 where fewer were found.
    ``available_only`` leaves out-of-stock and delisted items out."""
    n_vocab = table.n_vocab
    scores, positions = index.search(queries, min(n, n_vocab),
                                     table.vocab_allowed() if available_only else None)
    extra, extra_blocked = table.catalog_matrix()
    if not available_only:
        extra_blocked = extra_blocked[:0]
    m = min(n, extra.shape[1] - len(extra_blocked))
    if m > 0:
        picked = masked_top_n(queries, extra, extra_blocked, m)
        picked_scores = np.einsum("bd,dbm->bm", queries, extra[:, picked])
        scores = np.concatenate([scores, picked_scores], axis=1)
        positions = np.concatenate([positions, picked + n_vocab], axis=1)
        best = np.argsort(-scores, axis=1, kind="stable")[:, :n]
        scores = np.take_along_axis(scores, best, axis=1)
        positions = np.take_along_axis(positions, best, axis=1)
    # (the vocabulary's answer alone is already best first)
    out = np.where(np.isfinite(scores), positions, -1)
    return scores, out


class TrendingItems:
    """The same n trending items for every shopper."""

    reason = REASON_TRENDING

    def __init__(self, trending: Trending) -> None:
        self.trending = trending

    def propose(self, queries: NDArray[np.float32], table: ItemTable, n: int
                ) -> NDArray[np.int64]:
        """See ``CandidateSource.propose``."""
        return _for_everyone(table.positions(i for i, _ in self.trending.top(n)), len(queries))


class NewItems:
    """The n newest catalog items the model has never seen, for every shopper (they score
    through their attributes)."""

    reason = REASON_NEW

    def propose(self, queries: NDArray[np.float32], table: ItemTable, n: int
                ) -> NDArray[np.int64]:
        """See ``CandidateSource.propose``."""
        return _for_everyone(table.new_items(n), len(queries))


def _for_everyone(positions: list[int], rows: int) -> NDArray[np.int64]:
    return np.broadcast_to(np.asarray(positions, dtype=np.int64), (rows, len(positions)))


def gather(sources: Sequence[tuple[CandidateSource, int]], queries: NDArray[np.float32],
           table: ItemTable, histories: Sequence[History] | None = None
           ) -> tuple[NDArray[np.int64], list[str]]:
    """(B, M) positions from every (source, n) in order, and the reason of each column; an
    item a row already has from an earlier source is -1 there. With ``histories`` (one per
    query row), a ``HistorySource`` is asked through ``propose_for``."""
    blocks: list[NDArray[np.int64]] = []
    reasons: list[str] = []
    shoppers = None if histories is None else Shoppers(queries, histories)
    for source, n in sources:
        propose_for = getattr(source, "propose_for", None)
        if n <= 0:
            block = np.empty((len(queries), 0), dtype=np.int64)
        elif shoppers is not None and propose_for is not None:
            block = propose_for(shoppers, table, n)
        else:
            block = source.propose(queries, table, n)
        if blocks and block.shape[1]:
            earlier = np.concatenate(blocks, axis=1)
            seen = (block[:, :, None] == earlier[:, None, :]).any(axis=2)
            block = np.where(seen, -1, block)
        blocks.append(block)
        reasons += [source.reason] * block.shape[1]
    if not blocks:
        return np.empty((len(queries), 0), dtype=np.int64), reasons
    return np.concatenate(blocks, axis=1), reasons
