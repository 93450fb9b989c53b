"""How a served model's score depends on a candidate's collaborative vector, found by asking it.

Retrieval ranks by ``query . item_vector``; the model scores a candidate by more than that.
The fusion model (``training/model.py``) scores ``gate(last event) * query . item_vector`` plus
a content term that depends on the candidate's attributes only, and gives every item it never
saw one shared "unknown item" vector. So a cold item whose vector the stream has learnt
(``stream_learner.py``) is scored as the model would score it had it learnt that vector:

    score = model's score + gate(last event) * query . (learnt vector - unknown-item vector)

Nothing here reads the model's weights. ``probe_collab_part`` feeds the ONNX model histories
ending in each event type and known candidates with their attributes blanked, fits the score
as a line in ``query . item_vector`` (one slope per event type, one constant per history),
and reads the gates off the slopes and the unknown-item vector off the scores of the unknown
item. If the model is not of that form (a line that does not fit, a slope that is not one per
event type), it returns None and cold items keep the model's own score.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from stream_rec.core.events import EVENT_TYPES
from stream_rec.model import ServedModel
from stream_rec.model.artifact import OOV_INDEX, PAD_INDEX

log = logging.getLogger(__name__)

ROWS_PER_TYPE = 48  # histories per event type: all told more than the vector width
KNOWN_CANDIDATES = 12  # known items scored per history to fit its line
TOLERANCE = 1e-3  # largest misfit, relative to the scores' size, still taken as exact


@dataclass(frozen=True)
class CollabPart:
    """The collaborative term of the model's score: ``gates[e] * query . vector`` for a
    history whose last event has model index ``e``; ``unknown`` is the vector every item the
    model never saw shares."""

    gates: NDArray[np.float32]  # (1 + number of event types,): index 0 is padding
    unknown: NDArray[np.float32]  # (width,)
    # With fused retrieval the query and item rows carry both branches side by side
    # (training/model.py): the collaborative term is the product of their first ``width``
    # values, where an item's part has length ``row_norm`` (1 / sqrt 2) rather than 1.
    width: int | None = None  # None: the whole vectors
    row_norm: float = 1.0

    def part(self, vectors: NDArray[np.float32]) -> NDArray[np.float32]:
        """The collaborative part of (..., D) query or item vectors."""
        return vectors if self.width is None else vectors[..., : self.width]


def probe_collab_part(model: ServedModel, seed: int = 0) -> CollabPart | None:
    """The model's ``CollabPart``, or None when its scores are not of that form."""
    n_items, dim = model.item_vectors.shape
    if n_items < 2:
        return None
    rng = np.random.default_rng(seed)
    ids = model.item_ids
    rows = max(ROWS_PER_TYPE, -(-2 * dim // len(EVENT_TYPES)))
    histories = [[(ids[int(i)], code) for i in rng.integers(0, n_items, rng.integers(1, 6))]
                 for code in range(len(EVENT_TYPES)) for _ in range(rows)]
    last_index = np.repeat(np.arange(1, len(EVENT_TYPES) + 1), rows)
    tower = model.scorer.shopper_tower(model.features.history_inputs(histories, {}))
    queries = tower.embedding
    # Fused retrieval rows: [collaborative ; content] / sqrt 2, the query likewise; with the
    # attributes blanked below, the score is the first halves' product alone.
    width = dim // 2 if model.artifact.content_tables is not None else None
    if width is not None:
        queries = queries[:, :width]
    picked = rng.choice(n_items, size=min(KNOWN_CANDIDATES, n_items), replace=False)
    index = model.artifact.item_index([ids[int(i)] for i in picked])
    candidates = np.broadcast_to(np.append(index, OOV_INDEX), (len(histories), len(index) + 1))
    inputs = {"candidate_items": np.ascontiguousarray(candidates)}
    if model.features.with_attributes:
        inputs["candidate_attributes"] = np.full(
            (*candidates.shape, model.features.n_attributes), PAD_INDEX, dtype=np.int64)
    scores = model.scorer.candidate_scores(tower, inputs).astype(np.float64)
    known = model.item_vectors[picked][:, :width] if width else model.item_vectors[picked]
    found = _fit(queries.astype(np.float64), known.astype(np.float64), scores, last_index)
    if found is None or width is None:
        return found
    return CollabPart(found.gates, found.unknown, width, float(np.sqrt(0.5)))


def _fit(queries: NDArray[np.float64], known: NDArray[np.float64], scores: NDArray[np.float64],
         last_index: NDArray[np.int64]) -> CollabPart | None:
    """Gates and unknown-item vector from (R, K + 1) scores of K known items and the unknown
    one, or None when the scores are not ``gate * query . vector + a per-history constant``.

    One slope per event type, fitted to every history of that type at once after taking out
    each history's mean (its constant): a history whose items all score alike adds nothing,
    instead of a slope of its own that no line pins down."""
    dots = queries @ known.T  # (R, K)
    size = max(1.0, float(np.abs(scores).max()))
    centred_dots = dots - dots.mean(axis=1, keepdims=True)
    centred_scores = scores[:, :-1] - scores[:, :-1].mean(axis=1, keepdims=True)
    gates = np.zeros(int(last_index.max()) + 1)
    for index in np.unique(last_index):
        same = last_index == index
        spread = float(np.square(centred_dots[same]).sum())
        if spread <= 0.0:
            return None
        gate = float((centred_dots[same] * centred_scores[same]).sum()) / spread
        misfit = np.abs(gate * centred_dots[same] - centred_scores[same]).max()
        if gate <= 0.0 or misfit > TOLERANCE * size:
            log.info("model scores are not one slope per event type in the item vector: "
                     "cold items keep them")
            return None
        gates[index] = gate
    gates[0] = gates[1:].mean()  # an empty history: not a request the worker makes
    slopes = gates[last_index]
    offsets = scores[:, :-1].mean(axis=1) - slopes * dots.mean(axis=1)
    # query . unknown for each history, then the one vector that gives them all
    unknown_dots = (scores[:, -1] - offsets) / slopes
    unknown, *_ = np.linalg.lstsq(queries, unknown_dots, rcond=None)
    if np.abs(queries @ unknown - unknown_dots).max() > TOLERANCE * size:
        log.info("no single unknown-item vector fits the model: cold items keep its scores")
        return None
    return CollabPart(gates.astype(np.float32), unknown.astype(np.float32))
