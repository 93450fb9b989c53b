"""Scorers: a batch of shoppers' histories and candidate items in, one score per candidate out.

``ModelScorer`` runs the served ONNX model in its two halves: the shopper half once per batch
(it also gives the query vectors retrieval needs), the candidate half on the gathered
candidates. A second model, or a blend of models, is another class with the same two methods.

A cold item whose vector the live stream has learnt (``ItemTable.stream``) is scored as if the
model had learnt that vector: its collaborative term is swapped for the learnt one
(``collab_part.py``), so it competes with known items on the model's own scale.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, cast

import numpy as np
from numpy.typing import NDArray

from stream_rec.model import ServedModel
from stream_rec.model.features import HistoryEvent
from stream_rec.model.scorer import HISTORY_EVENTS, ShopperTower
from stream_rec.serving.collab_part import CollabPart, probe_collab_part
from stream_rec.serving.item_table import ItemTable
from stream_rec.serving.stream_vectors import StreamVectors

log = logging.getLogger(__name__)


class ShopperQueries(Protocol):
    """What a scorer computed for a batch of shoppers; ``embedding`` is (B, D) query vectors
    in the space of the item table's vectors."""

    embedding: NDArray[np.float32]


class Scorer(Protocol):
    """Scores candidates for a batch of shoppers."""

    version: str

    def queries(self, histories: Sequence[Sequence[HistoryEvent]],
                catalog: Mapping[str, Any]) -> ShopperQueries:
        """The shoppers' side, once per batch."""
        ...

    def scores(self, queries: ShopperQueries, candidates: NDArray[np.int64],
               table: ItemTable) -> NDArray[np.float32]:
        """(B, M) scores of the item-table positions ``candidates`` (all >= 0)."""
        ...


class ModelScorer:
    """The served fusion model (collaborative + content), cut at the candidates."""

    def __init__(self, model: ServedModel) -> None:
        self.model = model
        self.version = model.version
        self.collab: CollabPart | None = None
        try:
            self.collab = probe_collab_part(model)
        except Exception as exc:  # noqa: BLE001 - any failure only means: no learnt scores
            log.warning("could not probe model %s for its collaborative term (%r): cold "
                        "items keep the model's scores", model.version, exc)

    def queries(self, histories: Sequence[Sequence[HistoryEvent]],
                catalog: Mapping[str, Any]) -> ShopperQueries:
        """See ``Scorer.queries``."""
        model = self.model
        return model.scorer.shopper_tower(model.features.history_inputs(histories, catalog))

    def scores(self, queries: ShopperQueries, candidates: NDArray[np.int64],
               table: ItemTable) -> NDArray[np.float32]:
        """See ``Scorer.scores``."""
        inputs = {"candidate_items": table.model_index[candidates]}
        if self.model.features.with_attributes:
            inputs["candidate_attributes"] = table.attributes[candidates]
        tower = cast(ShopperTower, queries)
        scores = self.model.scorer.candidate_scores(tower, inputs)
        learnt = table.stream  # read once: the learner replaces it whole
        if self.collab is not None and len(learnt):
            scores = self._with_learnt(scores, tower, candidates, table.n_vocab, learnt)
        return scores

    def _with_learnt(self, scores: NDArray[np.float32], tower: ShopperTower,
                     candidates: NDArray[np.int64], n_vocab: int, learnt: StreamVectors
                     ) -> NDArray[np.float32]:
        """``scores`` with the learnt collaborative term for cold candidates that have one."""
        assert self.collab is not None
        rows, cols = np.nonzero(candidates >= n_vocab)  # most columns are known items
        slots = learnt.rows_of(candidates[rows, cols])
        rows, cols, slots = rows[slots >= 0], cols[slots >= 0], slots[slots >= 0]
        if not len(rows):
            return scores
        collab = self.collab
        events = tower.history_inputs[HISTORY_EVENTS][:, -1]  # left-padded: last column
        gates = collab.gates[np.minimum(events[rows], len(collab.gates) - 1)]
        learnt_part = collab.part(learnt.scoring[slots])
        if collab.width is not None:  # as long as an item row's part (1 / sqrt 2 when fused)
            norms = np.linalg.norm(learnt_part, axis=1, keepdims=True)
            learnt_part = (learnt_part * (collab.row_norm / np.where(norms > 0, norms, 1.0))
                           ).astype(np.float32)
        change = np.einsum("kd,kd->k", collab.part(tower.embedding[rows]),
                           learnt_part - collab.unknown)
        scores = scores.copy()
        scores[rows, cols] += gates * change
        return scores
