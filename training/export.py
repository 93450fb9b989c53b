"""Export a trained model as an artifact folder, with a TensorFlow vs onnxruntime parity check.

The check runs on every export: a random batch (per-row and shared candidate lists) goes
through the Keras model and through ``model.onnx`` in onnxruntime; if any output differs by
more than ``PARITY_TOLERANCE`` the export fails and the folder is removed.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from stream_rec.model.artifact import (
    ATTRIBUTES_FILE,
    CONTENT_TABLES_FILE,
    FIRST_ITEM_INDEX,
    ITEM_ATTRIBUTES_FILE,
    ITEM_EMBEDDINGS_FILE,
    ITEM_IDS_FILE,
    MODEL_FILE,
    REQUIRED_FILES,
    write_manifest,
)
from stream_rec.model.scorer import OnnxScorer
from training.model import FusionCore, build_model, input_names
from training.train import TrainResult
from training.warm_start import WEIGHTS_FILE, save_weights

PARITY_TOLERANCE = 1e-4
STAND_IN_ROWS = 3  # padding, the unknown item and one vocabulary item (export_onnx)
SHAPES = {
    "history_items": ["batch", "history"],
    "history_events": ["batch", "history"],
    "history_attributes": ["batch", "history", "attributes"],
    "candidate_items": ["candidate_batch", "candidates"],
    "candidate_attributes": ["candidate_batch", "candidates", "attributes"],
}
OUTPUTS = {
    "scores": {"dtype": "float32", "shape": ["batch", "candidates"]},
    "user_embedding": {"dtype": "float32", "shape": ["batch", "dim"]},
}


class ExportError(Exception):
    """The exported ONNX model does not reproduce the TensorFlow model."""


def new_version(now: datetime | None = None) -> str:
    """A version name that sorts by creation time, e.g. ``20240131T120000Z``."""
    return f"{(now or datetime.now(UTC)):%Y%m%dT%H%M%S}Z"


def random_inputs(core: FusionCore, batch: int, history: int, candidates: int,
                  shared: bool, seed: int) -> dict[str, np.ndarray]:
    """A seeded random batch of model inputs (histories and candidates) for the parity check."""
    rng = np.random.default_rng(seed)
    cand_batch = 1 if shared else batch
    out = {"history_items": rng.integers(0, core.n_item_indices, (batch, history)),
           "history_events": rng.integers(0, 5, (batch, history)),
           "candidate_items": rng.integers(1, core.n_item_indices, (cand_batch, candidates))}
    if core.use_content:
        sizes = np.asarray(core.attribute_sizes)
        out["history_attributes"] = (rng.random((batch, history, len(sizes))) * sizes
                                     ).astype(np.int64)
        out["candidate_attributes"] = (rng.random((cand_batch, candidates, len(sizes)))
                                       * sizes).astype(np.int64)
    return {name: out[name].astype(np.int64) for name in input_names(core.use_content)}


def check_parity(model: Any, core: FusionCore, onnx_path: Path,
                 tolerance: float = PARITY_TOLERANCE) -> float:
    """Largest |TF - ONNX| over both outputs on random batches; raise ExportError above tol."""
    scorer = OnnxScorer(onnx_path, threads=1)
    worst = 0.0
    for n, (batch, history, cands, shared) in enumerate([(5, 7, 11, False), (3, 4, 64, True),
                                                         (1, 1, 1, False)]):
        inputs = random_inputs(core, batch, min(history, core.max_history), cands, shared, n)
        expected = model({k: tf.constant(v) for k, v in inputs.items()}, training=False)
        scores, users = scorer.run(inputs)
        for got, want in ((scores, expected["scores"]), (users, expected["user_embedding"])):
            want = np.asarray(want)
            if got.shape != want.shape:
                raise ExportError(f"ONNX output shape {got.shape} != TensorFlow {want.shape}")
            worst = max(worst, float(np.max(np.abs(got - want))))
    if worst > tolerance:
        raise ExportError(f"ONNX parity check failed: max |TF - ONNX| = {worst:.2e} "
                          f"> {tolerance:.0e}")
    return worst


def check_retrieval(model: Any, core: FusionCore, vectors: np.ndarray, attrs: np.ndarray,
                    tolerance: float = PARITY_TOLERANCE) -> None:
    """``user_embedding @ item_embeddings.T`` must be the model's own score of every item
    with the content branch (the worker retrieves by it); raise ExportError if not."""
    if not core.use_content:
        return  # the collaborative score only, by construction (same order as ``scores``)
    inputs = random_inputs(core, 4, min(5, core.max_history), 1, False, 7)
    count = min(len(vectors), 64)
    inputs["candidate_items"] = np.tile(np.arange(FIRST_ITEM_INDEX, FIRST_ITEM_INDEX + count),
                                        (4, 1)).astype(np.int64)
    inputs["candidate_attributes"] = np.tile(attrs[None, :count], (4, 1, 1)).astype(np.int64)
    out = model({k: tf.constant(v) for k, v in inputs.items()}, training=False)
    fused = np.asarray(out["user_embedding"]) @ vectors[:count].T
    worst = float(np.max(np.abs(fused - np.asarray(out["scores"])))) if count else 0.0
    if worst > tolerance * max(1.0, core.scale):
        raise ExportError(f"retrieval vectors do not reproduce the model's scores: max "
                          f"|query . item - score| = {worst:.2e}")


def export_onnx(core: FusionCore, path: Path) -> None:
    """Write ``core`` as an ONNX model, its item table put in after the conversion.

    Converting a model holds many copies of every weight (graph freezing and the converter's
    optimiser passes each copy the graph): harmless for the small layers, out of memory for a
    million-item table. So a copy of the model whose item table has only its first rows is
    converted, and the real table then replaces that stand-in in the ONNX file. The table is
    read by Gather ops only (``ItemTower``), so nothing else in the graph depends on its
    length; the parity check that follows runs the written file against the real model.
    """
    table = core.items.table.numpy()
    rows = min(STAND_IN_ROWS, core.n_item_indices)
    stand_in = FusionCore.from_config({**core.get_config(), "n_item_indices": rows})
    stand_in.build(None)
    if len(stand_in.weights) != len(core.weights):
        raise ExportError("the stand-in model does not have the model's weights")
    for source, target in zip(core.weights, stand_in.weights, strict=True):
        target.assign(table[:rows] if source is core.items.table else source.numpy())
    small = build_model(stand_in)
    small(random_inputs(stand_in, 2, 3, 4, False, 0))
    with contextlib.redirect_stdout(sys.stderr):  # the exporter talks; keep stdout clean
        small.export(str(path), format="onnx", verbose=False)
    _put_item_table(path, table[:rows], table)


def _put_item_table(path: Path, stand_in: np.ndarray, table: np.ndarray) -> None:
    """Replace the stand-in item table in the ONNX file at ``path`` by ``table``."""
    import onnx
    from onnx import numpy_helper

    graph_model = onnx.load(str(path))
    found = [init for init in graph_model.graph.initializer
             if tuple(init.dims) == stand_in.shape
             and np.array_equal(numpy_helper.to_array(init), stand_in)]
    if len(found) != 1:
        raise ExportError(f"expected one item table in the exported graph, found {len(found)}")
    found[0].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(table, dtype=np.float32),
                                              found[0].name))
    try:
        onnx.save(graph_model, str(path))
    except ValueError as exc:  # a protobuf file holds at most 2 GB
        raise ExportError(f"the model does not fit one ONNX file: {exc}") from None


def export_artifact(result: TrainResult, folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Write the artifact folder for ``result``; return the manifest written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=False)
    try:
        return _export(result, folder, manifest)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _export(result: TrainResult, folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    core = result.core
    model = build_model(core)
    model(random_inputs(core, 2, 3, 4, False, 0))  # a reloaded model must be called once
    export_onnx(core, folder / MODEL_FILE)
    worst = check_parity(model, core, folder / MODEL_FILE)
    (folder / ITEM_IDS_FILE).write_text(json.dumps(result.vocab.item_ids), encoding="utf-8")
    attrs = result.item_attributes[FIRST_ITEM_INDEX:, : len(result.vocab.attribute_names)]
    if not core.use_content:
        attrs = attrs[:, :0]
    vectors = core.item_vectors(tf.constant(attrs, dtype=tf.int64) if core.use_content
                                else None)
    np.save(folder / ITEM_EMBEDDINGS_FILE, np.asarray(vectors, dtype=np.float32))
    check_retrieval(model, core, np.asarray(vectors, dtype=np.float32), attrs)
    np.save(folder / ITEM_ATTRIBUTES_FILE, np.ascontiguousarray(attrs, dtype=np.int64))
    vocab_json = result.vocab.to_json() if core.use_content else {
        "names": [], "vocabularies": {}, "price_boundaries": {}}
    (folder / ATTRIBUTES_FILE).write_text(json.dumps(vocab_json), encoding="utf-8")
    save_weights(core, folder)
    extra = [WEIGHTS_FILE]
    if core.use_content:
        unknown = np.asarray(core.items.table.numpy()[1], dtype=np.float32)
        arrays: dict[str, Any] = {
            "unknown_item": unknown / max(float(np.linalg.norm(unknown)), 1e-12),
            **{f"attribute_{a}": np.asarray(t.numpy(), dtype=np.float32)
               for a, t in enumerate(core.content.tables)}}
        np.savez(folder / CONTENT_TABLES_FILE, **arrays)
        extra.append(CONTENT_TABLES_FILE)
    full = {
        "version": manifest.get("version") or new_version(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **manifest,
        "model": {"kind": "stream-rec fusion (collaborative + content + event gate)",
                  "embedding_dim": core.dim, "max_history": core.max_history,
                  "score_scale": core.scale, "content_branch": core.use_content,
                  "retrieval": "fused" if core.use_content else "collaborative",
                  "attribute_names": vocab_json["names"], "n_items": len(result.vocab.item_ids),
                  "event_indices": {"padding": 0, "view": 1, "click": 2, "add_to_cart": 3,
                                    "purchase": 4},
                  "item_index": "0 = padding, 1 = unknown item, 2 + position in item_ids.json",
                  "parity_max_abs_diff": worst},
        "signature": {"inputs": {name: {"dtype": "int64", "shape": SHAPES[name]}
                                 for name in input_names(core.use_content)},
                      "outputs": OUTPUTS},
        "training": {**manifest.get("training", {}), **result.summary()},
    }
    return write_manifest(folder, full, files=[*REQUIRED_FILES, *extra])
