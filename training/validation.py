"""Early stopping on a validation slice: the most recent training sessions, never the test split.

On a catalog the size of diginetica's the model fits the training pairs well past the point
where it predicts the next week best (P@20 peaks after three epochs, then falls several
points while the training loss keeps falling). So training holds out the most recent
``validation_fraction`` of its sessions, ranks the whole catalog for each of their next-item
cases after every epoch, keeps the weights of the best epoch and stops after ``patience``
epochs without improvement. Too small a slice to decide anything (tiny datasets) means no
hold-out: every session trains and every epoch runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from stream_rec.datasets import Session
from stream_rec.datasets.split import split_by_time
from stream_rec.model.artifact import FIRST_ITEM_INDEX
from training.model import FusionCore
from training.pairs import Pairs

MIN_VALIDATION_CASES = 500  # fewer cases than this cannot tell epochs apart reliably
MAX_VALIDATION_CASES = 20_000  # enough to rank epochs; keeps each check to seconds
BATCH = 2048


def split_for_validation(sessions: Sequence[Session], fraction: float
                         ) -> tuple[list[Session], list[Session]]:
    """(sessions to train on, most recent sessions to validate on); no hold-out if 0."""
    if fraction <= 0.0 or len(sessions) < 2:
        return list(sessions), []
    return split_by_time(sessions, fraction)


@dataclass(frozen=True)
class Score:
    """Hit rate and MRR at K on the validation cases; hit rate decides, then MRR."""

    hit_rate: float  # P@K, share of cases with the target in the top K
    mrr: float  # MRR@K

    def better_than(self, other: Score | None) -> bool:
        return other is None or (self.hit_rate, self.mrr) > (other.hit_rate, other.mrr)

    def describe(self, k: int) -> str:
        return f"valid P@{k} {100 * self.hit_rate:.2f} MRR@{k} {100 * self.mrr:.2f}"


class Validator:
    """Ranks the training universe for held-out next-item cases (targets the model does not
    know count as misses, as in the real evaluation)."""

    def __init__(self, pairs: Pairs, k: int, item_attributes: np.ndarray,
                 use_content: bool, seed: int = 0) -> None:
        rows = np.arange(len(pairs))
        if len(rows) > MAX_VALIDATION_CASES:
            rows = np.sort(np.random.default_rng(seed).choice(rows, MAX_VALIDATION_CASES,
                                                              replace=False))
        self.items = pairs.history_items[rows].astype(np.int64)
        self.events = pairs.history_events[rows].astype(np.int64)
        self.targets = pairs.targets[rows].astype(np.int64)
        self.k = k
        self.item_attributes = item_attributes
        self.use_content = use_content
        self.best: Score | None = None
        self.best_weights: list[np.ndarray] | None = None
        self.best_epoch = 0
        self.stale = 0

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def score(self, core: FusionCore) -> Score:
        catalog = tf.range(FIRST_ITEM_INDEX, core.n_item_indices, dtype=tf.int64)
        attrs = tf.constant(self.item_attributes[FIRST_ITEM_INDEX:]) if self.use_content else None
        vectors, content = core.candidates(catalog, attrs)
        hits = reciprocal = 0.0
        for lo in range(0, len(self), BATCH):
            inputs = {"history_items": tf.constant(self.items[lo:lo + BATCH]),
                      "history_events": tf.constant(self.events[lo:lo + BATCH])}
            if self.use_content:
                inputs["history_attributes"] = tf.gather(self.item_attributes,
                                                         self.items[lo:lo + BATCH])
            user, content_user, gates = core.users(inputs)
            collab = tf.matmul(user, vectors, transpose_b=True)
            cont = (tf.matmul(content_user, content, transpose_b=True)
                    if content_user is not None and content is not None else None)
            scores = core.fuse(gates, collab, cont).numpy()
            targets = self.targets[lo:lo + BATCH]
            known = targets >= FIRST_ITEM_INDEX
            column = np.where(known, targets - FIRST_ITEM_INDEX, 0)
            mine = scores[np.arange(len(targets)), column]
            rank = (scores > mine[:, None]).sum(axis=1)
            hit = known & (rank < self.k)
            hits += float(hit.sum())
            reciprocal += float((hit / (rank + 1)).sum())
        return Score(hits / len(self), reciprocal / len(self))

    def check(self, epoch: int, core: FusionCore) -> tuple[Score, bool]:
        """Score this epoch; remember its weights if it is the best so far."""
        score = self.score(core)
        improved = score.better_than(self.best)
        if improved:
            self.best, self.best_epoch, self.stale = score, epoch, 0
            self.best_weights = [np.array(w) for w in core.get_weights()]
        else:
            self.stale += 1
        return score, improved

    def restore_best(self, core: FusionCore) -> bool:
        """Put the best epoch's weights back; False if the last epoch was the best."""
        if self.best_weights is None or self.stale == 0:
            return False
        core.set_weights(self.best_weights)
        return True
