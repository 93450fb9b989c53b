"""Fast greedy MAP inference for a determinantal point process (Chen, Zhang & Zhou, 2018).

The list Y is grown one item at a time, each step taking the candidate with the largest gain

    (1 - t) * relevance_i + t * log d_i^2,

where d_i^2 is the part of item i's similarity-space vector not explained by the items already
chosen (the Schur complement S_ii - S_iY S_YY^-1 S_Yi, dimensionless, in [0, 1]). Summed over
the list this is ``(1 - t) * sum(relevance) + t * log det(S_Y)``: t times the log-determinant
of Chen et al.'s kernel ``L = Diag(q) S Diag(q)``, ``q = exp(alpha * relevance)``, ``alpha =
(1 - t) / (2 t)``. The greedy here takes t and S as given; :mod:`stream_rec.rerank.batch`
passes the shrunk kernel ``(1 - eps) I + eps S`` and the t that a policy's theta means on it
(:func:`dpp_shrinkage`, :func:`log_det_weight`).

Working with S and log d^2 rather than with L and q keeps every number in [0, 1] however large
alpha gets: nothing overflows, and t -> 0 tends smoothly to the relevance order.

d^2 is kept up to date with Chen et al.'s incremental Cholesky step: one new row of the factor
per pick, O(M (D + K)) per step, O(K M (D + K)) per list. A candidate whose d^2 falls below
``eps`` is spanned by the chosen items and is not a DPP pick (so rounding noise cannot decide
for it); when every candidate left is spanned, the DPP stops and the rest of the list is
filled in relevance order, so the output still has min(k, eligible) items. (A shrunk kernel
keeps d^2 >= 1 - eps: nothing is spanned.)

The loops run compiled, one list after another (:mod:`stream_rec.rerank.dpp_kernels`):
numpy's per-call overhead made a step cost more than its arithmetic.
:mod:`stream_rec.rerank.dpp_reference` is the same algorithm in plain numpy, its readable
specification, and gives bit-identical results.

The sliding-window variant (Chen et al., Algorithm 2) lets only the last ``window - 1`` chosen
items count when choosing the next, so any ``window`` consecutive items are diverse together;
the oldest item leaves the Cholesky factor through Givens rotations, O(window M) per step.

Candidates come in the canonical order set by :mod:`stream_rec.rerank.batch` (relevance
descending, then item key), so ``argmax`` taking the first of equal gains breaks ties
deterministically, and "first allowed position" is "most relevant left".
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from stream_rec.rerank.rules import CategoryCap
from stream_rec.rerank.similarity import SimilarityKernel

#: Smallest d^2 (a squared sine, dimensionless) at which the DPP keeps choosing.
DEFAULT_EPS = 1e-9
#: Largest exponent magnitude for which exp() of relevance gaps stays a normal float64.
_EXP_SAFE = 600.0


class DppTrace(NamedTuple):
    """The picks, and what a caller needs to prove that candidates left out could not win."""

    #: (B, k) int64 positions, -1 where a list ran out.
    picks: NDArray[np.int64]
    #: (B,) the smallest gain (as compared: q^2 d^2, or the log form) at which a pick was made.
    least_gain: NDArray[np.float64]
    #: (B,) True when every pick was the plain argmax: none spanned, no fill by relevance.
    clean: NDArray[np.bool_]


def dpp_greedy(
    kernel: SimilarityKernel,
    relevance: NDArray[np.float64],
    allowed: NDArray[np.bool_],
    k: int,
    theta: float,
    *,
    cap: CategoryCap | None = None,
    window: int | None = None,
    eps: float = DEFAULT_EPS,
) -> NDArray[np.int64]:
    """Pick up to ``k`` positions per list, (B, k) int64, -1 where a list ran out.

    ``relevance`` (B, M) is standardised; ``allowed`` (B, M) is the eligibility mask (not
    modified); ``cap`` enforces a per-category limit during selection.
    """
    return dpp_greedy_traced(
        kernel, relevance, allowed, k, theta, cap=cap, window=window, eps=eps
    ).picks


def dpp_greedy_traced(
    kernel: SimilarityKernel,
    relevance: NDArray[np.float64],
    allowed: NDArray[np.bool_],
    k: int,
    theta: float,
    *,
    cap: CategoryCap | None = None,
    window: int | None = None,
    eps: float = DEFAULT_EPS,
    base: tuple[NDArray[np.float64], bool] | None = None,
) -> DppTrace:
    """:func:`dpp_greedy` that also reports each list's smallest pick gain and cleanness.

    ``base`` is :func:`gain_base` of a wider pool whose first M candidates these are, so
    that gains are on that pool's scale (default: computed from ``relevance``). ``cap``'s
    counts are updated in place, as :meth:`CategoryCap.filled_by` does.
    """
    n_b, n_m = relevance.shape
    cap = cap or CategoryCap(None, None)
    if k <= 0 or n_m == 0:
        none = np.full((n_b, max(k, 0)), -1, dtype=np.int64)
        return DppTrace(none, np.full(n_b, np.inf), np.zeros(n_b, dtype=bool))
    base = base or gain_base(relevance, allowed, theta)
    width, windowed = cond_width(k, window)
    # Imported here, not at the top: numba costs ~0.3 s to import (see dpp_kernels).
    from stream_rec.rerank.dpp_kernels import greedy_lists

    has_codes = kernel.has_categories and kernel.codes is not None
    picks, least, clean = greedy_lists(
        kernel.workspace(width), kernel.feats_t.shape[1],
        kernel.codes if has_codes else None, kernel.category_weight,
        base[0], base[1], allowed, k, theta,
        cap.codes, cap.same, cap.cap if cap.active else 0, width, windowed, eps,
    )  # fmt: skip
    return DppTrace(picks, least, clean)


def cond_width(k: int, window: int | None) -> tuple[int, bool]:
    """How many chosen items condition a pick, and whether old ones must leave the factor."""
    width = k - 1 if window is None else min(window - 1, k - 1)
    return max(width, 0), window is not None and width < k - 1


def dpp_shrinkage(k: int, window: int | None = None) -> float:
    """eps of the DPP's kernel ``(1 - eps) I + eps S``: one over the items conditioning a pick.

    Why shrink: on S itself the log-determinant saturates. Once a list holds a few items of
    one category, the category direction is spent: the 10th item of that category costs
    barely more than the 3rd (for S = 0.5 cos + 0.5 [same category] and orthogonal vectors,
    log d^2 of the next one goes -0.29, -0.41, -0.47, ... towards log 0.5), and what is left
    to choose between is the embedding directions, which a category-blind list can fill
    with items of the same category. Shrunk
    so that any W conditioning items have off-diagonal row sums of at most W * eps = 1, every
    S_Y stays in the range where ``log det((1 - eps) I + eps S_Y) = -eps^2 * sum over pairs of
    S_ij^2 + O(eps^3)``: each similar pair in the list counts, however many there already are,
    as an intra-list diversity metric counts pairs. Depends on the list length only.
    """
    width = cond_width(k, window)[0]
    return 1.0 / max(width, 1)


def log_det_weight(theta: float, shrink: float) -> float:
    """The greedy's weight t of log d^2 that the policy's theta means on a kernel shrunk by eps.

    t / (1 - t) = theta / ((1 - theta) * eps^2), so the greedy maximises ``(1 - theta) *
    sum(relevance) + theta * log det(S'_Y) / eps^2``, which for the shrunk kernel S' is
    ``(1 - theta) * sum(relevance) - theta * sum over pairs of S_ij^2`` up to O(eps): theta
    weighs relevance (in standard deviations) against similar pairs, whatever eps is. eps = 1
    gives t = theta. theta = 0 and 1 stay the relevance order and pure diversity.
    """
    if theta <= 0.0 or theta >= 1.0:
        return float(theta)
    return theta / (theta + (1.0 - theta) * shrink * shrink)


def gain_base(
    relevance: NDArray[np.float64], allowed: NDArray[np.bool_], theta: float
) -> tuple[NDArray[np.float64], bool]:
    """Per-candidate part of the gain (B, M), and whether it is in log form.

    The greedy compares gains as exp(gain / theta) = q^2 * d^2 with
    q^2 = exp((1 - theta) / theta * (relevance - list max)): one multiply per step and the
    same argmax. When theta is so small that q^2 would underflow, it keeps the log form,
    (1 - theta) * relevance + theta * log d^2.
    """
    if theta == 0.0:
        return (1.0 - theta) * relevance, True
    # A list with nothing allowed gets top = -inf and low = inf: its gap (-inf) never asks
    # for the log form, and its base (exp(0) = 1 everywhere) is never used.
    top = np.maximum.reduce(relevance, axis=1, where=allowed, initial=-np.inf, keepdims=True)
    low = np.minimum.reduce(relevance, axis=1, where=allowed, initial=np.inf, keepdims=True)
    gap = float(np.maximum.reduce(top - low, axis=None))
    # A subnormal theta makes the exponent's factor infinite (inf * 0 would be nan).
    if gap * (1.0 - theta) > _EXP_SAFE * theta or not math.isfinite((1.0 - theta) / theta):
        return (1.0 - theta) * relevance, True
    return np.exp((1.0 - theta) / theta * np.minimum(relevance - top, 0.0)), False
