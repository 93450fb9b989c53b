"""Statistics for experiment reports and traffic allocation: pure functions on additive sums.

The unit of analysis is the shopper, not the event: one shopper's clicks are correlated (a
shopper who clicks a lot clicks a lot in every list), so treating events as independent makes
standard errors too small and A/A tests fire far more often than alpha. Each arm keeps
:class:`Sums`, the per-shopper sufficient statistics of a ratio metric ``sum(x) / sum(y)``;
they add, so they can be accumulated from a stream and merged across workers. A mean is the
case ``y = 1`` per shopper, a proportion of shoppers additionally has ``x`` in {0, 1}.

* Standard errors use the delta method for a ratio of means over independent shoppers, which
  is what a bootstrap over shoppers would estimate, at no extra cost.
* Two arms are compared with a two-sided z-test on the difference (arms are independent, and
  report sizes are large enough for the normal approximation).
* Sample-ratio mismatch is a chi-square goodness-of-fit test of assignment counts.
* Thompson sampling turns Beta posteriors into traffic weights, with a floor per arm so that
  no arm starves and the estimates of every arm keep improving.

Only numpy and math: the normal and chi-square tails come from ``math.erfc`` and a regularised
incomplete gamma function implemented here, and the inverse normal from a rational
approximation polished with Halley steps on ``erfc``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

_SQRT2 = math.sqrt(2.0)
_SQRT2PI = math.sqrt(2.0 * math.pi)
# Relative tolerance of the incomplete-gamma series and continued fraction: a few ulps, well
# inside the 1e-10 the callers need.
_GAMMA_EPS = 1e-15
_GAMMA_MAX_ITER = 10_000
_TINY = 1e-300  # stands in for zero in Lentz's algorithm, where a zero would divide


@dataclass(frozen=True, slots=True)
class Sums:
    """Additive per-shopper sums for a ratio metric sum(x)/sum(y) (y = 1 per shopper gives a mean).

    ``n`` is the number of shoppers; the other fields are sums over shoppers of ``x``, ``y``,
    ``x*x``, ``y*y`` and ``x*y``. Sums of disjoint sets of shoppers merge with ``+``.
    """

    n: int = 0
    sx: float = 0.0
    sy: float = 0.0
    sxx: float = 0.0
    syy: float = 0.0
    sxy: float = 0.0

    def add(self, x: float, y: float) -> Sums:
        """These sums with one more shopper, whose totals are ``x`` and ``y``."""
        return Sums(self.n + 1, self.sx + x, self.sy + y, self.sxx + x * x, self.syy + y * y,
                    self.sxy + x * y)

    def __add__(self, other: Sums) -> Sums:
        if not isinstance(other, Sums):
            return NotImplemented
        return Sums(self.n + other.n, self.sx + other.sx, self.sy + other.sy,
                    self.sxx + other.sxx, self.syy + other.syy, self.sxy + other.sxy)

    @classmethod
    def of(cls, x: ArrayLike, y: ArrayLike) -> Sums:
        """Sums of shoppers given as arrays of their ``x`` and ``y`` (a scalar ``y`` is for all).

        Raises ValueError unless ``x`` is one-dimensional and ``y`` is a scalar or has its shape.
        """
        xs = np.asarray(x, dtype=np.float64)
        ys = np.asarray(y, dtype=np.float64)
        if xs.ndim != 1:
            raise ValueError(f"x must be one-dimensional, got shape {xs.shape}")
        if ys.ndim == 0:
            ys = np.broadcast_to(ys, xs.shape)
        elif ys.shape != xs.shape:
            raise ValueError(f"x and y must have the same shape, got {xs.shape} and {ys.shape}")
        return cls(int(xs.size), float(xs.sum()), float(ys.sum()), float(xs @ xs),
                   float(ys @ ys), float(xs @ ys))


@dataclass(frozen=True, slots=True)
class Estimate:
    """A ratio estimate with its standard error (delta method).

    ``value`` is ``sx / sy`` (nan when ``sy == 0``); ``se`` is nan when ``n < 2`` or ``sy == 0``.
    """

    value: float
    se: float
    n: int

    def ci95(self) -> tuple[float, float]:
        """The normal 95 % confidence interval, ``value -/+ 1.959964 * se``."""
        half = _Z975 * self.se
        return self.value - half, self.value + half


def ratio(s: Sums) -> Estimate:
    """``sum(x) / sum(y)`` with its delta-method standard error over independent shoppers.

    Var(r) ~ (vx - 2 r cxy + r^2 vy) / (n my^2) with sample (n - 1) (co)variances. With
    ``y = 1`` for every shopper, vy and cxy are 0 and this is the variance of the mean.
    """
    if s.sy == 0:
        return Estimate(math.nan, math.nan, s.n)
    r = s.sx / s.sy
    if s.n < 2:
        return Estimate(r, math.nan, s.n)
    n = s.n
    # Centred sums from raw ones lose digits to cancellation, which can leave a variance of
    # truly constant data a hair below zero; clip so the square root stays real.
    vx = max((s.sxx - s.sx * s.sx / n) / (n - 1), 0.0)
    vy = max((s.syy - s.sy * s.sy / n) / (n - 1), 0.0)
    cxy = (s.sxy - s.sx * s.sy / n) / (n - 1)
    my = s.sy / n
    # The numerator is the variance of x - r*y, a quadratic form in a PSD covariance: it can
    # only be negative through rounding.
    var = max(vx - 2.0 * r * cxy + r * r * vy, 0.0) / (n * my * my)
    return Estimate(r, math.sqrt(var), n)


@dataclass(frozen=True, slots=True)
class Comparison:
    """Treatment against control on one metric.

    * ``lift``: ``(t - c) / c``, relative; nan when ``c == 0`` or undefined.
    * ``difference``: ``t - c``, absolute.
    * ``se``: of the difference, ``sqrt(se_c^2 + se_t^2)`` (independent arms).
    * ``p_value``: two-sided z-test on the difference; 1.0 when ``se`` and the difference are
      both 0, 0.0 when ``se`` is 0 but the difference is not, nan when undefined.
    * ``mde``: the minimum detectable effect at this traffic, relative to ``c``:
      ``(z_{1-alpha/2} + z_{power}) * se / |c|``; nan when ``c == 0`` or undefined.
    """

    lift: float
    difference: float
    se: float
    p_value: float
    mde: float

    def significant(self, alpha: float = 0.05) -> bool:
        """Whether the p-value is below ``alpha`` (never, when it is undefined)."""
        return self.p_value < alpha


def compare(control: Sums, treatment: Sums, alpha: float = 0.05, power: float = 0.8) -> Comparison:
    """Compare the ratio metric of two independent arms (``alpha`` and ``power`` set the MDE).

    Raises ValueError unless ``alpha`` and ``power`` are in (0, 1).
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be in (0, 1), got {power}")
    c = ratio(control)
    t = ratio(treatment)
    difference = t.value - c.value
    se = math.sqrt(c.se * c.se + t.se * t.se)
    if math.isnan(difference) or math.isnan(se):
        p_value = math.nan
    elif se == 0.0:
        # No sampling noise at all (e.g. every shopper identical in both arms): the observed
        # difference is the difference.
        p_value = 1.0 if difference == 0.0 else 0.0
    else:
        p_value = min(1.0, 2.0 * normal_sf(abs(difference) / se))
    defined_base = c.value != 0.0 and not math.isnan(c.value)
    lift = difference / c.value if defined_base else math.nan
    z_sum = normal_ppf(1.0 - alpha / 2.0) + normal_ppf(power)
    mde = z_sum * se / abs(c.value) if defined_base else math.nan
    return Comparison(lift, difference, se, p_value, mde)


def srm_p_value(counts: Sequence[int], weights: Sequence[float]) -> float:
    """Sample-ratio mismatch: chi-square goodness of fit of the assignment counts against the
    arms' weights.

    Expected counts are ``total * w_i / sum(w)``; the statistic sums ``(o - e)^2 / e`` over arms
    with ``e > 0`` and has one degree of freedom fewer than the arms with ``w > 0``. Returns 1.0
    when there are no counts or fewer than two weighted arms, and 0.0 when an arm with weight 0
    has shoppers (assignment cannot put anyone there). Raises ValueError on lengths that differ
    or on negative or non-finite inputs.
    """
    if len(counts) != len(weights):
        raise ValueError(f"{len(counts)} counts for {len(weights)} weights")
    if any(c < 0 for c in counts):
        raise ValueError(f"counts must be >= 0, got {list(counts)}")
    if any(not (math.isfinite(w) and w >= 0.0) for w in weights):
        raise ValueError(f"weights must be finite and >= 0, got {list(weights)}")
    total = sum(counts)
    if total == 0:
        return 1.0
    if any(w == 0.0 and c > 0 for c, w in zip(counts, weights, strict=True)):
        return 0.0
    df = sum(1 for w in weights if w > 0.0) - 1
    if df < 1:
        return 1.0
    weight_sum = math.fsum(weights)
    statistic = 0.0
    for c, w in zip(counts, weights, strict=True):
        expected = total * w / weight_sum
        if expected > 0.0:
            statistic += (c - expected) ** 2 / expected
    return chi2_sf(statistic, df)


def chi2_sf(statistic: float, df: int) -> float:
    """Upper tail of the chi-square distribution with ``df`` degrees of freedom.

    Raises ValueError unless ``df >= 1``.
    """
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    if math.isnan(statistic):
        return math.nan
    if statistic <= 0.0:
        return 1.0
    return _gamma_q(df / 2.0, statistic / 2.0)


def _gamma_q(a: float, x: float) -> float:
    """Regularised upper incomplete gamma Q(a, x) for a > 0, x > 0."""
    if math.isinf(x):
        return 0.0
    # log of x^a e^-x / Gamma(a), the factor both expansions share; in logs so that large a
    # and x neither overflow nor underflow before they cancel.
    log_prefix = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:
        # The series for P converges quickly here, and Q = 1 - P stays above 0.08 (its least,
        # at a = 1/2), so the subtraction costs no relative accuracy.
        return max(0.0, 1.0 - _gamma_p_series(a, x, log_prefix))
    # In the tail the continued fraction for Q converges quickly and gives Q directly, with
    # full relative accuracy even when Q is tiny.
    return _gamma_q_fraction(a, x, log_prefix)


def _gamma_p_series(a: float, x: float, log_prefix: float) -> float:
    # P(a, x) = x^a e^-x / Gamma(a) * sum_k x^k / (a (a+1) ... (a+k))
    term = 1.0 / a
    total = term
    denominator = a
    for _ in range(_GAMMA_MAX_ITER):
        denominator += 1.0
        term *= x / denominator
        total += term
        if abs(term) < abs(total) * _GAMMA_EPS:
            break
    return total * math.exp(log_prefix)


def _gamma_q_fraction(a: float, x: float, log_prefix: float) -> float:
    # Q(a, x) = x^a e^-x / Gamma(a) * 1/(x+1-a- 1(1-a)/(x+3-a- 2(2-a)/(x+5-a- ...))),
    # evaluated front to back with the modified Lentz method.
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, _GAMMA_MAX_ITER):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        if abs(d) < _TINY:
            d = _TINY
        c = b + an / c
        if abs(c) < _TINY:
            c = _TINY
        d = 1.0 / d
        step = d * c
        h *= step
        if abs(step - 1.0) < _GAMMA_EPS:
            break
    return h * math.exp(log_prefix)


def normal_sf(z: float) -> float:
    """Upper tail ``P(Z > z)`` of the standard normal distribution."""
    # erfc keeps full relative accuracy far into the upper tail, where 1 - cdf would be 0.
    return 0.5 * math.erfc(z / _SQRT2)


def normal_ppf(p: float) -> float:
    """Inverse of the standard normal CDF. Raises ValueError unless ``0 < p < 1``."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if p > 0.5:
        # 1 - p is exact for p in [0.5, 1], so symmetry loses nothing; working in the lower
        # tail keeps erfc's relative accuracy where the refinement needs it.
        return -_lower_ppf(1.0 - p)
    return _lower_ppf(p)


def _lower_ppf(p: float) -> float:
    """Normal quantile for 0 < p <= 0.5."""
    # Starting point: Abramowitz & Stegun 26.2.23, a rational function of sqrt(-2 ln p) good
    # to about 4.5e-4 over the whole lower half.
    t = math.sqrt(-2.0 * math.log(p))
    numerator = 2.515517 + t * (0.802853 + t * 0.010328)
    denominator = 1.0 + t * (1.432788 + t * (0.189269 + t * 0.001308))
    z = -(t - numerator / denominator)
    # Halley steps on f(z) = Phi(z) - p (Phi from erfc): cubic convergence takes 4.5e-4 to
    # machine precision in two steps; the third only confirms.
    for _ in range(3):
        density = math.exp(-0.5 * z * z) / _SQRT2PI
        if density == 0.0:
            break  # p is subnormal: the start is as good as a double can tell
        u = (0.5 * math.erfc(-z / _SQRT2) - p) / density
        step = u / (1.0 + 0.5 * z * u)
        z -= step
        if abs(step) <= 1e-15 * max(1.0, abs(z)):
            break
    return z


_Z975 = normal_ppf(0.975)


def thompson_weights(successes: Sequence[float], trials: Sequence[float], floor: float,
                     rng: np.random.Generator, draws: int = 20_000) -> tuple[float, ...]:
    """Traffic weights from Beta(1 + s, 1 + t - s) posteriors: each arm's probability of being
    the best (Monte Carlo over `draws` joint samples), mixed with a floor share per arm.

    Weights are ``floor + (1 - k * floor) * P(best_i)`` for ``k`` arms and sum to 1. Successes
    are clipped to ``[0, trials]``. Raises ValueError unless ``0 <= floor <= 1 / k``, there is
    at least one arm, the lengths match, trials are finite and >= 0, and ``draws >= 1``.
    """
    k = len(trials)
    if k == 0:
        raise ValueError("at least one arm is needed")
    if len(successes) != k:
        raise ValueError(f"{len(successes)} successes for {k} trials")
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    # A hair of tolerance so that floor = 1 / k computed by the caller is accepted.
    if not (0.0 <= floor <= 1.0 / k + 1e-12):
        raise ValueError(f"floor must be in [0, 1/{k}], got {floor}")
    t = np.asarray(trials, dtype=np.float64)
    s = np.asarray(successes, dtype=np.float64)
    if not np.all(np.isfinite(t) & (t >= 0.0)):
        raise ValueError(f"trials must be finite and >= 0, got {list(trials)}")
    if np.any(np.isnan(s)):
        raise ValueError(f"successes must not be nan, got {list(successes)}")
    s = np.clip(s, 0.0, t)
    samples = rng.beta(1.0 + s, 1.0 + t - s, size=(draws, k))
    # Ties between continuous draws have probability 0, so argmax's first-index rule biases
    # nothing.
    p_best = np.bincount(np.argmax(samples, axis=1), minlength=k) / draws
    share = max(1.0 - k * floor, 0.0)
    return tuple(float(w) for w in floor + share * p_best)
