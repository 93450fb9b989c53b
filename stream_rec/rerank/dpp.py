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
per pick, O(M (D + K)) per step, O(K M (D + K)) per list, as vector operations over the M
candidates. A candidate whose d^2 falls below ``eps`` is spanned by the chosen items and is
not a DPP pick (so rounding noise cannot decide for it); when every candidate left is
spanned, the DPP stops and the rest of the list is filled in relevance order, so the output
still has min(k, eligible) items. (A shrunk kernel keeps d^2 >= 1 - eps: nothing is spanned.)

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
#: Up to this many lists, a per-list loop beats the lock-step loop over the batch.
LOOP_MAX_LISTS = 1
_TINY = 1e-300
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
    that gains are on that pool's scale (default: computed from ``relevance``).
    """
    n_b, n_m = relevance.shape
    cap = cap or CategoryCap(None, None)
    if k <= 0 or n_m == 0:
        none = np.full((n_b, max(k, 0)), -1, dtype=np.int64)
        return DppTrace(none, np.full(n_b, np.inf), np.zeros(n_b, dtype=bool))
    base = base or gain_base(relevance, allowed, theta)
    work = kernel.workspace(_cond_width(k, window)[0])
    if n_b <= LOOP_MAX_LISTS:
        one = [
            _dpp_one(kernel, work[b], b, base[0][b], base[1], allowed[b], k, theta, cap,
                     window, eps)
            for b in range(n_b)
        ]  # fmt: skip
        return DppTrace(
            np.stack([o[0] for o in one]),
            np.array([o[1] for o in one]),
            np.array([o[2] for o in one], dtype=bool),
        )
    return _dpp_many(kernel, work, base, allowed, k, theta, cap, window, eps)


def _cond_width(k: int, window: int | None) -> tuple[int, bool]:
    """How many chosen items condition a pick, and whether old ones must leave the factor."""
    width = k - 1 if window is None else min(window - 1, k - 1)
    return max(width, 0), window is not None and width < k - 1


def _dpp_one(
    kernel: SimilarityKernel,
    work: NDArray[np.float64],
    b: int,
    base_row: NDArray[np.float64],
    use_log: bool,
    allowed: NDArray[np.bool_],
    k: int,
    theta: float,
    cap: CategoryCap,
    window: int | None,
    eps: float,
) -> tuple[NDArray[np.int64], float, bool]:
    """One list, with preallocated buffers and one matrix-vector product per pick.

    ``work`` (F + width, M) holds [F^T ; C]: every candidate's features, then its Cholesky
    coordinates (one row per chosen item; scratch until written), so the new factor row
    S_j. - C^T c_j is the single product ``work^T [F_j ; -c_j]`` plus the category term,
    written in place as the next row of C.
    """
    dim, n_m = kernel.feats_t.shape[1:]
    out = np.full(k, -1, dtype=np.int64)
    width, windowed = _cond_width(k, window)
    fill = theta == 0.0 or width == 0
    coords = work[dim:]  # (width, M): row r = every candidate's r-th coordinate
    sign = np.ones(dim + width)
    sign[dim:] = -1.0
    chol_v = np.zeros((width, width)) if windowed else None
    open_ = allowed.copy()
    blocked = -np.inf if use_log else -1.0
    base = np.where(allowed, base_row, blocked)
    gain = base.copy()
    least, clean = math.inf, not fill
    d2 = np.ones(n_m)
    tmp = np.empty(n_m)
    probe = np.empty(dim + width)
    codes = kernel.codes[b] if kernel.has_categories and kernel.codes is not None else None
    same = np.empty(n_m, dtype=bool)
    used = 0
    for step in range(k):
        if not fill:
            j = int(gain.argmax())
            if not open_[j] or d2[j] < eps:  # rare: look again among the unspanned only
                j = _best_unspanned(gain, open_, d2, eps)
                fill = j < 0  # every candidate left is spanned: fill by relevance
                clean = False
            least = min(least, float(gain[j]))
        if fill:
            j = int(open_.argmax())
            if not open_[j]:
                break
        out[step] = j
        open_[j] = False
        base[j] = blocked
        if cap.active:
            full = cap.filled_by(b, j)
            if full is not None:
                open_ &= ~full
                base[full] = blocked
        if fill or step == k - 1:
            continue
        if chol_v is not None and used == width:
            _drop_oldest(coords[None], chol_v[None], d2[None])
            used -= 1
        d_j = math.sqrt(d2[j])
        n_live = dim + used
        live = probe[:n_live]
        np.multiply(work[:n_live, j], sign[:n_live], out=live)
        live *= 1.0 / d_j
        if chol_v is not None:
            chol_v[used, :used] = coords[:used, j]
            chol_v[used, used] = d_j
        new = work[n_live]
        # (S_j. - C^T c_j) / d_j, except at j itself (S_jj lacks fix[j]), which is blocked.
        np.dot(work[:n_live].T, live, out=new)
        if codes is not None and codes[j] >= 0:
            np.equal(codes, codes[j], out=same)
            np.add(new, kernel.category_weight / d_j, out=new, where=same)
        used += 1
        np.multiply(new, new, out=tmp)
        d2 -= tmp
        if use_log:
            np.maximum(d2, _TINY, out=tmp)
            np.log(tmp, out=tmp)
            tmp *= theta
            np.add(base, tmp, out=gain)
        else:
            np.multiply(base, d2, out=gain)
    return out, least, clean


def _best_unspanned(
    gain: NDArray[np.float64], open_: NDArray[np.bool_], d2: NDArray[np.float64], eps: float
) -> int:
    """Best open candidate with d^2 >= eps, or -1 when there is none."""
    ok = open_ & (d2 >= eps)
    return int(np.where(ok, gain, -np.inf).argmax()) if ok.any() else -1


def _dpp_many(
    kernel: SimilarityKernel,
    work: NDArray[np.float64],
    base_in: tuple[NDArray[np.float64], bool],
    allowed: NDArray[np.bool_],
    k: int,
    theta: float,
    cap: CategoryCap,
    window: int | None,
    eps: float,
) -> DppTrace:
    """All B lists in lock-step: each step is a handful of (B, M) array operations."""
    n_b, dim, n_m = kernel.feats_t.shape
    out = np.full((n_b, k), -1, dtype=np.int64)
    allowed = allowed.copy()
    rows_b = np.arange(n_b)
    width, windowed = _cond_width(k, window)
    coords = work[:, dim:]
    sign = np.ones(dim + width)
    sign[dim:] = -1.0
    chol_v = np.zeros((n_b, width, width)) if windowed else None
    codes = None
    if kernel.has_categories and kernel.codes is not None:
        # An unknown category becomes a code of its own (-1 - position), matching only
        # itself: that is the w its diagonal holds in ``fix``, so no test for -1 per step.
        codes = np.where(kernel.codes >= 0, kernel.codes, -1 - np.arange(n_m))
    d2 = np.ones((n_b, n_m))
    base_raw, use_log = base_in
    blocked = -np.inf if use_log else -1.0
    # Picked and ineligible candidates carry a losing base, so the argmax needs no mask; a
    # winner that is blocked anyway (-1 times a d^2 rounded below 0) is caught by recheck.
    base = np.where(allowed, base_raw, blocked)
    gain = base.copy()
    sq = np.empty((n_b, n_m))
    fill = np.full(n_b, theta == 0.0 or width == 0)
    least, clean = np.full(n_b, np.inf), ~fill
    used = 0
    for step in range(k):
        jd = gain.argmax(axis=1)
        d2_pick = d2[rows_b, jd]
        recheck = (d2_pick < eps) | ~allowed[rows_b, jd]
        np.minimum(least, gain[rows_b, jd], out=least)
        if not recheck.any() and not fill.any():  # the common step: every list takes its best
            pick, alive = jd, None
        else:
            clean &= ~recheck
            if recheck.any():  # rare: look again among the unspanned only
                ok = allowed & (d2 >= eps)
                jd = np.where(recheck, np.where(ok, gain, -np.inf).argmax(axis=1), jd)
                fill |= recheck & ~ok.any(axis=1)
            jf = allowed.argmax(axis=1)
            alive = allowed[rows_b, jf]
            if not alive.any():
                break
            pick = np.where(fill, jf, jd)
            d2_pick = d2[rows_b, pick]
        out[:, step] = pick if alive is None else np.where(alive, pick, -1)
        allowed[rows_b, pick] = False
        base[rows_b, pick] = blocked
        if cap.active:
            cap.after_pick(out[:, step], allowed)
            np.copyto(base, blocked, where=~allowed)
        if step == k - 1 or bool(fill.all()):
            continue
        if chol_v is not None and used == width:
            _drop_oldest(coords, chol_v, d2)
            used -= 1
            d2_pick = d2[rows_b, pick]  # the downdate gave d^2 back
        n_live = dim + used
        d_pick = np.sqrt(np.maximum(d2_pick, _TINY))
        inv = 1.0 / d_pick
        if alive is not None:  # finished lists and fill-ups: a zero update
            inv[fill | ~alive] = 0.0
        probe = work[rows_b, :n_live, pick]
        probe *= sign[:n_live]
        probe *= inv[:, None]
        if chol_v is not None:
            chol_v[:, used, :used] = coords[rows_b, :used, pick]
            chol_v[:, used, used] = np.where(inv > 0, d_pick, 0.0)
        new = work[:, n_live]
        np.matmul(probe[:, None, :], work[:, :n_live], out=new[:, None])  # as in _dpp_one
        if codes is not None:
            same = codes == codes[rows_b, pick][:, None]
            np.add(new, (kernel.category_weight * inv)[:, None], out=new, where=same)
        used += 1
        np.multiply(new, new, out=sq)
        d2 -= sq
        if use_log:
            np.maximum(d2, _TINY, out=sq)
            np.log(sq, out=sq)
            sq *= theta
            np.add(base, sq, out=gain)
        else:
            np.multiply(base, d2, out=gain)
    return DppTrace(out, least, clean)


def _drop_oldest(
    chol_c: NDArray[np.float64], chol_v: NDArray[np.float64], d2: NDArray[np.float64]
) -> None:
    """Remove the oldest chosen item from a full window, in place, for B lists at once.

    ``chol_c`` (B, W, M) holds every candidate's coordinates, ``chol_v`` (B, W, W) the
    chosen items' Cholesky factor V. With A = [V[1:, 1:] | V[1:, 0]], Givens rotations of
    the last column into the others make A lower-triangular again (the new factor); the same
    rotations applied to every candidate's coordinates leave one coordinate over, whose
    square returns to the candidate's d^2.
    """
    width = chol_v.shape[1]
    fac = chol_v[:, 1:, 1:].copy()
    spare = chol_v[:, 1:, 0].copy()
    coords = chol_c[:, 1:width].copy()
    left = chol_c[:, 0].copy()
    for r in range(width - 1):
        a = fac[:, r, r]
        b = spare[:, r]
        radius = np.hypot(a, b)
        ok = radius > 0
        safe = np.where(ok, radius, 1.0)
        cos = np.where(ok, a / safe, 1.0)[:, None]
        sin = np.where(ok, b / safe, 0.0)[:, None]
        col = fac[:, :, r].copy()
        fac[:, :, r] = cos * col + sin * spare
        spare = cos * spare - sin * col
        z = coords[:, r].copy()
        coords[:, r] = cos * z + sin * left
        left = cos * left - sin * z
    d2 += left * left
    chol_c[:, : width - 1] = coords
    chol_c[:, width - 1 :] = 0.0
    chol_v[:, : width - 1, : width - 1] = fac
    chol_v[:, width - 1] = 0.0
    chol_v[:, :, width - 1] = 0.0


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
    width = _cond_width(k, window)[0]
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
