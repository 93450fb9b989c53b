"""A served model: artifact + features + onnxruntime, shaped for the worker's recommender.

``ServedModel`` satisfies ``stream_rec.serving.recommender.ScoringModel``: retrieval vectors for the
whole catalog, shopper query vectors, and fused scores for any candidates (unknown ids score
through their catalog attributes).
"""

from __future__ import annotations

import logging
import mmap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stream_rec.model.ann import VocabSearch, load_index
from stream_rec.model.artifact import ModelArtifact, load_artifact
from stream_rec.model.features import Catalog, FeatureBuilder, HistoryEvent
from stream_rec.model.scan import Int8Scan
from stream_rec.model.scorer import OnnxScorer

log = logging.getLogger(__name__)


class ServedModel:
    """One model version, ready to score. Build it with ``load_served_model``."""

    def __init__(self, artifact: ModelArtifact, threads: int = 1,
                 retrieval_index: bool = True, ef_search: int = 256,
                 retrieval_scan: str = "float32") -> None:
        self.artifact = artifact
        self.version = artifact.version
        self.item_ids: list[str] = artifact.item_ids  # the artifact's own list, not a copy
        self.item_vectors = artifact.item_embeddings
        self.features = FeatureBuilder(artifact)
        self.scorer = OnnxScorer(artifact.model_path, threads=threads)
        # How retrieval searches the vocabulary: the approximate-retrieval graph the trainer
        # shipped (``model/ann.py``), if any and wanted; else the 8-bit scan
        # (``model/scan.py``) when asked for; None: the exact float product.
        self.ann: VocabSearch | None = load_index(
            artifact.path, artifact.manifest, len(artifact.item_ids),
            artifact.item_embeddings.shape[1], ef_search) if retrieval_index else None
        if self.ann is None and retrieval_scan == "int8" and len(self.item_ids):
            self.ann = _int8_scan(artifact.item_embeddings)
        if self.scorer.split and len(self.item_ids):
            self._check_split()

    def keep_in_memory(self) -> None:
        """Copy the vectors and attributes, memory-mapped from the artifact
        (``load_artifact``), into this process's own memory.

        Mapped, a model loaded beside the serving one (a swap) costs no resident memory for
        them until it serves; but random row gathers (diversity, learning) from file pages ran
        ~1.5x slower than from the process's own memory at a million items (numpy asks for
        transparent huge pages for its arrays; page-cache pages get none). The worker calls
        this once the model serves and the one it replaced is let go, so the two copies of a
        table never coincide with the old model's."""
        art = self.artifact
        art.item_embeddings = _own(art.item_embeddings)
        art.item_attributes = _own(art.item_attributes)
        self.item_vectors = art.item_embeddings
        if isinstance(self.ann, Int8Scan):  # its exact second look reads the same rows
            self.ann.vectors = art.item_embeddings

    def _check_split(self) -> None:
        """Compare the split graph with the whole one on real ids (dropped if they differ)."""
        histories, candidates = self.sample_batch()
        self.scorer.agrees_when_split(self.features.inputs(histories, candidates, {}))

    def sample_batch(self) -> tuple[list[list[tuple[str, int]]], list[list[str]]]:
        """A small batch of real ids (and one unknown candidate) to check and warm a model."""
        sample = self.item_ids[:8]
        histories = [[(sample[0], 0), (sample[-1], 1)], [(sample[-1], 3)]]
        candidates = [sample + ["never-seen-item"], list(reversed(sample)) + [sample[0]]]
        return histories, candidates

    def index_of(self, item_ids: Sequence[str]) -> NDArray[np.int64]:
        """Row of each raw id in ``item_ids``/``item_vectors``, -1 when unknown."""
        return self.artifact.positions(list(item_ids))

    def row_of(self, item_id: str) -> int:
        """Row of one raw id in ``item_vectors``, -1 when unknown (a dict lookup: the worker
        asks once per event, where building an array for one id cost ~4 us)."""
        return self.artifact.position_map().get(item_id, -1)

    def query_vectors(self, histories: Sequence[Sequence[HistoryEvent]],
                      catalog: Catalog | None = None) -> NDArray[np.float32]:
        """(B, D): ``query @ item_vectors.T`` ranks every vocabulary item as the model's
        scores do (models trained before fused retrieval: by the collaborative score only;
        the manifest's ``model.retrieval`` says which)."""
        return self.scorer.user_embedding(self.features.history_inputs(histories, catalog))

    def catalog_rows(self, attributes: NDArray[np.int64]) -> NDArray[np.float32] | None:
        """(n, D) retrieval rows of items the model never saw, from their attribute indices
        (n, A): the unknown item's vector beside the content branch's vector of the
        attributes, as the exported rows are built (training/model.py); None when the model
        cannot say (no content branch, or trained before fused retrieval)."""
        tables = self.artifact.content_tables
        if tables is None:
            return None
        parts, unknown = tables
        content = np.zeros((len(attributes), len(unknown)), dtype=np.float32)
        for a, table in enumerate(parts):
            index = attributes[:, a]
            content += table[index] * (index > 0)[:, None]
        # tf.math.l2_normalize: x / sqrt(max(sum x^2, 1e-12))
        content /= np.sqrt(np.maximum(np.einsum("nd,nd->n", content, content), 1e-12))[:, None]
        rows = np.concatenate([np.broadcast_to(unknown, content.shape), content], axis=1)
        return (rows / np.sqrt(2.0)).astype(np.float32)

    def score(self, histories: Sequence[Sequence[HistoryEvent]],
              candidates: Sequence[Sequence[str]],
              catalog: Mapping[str, Any] | None = None) -> NDArray[np.float32]:
        """(B, M) fused scores; every candidate row must have the same length."""
        scores, _ = self.scorer.run(self.features.inputs(histories, candidates, catalog))
        return scores


def _own(array: NDArray[Any]) -> NDArray[Any]:
    """``array`` itself when it is in the process's memory, else a read-only copy there."""
    base: object = array
    while isinstance(base, np.ndarray):
        base = base.base
    if not isinstance(base, mmap.mmap):
        return array
    own = np.array(array)
    own.flags.writeable = False
    return own


def _int8_scan(vectors: NDArray[np.float32]) -> Int8Scan | None:
    """The 8-bit scan over ``vectors``; None (logged: retrieval is then the float product)
    when this onnxruntime cannot build it: a model must never be refused for its speed-up."""
    try:
        return Int8Scan(vectors)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises types of its own
        log.warning("the 8-bit retrieval scan could not be built (%s: %s): retrieving with "
                    "the float32 product", type(exc).__name__, exc)
        return None


def load_served_model(folder: str | Path, threads: int = 1, retrieval_index: bool = True,
                      ef_search: int = 256,
                      same_ids: Callable[[str], str] | None = None,
                      retrieval_scan: str = "float32") -> ServedModel:
    """Verify the artifact in ``folder`` and open it for scoring (raises ArtifactError);
    ``retrieval_index``: use its approximate-retrieval graph if it has one (``ef_search``, the
    graph search's beam width); ``same_ids``: as ``load_artifact``'s; ``retrieval_scan``:
    ``int8`` searches the vocabulary through 8-bit codes when no graph is used."""
    return ServedModel(load_artifact(folder, same_ids), threads=threads,
                       retrieval_index=retrieval_index, ef_search=ef_search,
                       retrieval_scan=retrieval_scan)
