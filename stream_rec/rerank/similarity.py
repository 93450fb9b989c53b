"""What "similar" and "relevant" mean to the re-rankers, as plain arrays.

The similarity between two candidates i, j of one list is a convex blend of two positive
semi-definite (PSD) kernels,

    S_ij = (1 - w) * cos(v_i, v_j) + w * [i and j share a known category, or i == j],

so it stays PSD (a DPP needs that) and has a unit diagonal. An item of unknown category is in
a category of its own; an item without a vector (all zeros) is similar to nothing but itself
(a diagonal fix-up keeps S_ii = 1). Without categories, S is the plain cosine.

The DPP uses S shrunk toward the identity, ``(1 - eps) I + eps S`` (``shrink=eps``, see
:func:`stream_rec.rerank.dpp.dpp_shrinkage`): still PSD with a unit diagonal, and the same
similarity, only weaker, so that the log-determinant counts similar pairs rather than
saturating. MMR uses S itself.

The greedy loops never build the M x M matrix: they compute the one row of S they need per
pick from the feature rows and category codes held in a :class:`SimilarityKernel`.

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
    """S for B lists of M candidates: S = F F^T + c [same known category] + Diag(fix).

    Feature rows F_i (length F): the unit item vector scaled by sqrt(1 - w), optionally
    followed by sqrt(w) times a one-hot of the item's category. They are stored transposed,
    ``feats_t`` (B, F, M), so that a greedy step gets a row of F F^T from one matrix-vector
    product and writes its results as contiguous rows. Without one-hot rows the category
    part comes from ``codes`` (B, M) (-1 = unknown, similar to nothing), compared per row.
    ``fix`` (B, M) >= 0 tops the diagonal up to exactly 1 (unknown category: w; no vector:
    1 - w; plus 1 - eps when the kernel is shrunk by eps). Both parts are Gram matrices, so S
    is PSD.
    """

    feats_t: F64
    fix: F64
    #: ``feats_t`` plus zero or more spare rows: scratch the DPP may write past the features.
    buffer: F64 | None = None
    #: (B, M) int64 category codes, -1 = unknown; None = no category term beyond F's rows.
    codes: I64 | None = None
    #: c, the coefficient of category equality: w, times eps when shrunk (ignored without
    #: ``codes``).
    category_weight: float = 0.0

    @property
    def feats(self) -> F64:
        """Feature rows, (B, M, F) (a transposed view)."""
        return np.swapaxes(self.feats_t, 1, 2)

    @property
    def has_categories(self) -> bool:
        """Whether S has a category term."""
        return self.codes is not None and self.category_weight > 0.0

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

    def same_category(self) -> NDArray[np.bool_]:
        """(B, M, M) True where two candidates share a known category."""
        if self.codes is None:
            n_b, _, n_m = self.feats_t.shape
            return np.zeros((n_b, n_m, n_m), dtype=bool)
        codes = self.codes
        return (codes[:, :, None] == codes[:, None, :]) & (codes[:, :, None] >= 0)

    def row(self, b: int, j: int) -> F64:
        """Row j of list b's S, shape (M,) (a fresh array)."""
        cols = self.feats_t[b]
        out = cols.T @ cols[:, j]
        if self.has_categories and self.codes is not None and self.codes[b, j] >= 0:
            out += self.category_weight * (self.codes[b] == self.codes[b, j])
        out[j] += self.fix[b, j]
        return out

    def matrix(self) -> F64:
        """The full (B, M, M) similarity (tests and the naive greedy)."""
        sim = np.matmul(self.feats, self.feats_t)
        if self.has_categories:
            sim += self.category_weight * self.same_category()
        idx = np.arange(self.feats_t.shape[2])
        sim[:, idx, idx] += self.fix
        return sim


def similarity_kernel(
    item_vectors: NDArray[np.floating],
    categories: NDArray[np.integer] | None,
    category_weight: float,
    *,
    spare: int = 0,
    out: F64 | None = None,
    category_rows: bool | None = None,
    shrink: float = 1.0,
) -> SimilarityKernel:
    """Build the kernel for (B, M, D) item vectors and (B, M) category codes (-1 = unknown).

    Vectors are re-normalised to unit length here; zero vectors stay zero. Without
    categories (None, or no known code in the batch) the weight is ignored and S is the
    plain cosine. ``spare`` reserves that many
    scratch rows after the features (see :meth:`SimilarityKernel.workspace`). ``out``, a
    float64 array of at least (B, F + spare) x M, is used as that buffer instead of a fresh
    one: a batch reuses one buffer for all its chunks rather than paging in a new few MB
    each time.

    ``category_rows`` puts the category term into the feature rows, one row per known
    category (sqrt(w) times a one-hot), instead of comparing codes per pick. For one list the
    rows are cheaper (a slightly longer product replaces a comparison and a masked add per
    pick); for many lists in lock-step the comparison is (it is one pass over the batch, the
    rows a longer product per list). None chooses rows for a single list.

    ``shrink`` eps in (0, 1] returns ``(1 - eps) I + eps S`` instead of S (the DPP's kernel):
    every off-diagonal entry scaled by eps, the diagonal still 1.
    """
    if not 0.0 <= category_weight <= 1.0:
        raise ValueError(f"category_weight must be in [0, 1], got {category_weight}")
    if not 0.0 < shrink <= 1.0:
        raise ValueError(f"shrink must be in (0, 1], got {shrink}")
    vecs = np.asarray(item_vectors)
    n_b, n_m, dim = vecs.shape
    weight = 0.0 if categories is None else float(category_weight)
    if weight and not (np.asarray(categories) >= 0).any():
        # No candidate has a known category: the term would only halve the cosine's weight.
        # The worker passes -1 codes for a catalog without categories, offline evaluation
        # passes None; both must re-rank alike (diginetica served vs offline, docs/results.md).
        weight = 0.0
    codes = None
    known = None
    if weight:
        codes = np.asarray(categories, dtype=np.int64).reshape(n_b, n_m)
        if n_b == 1 if category_rows is None else category_rows:
            known = np.unique(codes[codes >= 0])
    n_f = dim if known is None else dim + known.size
    room = out is not None and out.shape[0] >= n_b and out.shape[1] >= n_f + spare
    if room and out is not None and out.shape[2] == n_m:
        buffer = out[:n_b, : n_f + spare]
    else:
        # np.empty, not zeros: zeroing a ~200 KB buffer per list costs more than a greedy step.
        buffer = np.empty((n_b, n_f + spare, n_m))
    unit = buffer[:, :dim]
    unit[...] = np.swapaxes(vecs, 1, 2)
    norms = np.sqrt(np.einsum("bdm,bdm->bm", unit, unit))
    has_vec = norms > 1e-12
    unit *= (np.sqrt(shrink * (1.0 - weight)) / np.where(has_vec, norms, np.inf))[:, None, :]
    fix = (1.0 - weight) * ~has_vec
    if codes is not None:
        fix = fix + weight * (codes < 0)
    if shrink < 1.0:
        fix = shrink * fix + (1.0 - shrink)
    if known is not None and codes is not None:
        rows = buffer[:, dim:n_f]
        np.equal(known[None, :, None], codes[:, None, :], out=rows)
        rows *= np.sqrt(shrink * weight)
        codes = None  # the rows carry the category term now
    return SimilarityKernel(buffer[:, :n_f], fix, buffer if spare else None, codes, shrink * weight)


#: Candidates whose relevance sets the z-score scale: the retrieval pool's default size, the
#: pool theta was tuned on (docs/results.md).
STANDARDISE_OVER = 200


def standardise_relevance(relevance: NDArray[np.floating], eligible: NDArray[np.bool_],
                          over: int = STANDARDISE_OVER) -> F64:
    """Per-list z-scores of relevance, with the mean and spread of the ``over`` most relevant
    eligible candidates (B, M); 0 where not eligible.

    Why not all of them: the worker's pool is the 200 retrieved candidates plus trending and
    new items, most of which score far lower. Counted in, 40 of them widened the spread, so the
    same theta bought more diversity than offline, where the pool is the best 200 (jdata2018,
    dpp:0.15: ILD@20 0.35 -> 0.44 and P@20 35.1 -> 33.6 from 40 low candidates alone). Over a
    fixed number of the best, theta means what it was tuned to mean, whatever else is in the
    pool. A list with fewer than two eligible candidates, or with equal scores, gets all zeros.
    """
    # np.add.reduce is what .sum() calls, minus a Python layer (this runs once per list).
    rel = np.asarray(relevance, dtype=np.float64)
    mask = eligible & np.isfinite(rel)
    basis = mask
    if rel.shape[1] > over:
        ranked = np.where(mask, rel, -np.inf)
        cut = -np.partition(-ranked, over - 1, axis=1)[:, over - 1: over]  # over-th best
        basis = mask & (rel >= cut)
    n = np.maximum(np.add.reduce(basis, axis=1, keepdims=True, dtype=np.int64), 1)
    mean = np.add.reduce(np.where(basis, rel, 0.0), axis=1, keepdims=True) / n
    spread = np.where(basis, rel - mean, 0.0)
    std = np.sqrt(np.add.reduce(np.square(spread), axis=1, keepdims=True) / n)
    dev = np.where(mask, rel - mean, 0.0)
    return dev / np.where(std > 1e-12, std, np.inf)  # dev / inf = 0 for a flat list
