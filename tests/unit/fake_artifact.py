"""A hand-made model artifact folder (no ONNX runtime needed) for registry/feature tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from stream_rec.model.artifact import write_manifest


def make_artifact(folder: Path, version: str = "v1", items: tuple[str, ...] = ("a", "b", "c"),
                  with_attributes: bool = True, max_history: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(b"not a real model, only checksummed here")
    (folder / "item_ids.json").write_text(json.dumps(list(items)))
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(len(items), 4)).astype(np.float32)
    np.save(folder / "item_embeddings.npy", emb / np.linalg.norm(emb, axis=1, keepdims=True))
    names = ["category", "price"] if with_attributes else []
    vocab = {"category": ["shoes", "hats"]} if with_attributes else {}
    bounds = {"price": [10.0, 100.0]} if with_attributes else {}
    attrs = np.array([[2, 2], [3, 3], [2, 4]][: len(items)], dtype=np.int64)
    np.save(folder / "item_attributes.npy", attrs[:, : len(names)])
    (folder / "attributes.json").write_text(json.dumps(
        {"names": names, "vocabularies": vocab, "price_boundaries": bounds}))
    inputs = {"history_items": {}, "history_events": {}, "candidate_items": {}}
    if with_attributes:
        inputs.update(history_attributes={}, candidate_attributes={})
    write_manifest(folder, {"version": version, "created_at": "2024-01-01T00:00:00Z",
                            "model": {"max_history": max_history},
                            "signature": {"inputs": inputs, "outputs": {}}})
    return folder
