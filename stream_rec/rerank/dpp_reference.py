"""The fast greedy DPP one list at a time in plain numpy: the readable specification.

:mod:`stream_rec.rerank.dpp_kernels` runs the same steps compiled; a property test
(tests/unit/test_dpp_compiled.py) checks that both give identical picks, smallest gains and
cleanness bit for bit. For that, every floating-point operation here is one the compiled
loops repeat in the same order:

- sums run over the rows in order, one rounded multiply and one rounded add per term (a BLAS
  product sums in blocks and with fused multiply-adds, so it would differ in the last bits);
- ``log`` and ``hypot`` are the C library's (``math.log``, ``np.hypot``), as numba calls them;
  numpy's vectorised ``np.log`` and Python's own ``math.hypot`` may round differently.

Not for serving: it runs a Python loop per feature row and per log. See
:mod:`stream_rec.rerank.dpp` for the algorithm and what the arguments mean.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from stream_rec.rerank.dpp import DEFAULT_EPS, DppTrace, cond_width, gain_base
from stream_rec.rerank.rules import CategoryCap
from stream_rec.rerank.similarity import SimilarityKernel

_TINY = 1e-300


def dpp_greedy_reference(
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
    """What :func:`stream_rec.rerank.dpp.dpp_greedy_traced` returns, list by list."""
    n_b, n_m = relevance.shape
    cap = cap or CategoryCap(None, None)
    if k <= 0 or n_m == 0:
        none = np.full((n_b, max(k, 0)), -1, dtype=np.int64)
        return DppTrace(none, np.full(n_b, np.inf), np.zeros(n_b, dtype=bool))
    base = base or gain_base(relevance, allowed, theta)
    picks = np.full((n_b, k), -1, dtype=np.int64)
    least = np.full(n_b, np.inf)
    clean = np.zeros(n_b, dtype=bool)
    for b in range(n_b):
        picks[b], least[b], clean[b] = dpp_one_reference(
            kernel, b, base[0][b], base[1], allowed[b], k, theta, cap, window, eps
        )
    return DppTrace(picks, least, clean)


def dpp_one_reference(
    kernel: SimilarityKernel,
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
    """List ``b``: its (k,) picks (-1 padded), smallest pick gain, and whether it is clean.

    ``coords`` (width, M) holds every candidate's Cholesky coordinates, one row per chosen
    item that conditions the next pick, so the new row is ``(S_j. - C^T c_j) / d_j``, written
    as one product over [F ; C] with the vector ``[F_j ; -c_j] / d_j``.
    """
    feats = kernel.feats_t[b]
    dim, n_m = feats.shape
    width, windowed = cond_width(k, window)
    out = np.full(k, -1, dtype=np.int64)
    coords = np.zeros((width, n_m))
    chol_v = np.zeros((width, width))
    fill = theta == 0.0 or width == 0
    least, clean = math.inf, not fill
    open_ = allowed.copy()
    blocked = -np.inf if use_log else -1.0
    base = np.where(allowed, base_row, blocked)
    gain = base.copy()
    d2 = np.ones(n_m)
    codes = kernel.codes[b] if kernel.has_categories and kernel.codes is not None else None
    used = 0
    for step in range(k):
        if not fill:
            j = int(gain.argmax())
            if not open_[j] or d2[j] < eps:  # look again among the unspanned only
                j = _best_unspanned(gain, open_, d2, eps)
                fill = j < 0  # every candidate left is spanned: fill by relevance
                clean = False
            if j >= 0:
                least = min(least, float(gain[j]))
        if fill:
            j = int(open_.argmax())
            if not open_[j]:
                break
        out[step] = j
        open_[j] = False
        base[j] = blocked
        full = cap.filled_by(b, j)
        if full is not None:
            open_ &= ~full
            base[full] = blocked
        if fill or step == k - 1:
            continue
        if windowed and used == width:
            _drop_oldest(coords, chol_v, d2)
            used -= 1
        d_j = math.sqrt(d2[j])
        inv = 1.0 / d_j
        live = np.concatenate([feats[:, j], -coords[:used, j]]) * inv
        if windowed:
            chol_v[used, :used] = coords[:used, j]
            chol_v[used, used] = d_j
        rows = np.concatenate([feats, coords[:used]])
        new = np.zeros(n_m)
        for row, weight in zip(rows, live, strict=True):  # in order: see the module docstring
            new += row * weight
        if codes is not None and codes[j] >= 0:
            new[codes == codes[j]] += kernel.category_weight * inv
        # Row j itself is off by fix[j] (S_jj's diagonal top-up), harmless: j is picked.
        coords[used] = new
        used += 1
        d2 -= new * new
        if use_log:
            logs = np.array([math.log(x) for x in np.maximum(d2, _TINY)])
            gain = base + theta * logs
        else:
            gain = base * d2
    return out, least, clean


def _best_unspanned(
    gain: NDArray[np.float64], open_: NDArray[np.bool_], d2: NDArray[np.float64], eps: float
) -> int:
    """First open candidate with d^2 >= eps and the largest gain, or -1 when there is none."""
    ok = np.flatnonzero(open_ & (d2 >= eps))
    return int(ok[gain[ok].argmax()]) if ok.size else -1


def _drop_oldest(
    coords: NDArray[np.float64], chol_v: NDArray[np.float64], d2: NDArray[np.float64]
) -> None:
    """Remove the oldest chosen item from a full window, in place.

    ``coords`` (W, M) holds every candidate's coordinates, ``chol_v`` (W, W) the chosen items'
    Cholesky factor V. With A = [V[1:, 1:] | V[1:, 0]], Givens rotations of the last column
    into the others make A lower-triangular again (the new factor); the same rotations
    applied to every candidate's coordinates leave one coordinate over, whose square returns
    to the candidate's d^2.
    """
    width = chol_v.shape[0]
    fac = chol_v[1:, 1:].copy()
    spare = chol_v[1:, 0].copy()
    rest = coords[1:].copy()
    left = coords[0].copy()
    for r in range(width - 1):
        a, b = float(fac[r, r]), float(spare[r])
        radius = float(np.hypot(a, b))
        cos, sin = (a / radius, b / radius) if radius > 0 else (1.0, 0.0)
        col = fac[:, r].copy()
        fac[:, r] = cos * col + sin * spare
        spare = cos * spare - sin * col
        z = rest[r].copy()
        rest[r] = cos * z + sin * left
        left = cos * left - sin * z
    d2 += left * left
    coords[: width - 1] = rest
    coords[width - 1 :] = 0.0
    chol_v[: width - 1, : width - 1] = fac
    chol_v[width - 1] = 0.0
    chol_v[:, width - 1] = 0.0
