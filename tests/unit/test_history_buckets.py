"""Grouping a batch's shoppers by history length for the shopper half of the model."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from stream_rec.model.scorer import history_spans, length_buckets


def test_spans_of_left_padded_histories() -> None:
    events = np.array([[0, 0, 1, 2], [3, 1, 1, 4], [0, 0, 0, 0], [0, 0, 0, 2]])
    assert history_spans(events).tolist() == [2, 4, 0, 1]


def test_an_unknown_item_inside_a_history_does_not_shorten_it() -> None:
    # Spans come from the event types, which are never padding for a real event.
    events = np.array([[0, 2, 1, 1]])
    assert history_spans(events).tolist() == [3]


@given(st.lists(st.integers(0, 50), min_size=1, max_size=300))
def test_every_row_in_one_group_wide_enough_and_never_padded_to_double(spans: list[int]) -> None:
    arr = np.array(spans, dtype=np.int64)
    groups = length_buckets(arr)
    rows = np.concatenate([r for r, _ in groups])
    assert sorted(rows.tolist()) == list(range(len(spans)))
    for group_rows, width in groups:
        assert width >= max(1, int(arr[group_rows].max()))
        assert all(width < 2 * max(1, s) for s in arr[group_rows].tolist())
    assert len(groups) <= 7  # log2(50) rounded up, plus one
