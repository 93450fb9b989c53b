"""Grouping a batch's shoppers by history length for the shopper half of the model."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from stream_rec.model.scorer import history_spans, length_buckets, merge_buckets


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


def estimated_cost(groups: list[tuple[np.ndarray, int]], call_cost: int) -> int:
    return sum(call_cost + len(rows) * width for rows, width in groups)


@given(st.lists(st.integers(0, 50), min_size=1, max_size=300), st.integers(0, 200))
def test_merged_groups_cover_every_row_once_and_never_cost_more(spans: list[int],
                                                                call_cost: int) -> None:
    arr = np.array(spans, dtype=np.int64)
    groups = length_buckets(arr)
    merged = merge_buckets(groups, call_cost)
    rows = np.concatenate([r for r, _ in merged])
    assert sorted(rows.tolist()) == list(range(len(spans)))
    for group_rows, width in merged:
        assert width >= max(1, int(arr[group_rows].max()))
    assert len(merged) <= len(groups)
    assert estimated_cost(merged, call_cost) <= estimated_cost(groups, call_cost)
    if call_cost == 0:  # a call costs nothing: padding never pays
        assert [w for _, w in merged] == [w for _, w in groups]


def test_a_few_short_histories_share_one_call_and_large_groups_stay_apart() -> None:
    few = length_buckets(np.array([1, 3, 7]))
    assert len(few) == 3 and len(merge_buckets(few, 16)) == 1
    many = length_buckets(np.array([1] * 100 + [30] * 100))
    assert [w for _, w in merge_buckets(many, 16)] == [1, 30]
