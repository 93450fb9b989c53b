"""The pass of ``top_n`` over every score, compiled with numba.

Numpy needed three passes and several temporaries over the (B, N) scores to keep what passes
each row's threshold: a boolean matrix, the flat positions of its true cells, then per-row
counts, ranks and a scatter into a padded block (~70 us a row of 43,097 scores, n = 250).
One loop per row does it in a single read of the row and writes only the survivors (~40 us
with the rest of ``top_n``), and releases the GIL meanwhile. Imported on first use, as the
re-rankers' kernels are: importing numba costs ~0.3 s and every CLI command imports retrieval.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from stream_rec.rerank.dpp_kernels import compiled


@compiled
def _above(scores: NDArray[np.float32], thresholds: NDArray[np.float32], cap: int
           ) -> tuple[NDArray[np.float32], NDArray[np.int64], NDArray[np.int64]]:
    rows, n_cols = scores.shape
    values = np.full((rows, cap), -np.inf, dtype=scores.dtype)
    columns = np.zeros((rows, cap), dtype=np.int64)
    counts = np.zeros(rows, dtype=np.int64)
    for r in range(rows):
        threshold = thresholds[r]
        found = 0
        for j in range(n_cols):
            score = scores[r, j]
            if score >= threshold:
                if found < cap:
                    values[r, found] = score
                    columns[r, found] = j
                found += 1
        counts[r] = found
    return values, columns, counts


def above(scores: NDArray[np.floating], thresholds: NDArray[np.floating], cap: int
          ) -> tuple[NDArray[np.floating], NDArray[np.int64], NDArray[np.int64]]:
    """Per row, the scores at or above its threshold and their columns, left-packed into
    (B, cap) blocks in column order (padding: -inf and column 0), and how many passed, which
    may exceed ``cap`` (then only the first ``cap`` are in the block)."""
    # One specialisation per dtype; C order makes the row loop read memory in order.
    scores = np.ascontiguousarray(scores)
    return _above(scores, np.ascontiguousarray(thresholds, dtype=scores.dtype), cap)


def warm_up() -> None:
    """Compile (or load from numba's disk cache) the float32 pass before the first batch."""
    above(np.zeros((1, 4), dtype=np.float32), np.zeros(1, dtype=np.float32), 2)
