"""Model inputs from shopper histories and candidate items (pure numpy, no model runtime).

The worker and ``stream-rec evaluate`` both build ``model.onnx``'s inputs here, so offline
numbers and online scores come from the same code. Histories are what the worker keeps in
user state: raw item ids with event types (names or contract type codes), oldest first.
Candidates are raw item ids; an id the vocabulary does not know gets the OOV item index and
its attribute indices from the catalog, so it still scores through the content branch.

Inputs (int64): ``history_items`` (B, L) and ``history_events`` (B, L), left-padded with 0 so
the most recent event is always the last column; ``candidate_items`` (Bc, C) with Bc = B, or 1
for one candidate list shared by every row. With attributes (A > 0) also
``history_attributes`` (B, L, A) and ``candidate_attributes`` (Bc, C, A).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stream_rec.core.events import TYPE_CODE
from stream_rec.model.artifact import OOV_INDEX, PAD_INDEX, ModelArtifact

Catalog = Mapping[str, Any]  # item_id -> {attribute: value} mapping or a CatalogItem
HistoryEvent = tuple[str, str | int]  # (raw item id, event type name or contract code)
IntArray = NDArray[np.int64]  # any number of dimensions


def event_index(event_type: str | int) -> int:
    """Model index of an event type: contract code + 1 (0 is padding)."""
    if isinstance(event_type, str):
        return TYPE_CODE[event_type] + 1
    return int(event_type) + 1


def raw_attribute(entry: Any, name: str) -> Any:
    """An attribute of one catalog entry, whether a plain mapping or a CatalogItem."""
    if entry is None:
        return None
    if isinstance(entry, Mapping):
        return entry.get(name)
    value = entry.attribute(name) if hasattr(entry, "attribute") else None
    return getattr(entry, name, None) if value is None else value


class FeatureBuilder:
    """Turns raw ids into the model's index arrays, using one artifact's vocabularies."""

    def __init__(self, artifact: ModelArtifact) -> None:
        self.artifact = artifact
        self.max_history = artifact.max_history
        self.n_attributes = len(artifact.attribute_names)
        inputs = set(artifact.input_names)
        self.with_attributes = "candidate_attributes" in inputs

    def attributes_of(self, item_ids: Sequence[str], catalog: Catalog | None = None
                      ) -> IntArray:
        """(len(ids), A) attribute indices: the artifact's for known items, else the catalog's."""
        art = self.artifact
        pos = art.positions(item_ids)
        out = np.full((len(item_ids), self.n_attributes), OOV_INDEX, dtype=np.int64)
        known = pos >= 0
        if self.n_attributes and known.any():
            out[known] = art.item_attributes[pos[known]]
        if catalog is not None and self.n_attributes:
            for row in np.flatnonzero(~known):
                entry = catalog.get(item_ids[int(row)])
                if entry is not None:
                    out[row] = [art.attribute_index(name, raw_attribute(entry, name))
                                for name in art.attribute_names]
        return out

    def history_inputs(self, histories: Sequence[Sequence[HistoryEvent]],
                       catalog: Catalog | None = None) -> dict[str, IntArray]:
        """``history_items``, ``history_events`` (+ ``history_attributes``), left-padded."""
        recent = [list(h)[-self.max_history:] for h in histories]
        width = max([1, *(len(h) for h in recent)])
        items = np.full((len(recent), width), PAD_INDEX, dtype=np.int64)
        events = np.full((len(recent), width), PAD_INDEX, dtype=np.int64)
        flat_ids = [item for h in recent for item, _ in h]
        flat_index = self.artifact.item_index(flat_ids)
        start = 0
        for row, h in enumerate(recent):
            if h:
                items[row, width - len(h):] = flat_index[start:start + len(h)]
                events[row, width - len(h):] = [event_index(t) for _, t in h]
            start += len(h)
        out: dict[str, IntArray] = {"history_items": items, "history_events": events}
        if self.with_attributes:
            attrs = np.full((len(recent), width, self.n_attributes), PAD_INDEX, dtype=np.int64)
            flat_attrs = self.attributes_of(flat_ids, catalog)
            start = 0
            for row, h in enumerate(recent):
                if h:
                    attrs[row, width - len(h):] = flat_attrs[start:start + len(h)]
                start += len(h)
            out["history_attributes"] = attrs
        return out

    def candidate_inputs(self, candidates: Sequence[Sequence[str]] | Sequence[str],
                         catalog: Catalog | None = None) -> dict[str, IntArray]:
        """``candidate_items`` (+ ``candidate_attributes``).

        A flat list of ids is one list shared by every history row (shape (1, C)); a list of
        lists gives one row per history, all of the same length.
        """
        rows: list[list[str]] = (
            [[str(c) for c in candidates]] if candidates and isinstance(candidates[0], str)
            else [list(c) for c in candidates])
        width = len(rows[0]) if rows else 0
        if any(len(r) != width for r in rows):
            raise ValueError("every candidate row must have the same length (pad it)")
        flat = [item for r in rows for item in r]
        out: dict[str, IntArray] = {
            "candidate_items": self.artifact.item_index(flat).reshape(len(rows), width)}
        if self.with_attributes:
            out["candidate_attributes"] = self.attributes_of(flat, catalog).reshape(
                len(rows), width, self.n_attributes)
        return out

    def inputs(self, histories: Sequence[Sequence[HistoryEvent]],
               candidates: Sequence[Sequence[str]] | Sequence[str],
               catalog: Catalog | None = None) -> dict[str, IntArray]:
        """Every input of ``model.onnx`` for one batch."""
        return {**self.history_inputs(histories, catalog),
                **self.candidate_inputs(candidates, catalog)}
