"""The hot path's rounding agrees with round() to the sixth decimal."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from stream_rec.core.rounding import round6


@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))
def test_round6_is_round_to_six_decimals(value: float) -> None:
    assert abs(round6(value) - round(value, 6)) <= 1.0000001e-6
    assert abs(round6(value) - value) <= 5.0000001e-7 + 1e-9 * abs(value)


def test_round6_examples_and_non_finite_values() -> None:
    assert round6(0.1234564) == 0.123456 and round6(0.1234566) == 0.123457
    assert round6(-2.5e-7) == 0.0 and round6(-0.3000004) == -0.3
    assert round6(math.inf) == math.inf and math.isnan(round6(math.nan))
