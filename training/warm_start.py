"""Warm start: copy a previous model's weights wherever the vocabularies overlap.

Item rows are matched by raw item id, attribute rows by (attribute, value); every other
weight is copied when its shape is unchanged. Weights live in the artifact's ``weights.npz``
(plain arrays keyed by variable path; loaded without pickle).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from stream_rec.model.artifact import ATTRIBUTES_FILE, FIRST_ITEM_INDEX, ModelArtifact
from training.model import FusionCore
from training.vocab import Vocabulary

WEIGHTS_FILE = "weights.npz"


def weight_key(path: str) -> str:
    """A variable's path without the model instance's own (auto-numbered) name."""
    return path.split("/", 1)[-1]


def save_weights(core: FusionCore, folder: Path) -> None:
    """Write the model's weights into the artifact folder as ``weights.npz``, by variable path."""
    arrays = {weight_key(v.path): np.asarray(v.numpy()) for v in core.weights}
    np.savez(folder / WEIGHTS_FILE, **arrays)  # type: ignore[arg-type]


def _row_map(new: list[str], old: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(new rows, old rows) of the values both lists share, offset past padding/unknown."""
    old_pos = {v: i for i, v in enumerate(old)}
    pairs = [(i, old_pos[v]) for i, v in enumerate(new) if v in old_pos]
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    arr = np.asarray(pairs, dtype=np.int64) + FIRST_ITEM_INDEX
    return arr[:, 0], arr[:, 1]


def warm_start(core: FusionCore, vocab: Vocabulary, previous: ModelArtifact) -> str:
    """Copy what fits from ``previous`` into ``core``; return a one-line account."""
    path = previous.path / WEIGHTS_FILE
    if not path.exists() or WEIGHTS_FILE not in previous.manifest.get("files", {}):
        return "previous model has no weights, starting fresh"
    with np.load(path, allow_pickle=False) as data:
        old = {name: data[name] for name in data.files}
    old_attrs = json.loads((previous.path / ATTRIBUTES_FILE).read_text(encoding="utf-8"))
    copied, items_shared = 0, 0
    for var in core.weights:
        source = old.get(weight_key(var.path))
        if source is None:
            continue
        target = np.asarray(var.numpy())
        if var.path.endswith("item_table") and source.shape[1:] == target.shape[1:]:
            new_rows, old_rows = _row_map(vocab.item_ids, previous.item_ids)
            target[:FIRST_ITEM_INDEX] = source[:FIRST_ITEM_INDEX]
            target[new_rows] = source[old_rows]
            items_shared = len(new_rows)
        elif "attribute_table_" in var.path and source.shape[1:] == target.shape[1:]:
            a = int(var.path.rsplit("_", 1)[1])
            name = vocab.attribute_names[a]
            if name not in previous.attribute_names:
                continue
            target[:FIRST_ITEM_INDEX] = source[:FIRST_ITEM_INDEX]
            if name in vocab.price_boundaries:
                if vocab.price_boundaries[name] == old_attrs["price_boundaries"].get(name):
                    target[:] = source
            else:
                new_rows, old_rows = _row_map(vocab.attribute_values[name],
                                              old_attrs["vocabularies"].get(name, []))
                target[new_rows] = source[old_rows]
        elif source.shape == target.shape:
            target = source
        else:
            continue
        var.assign(target)
        copied += 1
    return f"{copied} weight tensors, {items_shared:,} shared items"
