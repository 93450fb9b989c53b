"""Scorers: a batch of shoppers' histories and candidate items in, one score per candidate out.

``ModelScorer`` runs the served ONNX model in its two halves: the shopper half once per batch
(it also gives the query vectors retrieval needs), the candidate half on the gathered
candidates. A second model, or a blend of models, is another class with the same two methods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from stream_rec.model import ServedModel
from stream_rec.model.features import HistoryEvent
from stream_rec.serving.item_table import ItemTable


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
        return self.model.scorer.candidate_scores(queries, inputs)  # type: ignore[arg-type]
