"""Training pairs: every prefix -> next action of every training session, as index arrays."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from stream_rec.datasets import Session
from stream_rec.model.artifact import OOV_INDEX, PAD_INDEX
from stream_rec.model.features import event_index
from training.vocab import Vocabulary


@dataclass
class Pairs:
    """``history_items``/``history_events`` (P, L) left-padded; ``targets`` (P,)."""

    history_items: NDArray[np.int32]
    history_events: NDArray[np.int8]
    targets: NDArray[np.int32]

    def __len__(self) -> int:
        return int(self.targets.shape[0])


def build_pairs(sessions: Sequence[Session], vocab: Vocabulary, max_history: int,
                keep_unknown_targets: bool = False, chunk: int = 200_000) -> Pairs:
    """All prefix -> next pairs; the history is the last ``max_history`` events of the prefix.

    Pairs whose target is outside the vocabulary are dropped unless ``keep_unknown_targets``
    (the content branch can learn from them).
    """
    flat_ids = [e.item_id for s in sessions for e in s.events]
    items = vocab.item_index(flat_ids).astype(np.int32)
    events = np.fromiter((event_index(e.event_type) for s in sessions for e in s.events),
                         dtype=np.int8, count=len(flat_ids))
    lengths = np.fromiter((len(s) for s in sessions), dtype=np.int64, count=len(sessions))
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    target_pos = np.flatnonzero(np.arange(len(flat_ids)) > starts)
    if not keep_unknown_targets:
        target_pos = target_pos[items[target_pos] != OOV_INDEX]
    steps = np.arange(-max_history, 0)
    out_items = np.empty((len(target_pos), max_history), dtype=np.int32)
    out_events = np.empty((len(target_pos), max_history), dtype=np.int8)
    for lo in range(0, len(target_pos), chunk):
        t = target_pos[lo:lo + chunk]
        pos = t[:, None] + steps[None, :]
        valid = pos >= starts[t][:, None]
        safe = np.maximum(pos, 0)
        out_items[lo:lo + chunk] = np.where(valid, items[safe], PAD_INDEX)
        out_events[lo:lo + chunk] = np.where(valid, events[safe], PAD_INDEX)
    return Pairs(out_items, out_events, items[target_pos])
