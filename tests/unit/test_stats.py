"""Experiment statistics: sums, delta-method ratios, tests, calibration, Thompson weights."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from stream_rec.core.stats import (
    Comparison,
    Estimate,
    Sums,
    chi2_sf,
    compare,
    normal_ppf,
    normal_sf,
    ratio,
    srm_p_value,
    thompson_weights,
)


def _shoppers(rng: np.random.Generator, n: int, *, mean_items: float = 9.0, a: float = 1.0,
              b: float = 4.0, scale: float = 1.0, shape: tuple[int, ...] = ()
              ) -> tuple[np.ndarray, np.ndarray]:
    """Clicks and impressions of ``n`` heterogeneous shoppers (trailing axis), per data set.

    Each shopper has their own click probability from Beta(a, b) (times ``scale``, capped at 1)
    and sees 1 + Poisson(mean_items) items, each clicked with that probability.
    """
    size = (*shape, n)
    p = np.minimum(rng.beta(a, b, size=size) * scale, 1.0)
    items = 1 + rng.poisson(mean_items, size=size)
    clicks = rng.binomial(items, p)
    return clicks.astype(np.float64), items.astype(np.float64)


def _per_item_sums(clicks: np.ndarray, items: np.ndarray) -> Sums:
    """Sums with every impressed item as its own unit (x in {0, 1}, y = 1): the naive analysis."""
    total_clicks = float(clicks.sum())
    total_items = float(items.sum())
    # For 0/1 outcomes x*x = x, and y = 1 makes y*y = y and x*y = x.
    return Sums(int(total_items), total_clicks, total_items, total_clicks, total_items,
                total_clicks)


# --- Sums ---------------------------------------------------------------------------------


def test_sums_of_equals_repeated_add_and_merges_add_up() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, size=101)
    y = rng.integers(1, 9, size=101).astype(np.float64)
    added = Sums()
    for xi, yi in zip(x, y, strict=True):
        added = added.add(float(xi), float(yi))
    whole = Sums.of(x, y)
    merged = Sums.of(x[:40], y[:40]) + Sums.of(x[40:77], y[40:77]) + Sums.of(x[77:], y[77:])
    for other in (added, merged, Sums() + whole):
        assert other.n == whole.n == 101
        for field in ("sx", "sy", "sxx", "syy", "sxy"):
            assert getattr(other, field) == pytest.approx(getattr(whole, field), rel=1e-12)
    assert whole.sxy == pytest.approx(float(np.sum(x * y)), rel=1e-12)
    assert whole.syy == pytest.approx(float(np.sum(y * y)), rel=1e-12)


def test_sums_of_broadcasts_a_scalar_y_and_rejects_mismatched_shapes() -> None:
    x = np.array([1.0, 2.0, 4.0])
    assert Sums.of(x, 1.0) == Sums.of(x, np.ones(3))
    with pytest.raises(ValueError):
        Sums.of(x, np.ones(2))
    with pytest.raises(ValueError):
        Sums.of(np.ones((2, 2)), 1.0)


# --- ratio ----------------------------------------------------------------------------------


def test_ratio_with_unit_y_is_the_mean_and_its_standard_error() -> None:
    rng = np.random.default_rng(2)
    revenue = rng.lognormal(2.0, 1.0, size=500)
    est = ratio(Sums.of(revenue, np.ones_like(revenue)))
    assert est.n == 500
    assert est.value == pytest.approx(float(revenue.mean()), rel=1e-12)
    assert est.se == pytest.approx(float(revenue.std(ddof=1) / math.sqrt(500)), rel=1e-9)
    low, high = est.ci95()
    assert low == pytest.approx(est.value - 1.959964 * est.se, rel=1e-6)
    assert high == pytest.approx(est.value + 1.959964 * est.se, rel=1e-6)


def test_ratio_of_a_proportion_is_the_binomial_standard_error() -> None:
    bought = np.array([1.0] * 30 + [0.0] * 70)
    est = ratio(Sums.of(bought, 1.0))
    assert est.value == pytest.approx(0.3)
    # sample variance of 0/1 data is p(1-p) n/(n-1)
    assert est.se == pytest.approx(math.sqrt(0.3 * 0.7 / 99), rel=1e-12)


def test_ratio_undefined_cases() -> None:
    empty = ratio(Sums())
    assert math.isnan(empty.value) and math.isnan(empty.se) and empty.n == 0
    one = ratio(Sums().add(2.0, 4.0))
    assert one.value == 0.5 and math.isnan(one.se)
    no_y = ratio(Sums.of([1.0, 2.0], [0.0, 0.0]))
    assert math.isnan(no_y.value) and math.isnan(no_y.se)
    # Constant data: float error in the raw sums must not make the variance negative.
    constant = ratio(Sums.of(np.full(1000, 0.1), np.full(1000, 0.3)))
    assert constant.value == pytest.approx(1 / 3) and constant.se == pytest.approx(0.0, abs=1e-9)


def test_delta_method_standard_error_matches_a_bootstrap_over_shoppers() -> None:
    rng = np.random.default_rng(3)
    clicks, items = _shoppers(rng, 600, a=0.5, b=2.0, mean_items=12.0)
    est = ratio(Sums.of(clicks, items))
    idx = rng.integers(0, clicks.size, size=(4000, clicks.size))
    boot = clicks[idx].sum(axis=1) / items[idx].sum(axis=1)
    boot_se = float(boot.std(ddof=1))
    assert est.value == pytest.approx(float(clicks.sum() / items.sum()))
    assert est.se == pytest.approx(boot_se, rel=0.10)
    # And the naive per-item standard error is far too small on the same data.
    naive = ratio(_per_item_sums(clicks, items))
    assert naive.value == pytest.approx(est.value)
    assert naive.se < 0.75 * boot_se


# --- distributions -------------------------------------------------------------------------


@pytest.mark.parametrize(("statistic", "df"), [
    (3.841458820694124, 1),
    (5.991464547107979, 2),
    (11.0704976935, 5),
    (18.307038053275146, 10),
])
def test_chi2_sf_at_textbook_critical_values(statistic: float, df: int) -> None:
    assert chi2_sf(statistic, df) == pytest.approx(0.05, rel=1e-8)


def test_chi2_sf_matches_closed_forms_to_1e_10() -> None:
    # Integer a = df/2: Q(k, y) = e^-y sum_{j<k} y^j / j!.  Half-integer a = m + 1/2:
    # Q = erfc(sqrt y) + e^-y sum_{j=1..m} y^(j-1/2) / Gamma(j+1/2).  Both sides of the
    # series / continued-fraction switch (x = a + 1) are covered, into the far tail.
    for df in range(1, 41):
        for x in np.logspace(-3, 2.7, 120):
            y = float(x) / 2.0
            if df % 2 == 0:
                expected = math.exp(-y) * math.fsum(y**j / math.factorial(j)
                                                    for j in range(df // 2))
            else:
                expected = math.erfc(math.sqrt(y)) + math.exp(-y) * math.fsum(
                    y ** (j - 0.5) / math.gamma(j + 0.5) for j in range(1, (df - 1) // 2 + 1))
            if expected > 1e-290:
                assert chi2_sf(float(x), df) == pytest.approx(expected, rel=1e-10), (df, x)


def test_chi2_sf_edges() -> None:
    assert chi2_sf(0.0, 3) == 1.0
    assert chi2_sf(-1.0, 3) == 1.0
    assert chi2_sf(math.inf, 3) == 0.0
    assert math.isnan(chi2_sf(math.nan, 3))
    with pytest.raises(ValueError):
        chi2_sf(1.0, 0)


def test_normal_textbook_values() -> None:
    assert normal_ppf(0.975) == pytest.approx(1.959963984540054, rel=1e-12)
    assert normal_ppf(0.8) == pytest.approx(0.8416212335729143, rel=1e-12)
    assert normal_ppf(0.5) == pytest.approx(0.0, abs=1e-15)
    assert normal_ppf(0.025) == pytest.approx(-1.959963984540054, rel=1e-12)
    assert normal_sf(1.959963984540054) == pytest.approx(0.025, rel=1e-12)
    assert normal_sf(0.0) == 0.5
    assert 2 * normal_sf(3.0) == pytest.approx(0.0026997960632601866, rel=1e-12)


def test_normal_ppf_inverts_the_cdf_and_agrees_with_the_standard_library() -> None:
    reference = statistics.NormalDist()
    probabilities = np.concatenate([np.logspace(-300, -1, 400), np.linspace(0.01, 0.99, 99),
                                    1.0 - np.logspace(-15, -1, 100)])
    for p in probabilities:
        p = float(p)
        z = normal_ppf(p)
        cdf = normal_sf(-z)
        assert cdf == pytest.approx(p, rel=1e-9)
        assert z == pytest.approx(reference.inv_cdf(p), rel=1e-9, abs=1e-9)
    # Round trip from z, through the upper tail where a double holds the probability exactly
    # enough (near p = 1 the input itself has lost the digits).
    for z in np.linspace(0.0, 37.0, 371):
        assert normal_ppf(normal_sf(float(z))) == pytest.approx(-float(z), abs=1e-9)
        assert normal_ppf(1.0 - normal_sf(float(z) / 8.0)) == pytest.approx(float(z) / 8.0,
                                                                            abs=1e-9)


@pytest.mark.parametrize("p", [0.0, 1.0, -0.1, 1.5, math.nan])
def test_normal_ppf_rejects_probabilities_outside_the_open_unit_interval(p: float) -> None:
    with pytest.raises(ValueError):
        normal_ppf(p)


# --- compare -------------------------------------------------------------------------------


def test_compare_fields_follow_their_definitions() -> None:
    rng = np.random.default_rng(4)
    control = Sums.of(*_shoppers(rng, 800))
    treatment = Sums.of(*_shoppers(rng, 800, scale=1.1))
    c, t = ratio(control), ratio(treatment)
    result = compare(control, treatment, alpha=0.1, power=0.9)
    assert isinstance(result, Comparison)
    assert result.difference == pytest.approx(t.value - c.value)
    assert result.lift == pytest.approx((t.value - c.value) / c.value)
    assert result.se == pytest.approx(math.hypot(c.se, t.se))
    z = result.difference / result.se
    assert result.p_value == pytest.approx(math.erfc(abs(z) / math.sqrt(2.0)))
    z_sum = statistics.NormalDist().inv_cdf(0.95) + statistics.NormalDist().inv_cdf(0.9)
    assert result.mde == pytest.approx(z_sum * result.se / c.value)
    assert result.significant(alpha=1.0)
    assert not result.significant(alpha=0.0)
    with pytest.raises(ValueError):
        compare(control, treatment, alpha=0.0)
    with pytest.raises(ValueError):
        compare(control, treatment, power=1.0)


def test_compare_degenerate_arms() -> None:
    same = Sums.of(np.ones(10), 1.0)
    flat = compare(same, same)
    assert flat.p_value == 1.0 and flat.difference == 0.0 and not flat.significant()
    certain = compare(Sums.of(np.zeros(10), 1.0), same)
    assert certain.p_value == 0.0 and math.isnan(certain.lift) and math.isnan(certain.mde)
    undefined = compare(Sums(), same)
    assert math.isnan(undefined.p_value) and not undefined.significant()


def test_aa_calibration_per_shopper_and_miscalibration_per_item() -> None:
    """1,000 A/A experiments: the per-shopper test fires at ~alpha, the per-item one does not."""
    rng = np.random.default_rng(5)
    runs, shoppers = 1000, 400
    clicks, items = _shoppers(rng, shoppers, shape=(runs, 2))
    per_shopper = per_item = 0
    for run in range(runs):
        arms = [(clicks[run, arm], items[run, arm]) for arm in (0, 1)]
        per_shopper += compare(Sums.of(*arms[0]), Sums.of(*arms[1])).significant(0.05)
        per_item += compare(_per_item_sums(*arms[0]), _per_item_sums(*arms[1])).significant(0.05)
    assert 0.03 <= per_shopper / runs <= 0.07
    # Heterogeneous shoppers make their items correlated; ignoring that inflates the
    # false-positive rate far beyond alpha.
    assert per_item / runs > 0.08


def test_a_planted_lift_is_found_and_the_mde_shrinks_with_traffic() -> None:
    rng = np.random.default_rng(6)
    found = 0
    for _ in range(50):
        control = Sums.of(*_shoppers(rng, 1500))
        treatment = Sums.of(*_shoppers(rng, 1500, scale=1.3))
        result = compare(control, treatment)
        found += result.significant() and result.lift > 0
    assert found >= 40
    small = compare(Sums.of(*_shoppers(rng, 2000)), Sums.of(*_shoppers(rng, 2000, scale=1.3)))
    large = compare(Sums.of(*_shoppers(rng, 8000)), Sums.of(*_shoppers(rng, 8000, scale=1.3)))
    assert large.mde / small.mde == pytest.approx(0.5, rel=0.12)
    assert small.mde < 0.3  # the planted 30 % lift is detectable at this traffic


# --- sample-ratio mismatch ---------------------------------------------------------------


def test_srm_balanced_counts_pass_and_a_skew_is_caught() -> None:
    assert srm_p_value([5000, 5010], [0.5, 0.5]) > 0.5
    assert srm_p_value([2000, 3000, 5000], [2.0, 3.0, 5.0]) == pytest.approx(1.0)
    assert srm_p_value([5000, 5400], [0.5, 0.5]) < 0.001
    # the statistic of a two-arm 50/50 split is z^2 of the two-proportion test
    z = (5400 - 5200) / math.sqrt(10400 * 0.25)
    assert srm_p_value([5000, 5400], [0.5, 0.5]) == pytest.approx(2 * normal_sf(z), rel=1e-9)


def test_srm_edge_cases() -> None:
    assert srm_p_value([0, 0], [0.5, 0.5]) == 1.0
    assert srm_p_value([100], [1.0]) == 1.0
    assert srm_p_value([100, 0], [1.0, 0.0]) == 1.0
    assert srm_p_value([100, 1], [1.0, 0.0]) == 0.0
    assert srm_p_value([50, 50, 3], [1.0, 1.0, 0.0]) == 0.0
    # an arm without weight and without shoppers is ignored
    assert srm_p_value([5000, 5400, 0], [0.5, 0.5, 0.0]) == srm_p_value([5000, 5400], [0.5, 0.5])
    with pytest.raises(ValueError):
        srm_p_value([1, 2], [1.0])
    with pytest.raises(ValueError):
        srm_p_value([1, -2], [1.0, 1.0])
    with pytest.raises(ValueError):
        srm_p_value([1, 2], [1.0, -1.0])


def test_srm_is_calibrated_under_the_null() -> None:
    rng = np.random.default_rng(7)
    weights = [0.5, 0.3, 0.2]
    draws = rng.multinomial(10_000, weights, size=1000)
    rejected = sum(srm_p_value([int(c) for c in row], weights) < 0.05 for row in draws)
    assert 0.03 <= rejected / 1000 <= 0.07


# --- Thompson sampling --------------------------------------------------------------------


def test_thompson_weights_sum_to_one_and_respect_the_floor() -> None:
    rng = np.random.default_rng(8)
    weights = thompson_weights([30, 80, 45], [1000, 1000, 1000], 0.05, rng)
    assert len(weights) == 3
    assert sum(weights) == pytest.approx(1.0, abs=1e-12)
    assert all(w >= 0.05 for w in weights)
    assert weights[1] > 0.85  # 8 % against 3 % and 4.5 % on 1,000 trials each
    assert weights[1] == max(weights)


def test_thompson_weights_are_even_without_data_and_for_equal_data() -> None:
    rng = np.random.default_rng(9)
    for successes, trials in (([0, 0, 0, 0], [0, 0, 0, 0]), ([50, 50, 50, 50], [900] * 4)):
        weights = thompson_weights(successes, trials, 0.0, rng)
        assert sum(weights) == pytest.approx(1.0)
        for w in weights:
            assert w == pytest.approx(0.25, abs=0.02)


def test_thompson_weights_floor_and_inputs() -> None:
    rng = np.random.default_rng(10)
    # a floor of 1/k leaves nothing to the posterior: even split
    assert thompson_weights([0, 100], [100, 100], 0.5, rng) == pytest.approx((0.5, 0.5))
    # successes outside [0, trials] are clipped rather than breaking the Beta draw
    clipped = thompson_weights([-5, 500], [100, 100], 0.1, rng)
    assert clipped[1] == pytest.approx(0.9, abs=1e-3)
    for floor in (-0.01, 0.51):
        with pytest.raises(ValueError):
            thompson_weights([1, 2], [10, 10], floor, rng)
    with pytest.raises(ValueError):
        thompson_weights([1], [10, 10], 0.1, rng)
    with pytest.raises(ValueError):
        thompson_weights([], [], 0.0, rng)
    with pytest.raises(ValueError):
        thompson_weights([1, 2], [10, -1], 0.1, rng)


def test_estimate_is_a_plain_value() -> None:
    est = Estimate(1.0, 0.5, 10)
    assert est.ci95() == pytest.approx((1.0 - 0.979982, 1.0 + 0.979982), rel=1e-6)
