"""What "similar" and "relevant" mean to the re-rankers, as plain arrays.

The similarity between two candidates i, j of one list is a convex blend of two positive
semi-definite (PSD) kernels,

    S_ij = (1 - w) * cos(v_i, v_j) + w * [i and j share a known category, or i == j],

so it stays PSD (a DPP needs that) and has a unit diagonal. An item of unknown category is in
a category of its own; an item without a vector (all zeros) is similar to nothing but itself
(a diagonal fix-up keeps S_ii = 1). Without categories, S is the plain cosine.

The greedy loops never build the M x M matrix: they compute the one row of S they need per
pick from the feature rows held in a :class:`SimilarityKernel`.

Relevance is standardised per list (z-scores over the list's eligible candidates) so that one
trade-off parameter means the same thing for every model, score scale and dataset: the
re-ranker sees "how many standard deviations above this pool's average", not raw logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

#: Default weight of category equality in the similarity blend (0 = vectors only).
DEFAULT_CATEGORY_WEIGHT = 0.5

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


@dataclass(frozen=True)
class SimilarityKernel:
    """S for B lists of M candidates as a Gram matrix: S = F F^T + Diag(fix).

    Feature rows F_i (length D + C): the unit item vector scaled by sqrt(1 - w), then a
    one-hot of the item's category (C = most distinct known categories in one list) scaled by
    sqrt(w). They are stored transposed, ``feats_t`` (B, D + C, M), so that a greedy step gets
    a row of S from one matrix-vector product and writes its results as contiguous rows.
    ``fix`` (B, M) >= 0 tops the diagonal up to exactly 1 (unknown category: w; no vector:
    1 - w). The Gram form keeps S PSD by construction.
    """

    feats_t: F64
    fix: F64
    #: ``feats_t`` plus zero or more spare rows: scratch the DPP may write past the features.
    buffer: F64 | None = None

    @property
    def feats(self) -> F64:
        """Feature rows, (B, M, D + C) (a transposed view)."""
        return np.swapaxes(self.feats_t, 1, 2)

    def workspace(self, extra: int) -> F64:
        """(B, F + extra, M) array starting with ``feats_t``; rows past F are scratch space.

        Uses the spare rows reserved by :func:`similarity_kernel` when there are enough, so
        the DPP's working matrix costs no second copy of the features.
        """
        n_b, n_f, n_m = self.feats_t.shape
        if self.buffer is not None and self.buffer.shape[1] >= n_f + extra:
            return self.buffer[:, : n_f + extra]
        work = np.empty((n_b, n_f + extra, n_m))
        work[:, :n_f] = self.feats_t
        return work

    def row(self, b: int, j: int) -> F64:
        """Row j of list b's S, shape (M,) (a fresh array)."""
        cols = self.feats_t[b]
        out = cols.T @ cols[:, j]
        out[j] += self.fix[b, j]
        return out

    def matrix(self) -> F64:
        """The full (B, M, M) similarity (tests and the naive greedy)."""
        sim = np.matmul(self.feats, self.feats_t)
        idx = np.arange(self.feats_t.shape[2])
        sim[:, idx, idx] += self.fix
        return sim


def similarity_kernel(
    item_vectors: NDArray[np.floating],
    categories: NDArray[np.integer] | None,
    category_weight: float,
    *,
    spare: int = 0,
) -> SimilarityKernel:
    """Build the kernel for (B, M, D) item vectors and (B, M) category codes (-1 = unknown).

    Vectors are re-normalised to unit length here; zero vectors stay zero. Without
    categories the weight is ignored and S is the plain cosine. ``spare`` reserves that many
    scratch rows after the features (see :meth:`SimilarityKernel.workspace`).
    """
    if not 0.0 <= category_weight <= 1.0:
        raise ValueError(f"category_weight must be in [0, 1], got {category_weight}")
    vecs = np.asarray(item_vectors)
    n_b, n_m, dim = vecs.shape
    weight = 0.0 if categories is None else float(category_weight)
    if weight:
        cats = np.asarray(categories, dtype=np.int64).reshape(n_b, n_m)
        dense, width = _dense_codes(cats)
    else:
        dense, width = np.full((n_b, n_m), -1, dtype=np.int64), 0
    # np.empty, not zeros: zeroing a ~200 KB buffer per list costs more than a greedy step.
    buffer = np.empty((n_b, dim + width + spare, n_m))
    unit = buffer[:, :dim]
    unit[...] = np.swapaxes(vecs, 1, 2)
    norms = np.sqrt(np.square(unit).sum(axis=1))
    has_vec = norms > 1e-12
    unit *= (np.sqrt(1.0 - weight) / np.where(has_vec, norms, np.inf))[:, None, :]
    fix = (1.0 - weight) * ~has_vec
    if width:
        onehot = buffer[:, dim : dim + width]
        onehot[...] = 0.0
        bi, mi = np.nonzero(dense >= 0)
        onehot[bi, dense[bi, mi], mi] = np.sqrt(weight)
        fix = fix + weight * (dense < 0)
    return SimilarityKernel(buffer[:, : dim + width], fix, buffer if spare else None)


def _dense_codes(cats: I64) -> tuple[I64, int]:
    """Per-list codes 0..n-1 for the known categories (-1 stays -1), and the largest n."""
    order = np.argsort(cats, axis=1, kind="stable")
    rows = np.arange(cats.shape[0])[:, None]
    ranked = cats[rows, order]
    known = ranked >= 0
    new = known.copy()
    new[:, 1:] &= ranked[:, 1:] != ranked[:, :-1]
    dense_sorted = np.where(known, np.cumsum(new, axis=1) - 1, -1)
    dense = np.empty_like(cats)
    dense[rows, order] = dense_sorted
    width = int(new.sum(axis=1).max(initial=0))
    return dense, width


def standardise_relevance(relevance: NDArray[np.floating], eligible: NDArray[np.bool_]) -> F64:
    """Per-list z-scores of relevance over the eligible candidates (B, M), 0 elsewhere.

    A list with fewer than two eligible candidates, or with equal scores, gets all zeros.
    """
    rel = np.asarray(relevance, dtype=np.float64)
    mask = eligible & np.isfinite(rel)
    n = np.maximum(mask.sum(axis=1, keepdims=True), 1)
    mean = np.where(mask, rel, 0.0).sum(axis=1, keepdims=True) / n
    dev = np.where(mask, rel - mean, 0.0)
    std = np.sqrt(np.square(dev).sum(axis=1, keepdims=True) / n)
    return np.divide(dev, std, out=np.zeros_like(dev), where=std > 1e-12)
