"""Candidate vectors as rows of one item-vector table, gathered only where re-ranking reads.

A batch's pools are (B, M) candidates of D-dimensional vectors: 17 MB for 200 pools of 220
candidates at D = 100. Re-ranking reads far fewer (the DPP's first run covers the 64 most
relevant of each pool), so copying them all out of the item table up front was wasted work.
``PoolVectors`` stands in for that (B, M, D) array: slicing pools stays lazy, and indexing
with (pools, candidates) gathers just those vectors.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray


class PoolVectors:
    """A lazy (B, M, D) array: ``table[rows]``, with ``table`` (N, D) and ``rows`` (B, M);
    a row of -1 (an item without a vector, or padding) reads as zeros."""

    ndim = 3

    def __init__(self, table: NDArray[np.floating], rows: NDArray[np.integer]) -> None:
        if table.ndim != 2 or rows.ndim != 2:
            raise ValueError(f"need a (N, D) table and (B, M) rows, got {table.shape}, "
                             f"{rows.shape}")
        self.table = table
        self.rows = rows

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.rows.shape[0], self.rows.shape[1], self.table.shape[1])

    def __getitem__(self, key: Any) -> Any:
        """Pools only (a slice or an index array): still lazy. Pools and candidates: gathered."""
        if isinstance(key, tuple):
            return self._gather(self.rows[key])
        return PoolVectors(self.table, self.rows[key])

    def __array__(self, dtype: Any = None, copy: Any = None) -> NDArray[Any]:
        out = self._gather(self.rows)
        return out if dtype is None else out.astype(dtype, copy=False)

    def _gather(self, rows: NDArray[np.integer]) -> NDArray[Any]:
        # Zeros are written after the gather rather than kept as a row of the table: the
        # table can then be the model's own (read-only, memory-mapped) vectors.
        missing = rows < 0
        if not missing.any():
            return self.table[rows]
        out = self.table[np.where(missing, 0, rows)]
        out[missing] = 0
        return out
