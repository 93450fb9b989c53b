"""A shopper's own figures per experiment arm, kept in their state (stream_rec.core.tally)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_rec.core.metrics import distinct_categories, intra_list_diversity
from stream_rec.core.state import UserState
from stream_rec.core.state_codec import decode_state, encode_state
from stream_rec.core.tally import (
    TALLIES_KEPT,
    TALLY_FIGURES,
    add_to_tally,
    arm_key,
    list_diversity,
    tallies_in,
    tally_of,
)


def _group(experiment: str = "exp-1", arm: str = "a", model: str = "v1",
           policy: str = "dpp:0.15") -> str:
    return f"{model}|{policy}|{experiment}|{arm}"


def test_arm_key_is_experiment_and_arm_or_none_outside_experiments() -> None:
    assert arm_key(_group("exp-1", "diverse")) == "exp-1|diverse"
    assert arm_key("fallback|none|exp-2|b") == "exp-2|b"
    for outside in ("v1|dpp:0.15||", "unknown", "v1|dpp", "", "a|b|c|d|e"):
        assert arm_key(outside) is None, outside


def test_add_to_tally_only_for_experiment_groups() -> None:
    state = UserState()
    for outside in ("v1|dpp:0.15||", "unknown", "fallback|none||"):
        assert add_to_tally(state, outside, {"clicks": 1.0}) is state
    assert add_to_tally(state, _group(), {}) is state  # nothing to add
    state = add_to_tally(state, _group(), {"clicks": 1.0, "revenue": 12.5})
    state = add_to_tally(state, _group(model="v2", policy="none"), {"clicks": 2.0})
    # Another model or policy of the same arm is the same tally.
    assert len(state.tallies) == 1
    figures = tally_of(state, "exp-1", "a")
    assert figures is not None
    assert figures["clicks"] == 3.0 and figures["revenue"] == 12.5
    assert set(figures) == set(TALLY_FIGURES)
    assert all(figures[n] == 0.0 for n in TALLY_FIGURES if n not in ("clicks", "revenue"))


def test_an_unknown_figure_is_refused() -> None:
    with pytest.raises(KeyError):
        add_to_tally(UserState(), _group(), {"not-a-figure": 1.0})


def test_tally_of_an_arm_never_joined_is_none() -> None:
    state = add_to_tally(UserState(), _group("exp-1", "a"), {"lists": 1.0})
    assert tally_of(state, "exp-1", "b") is None
    assert tally_of(state, "exp-2", "a") is None
    assert tally_of(UserState(), "exp-1", "a") is None
    # A record written by an older version, with fewer figures, reads with zeros after them.
    short = UserState(tallies=(("exp-1|a", (1.0, 2.0)),))
    figures = tally_of(short, "exp-1", "a")
    assert figures is not None
    assert (figures["lists"], figures["impressions"], figures["clicks"]) == (1.0, 2.0, 0.0)


def test_at_most_tallies_kept_arms_the_last_used_kept() -> None:
    state = UserState()
    arms = [f"arm{n}" for n in range(TALLIES_KEPT + 1)]
    for n, arm in enumerate(arms):
        state = add_to_tally(state, _group("e", arm), {"lists": float(n + 1)})
    assert len(state.tallies) == TALLIES_KEPT
    assert tally_of(state, "e", arms[0]) is None  # the oldest went
    assert [key for key, _ in state.tallies] == [f"e|{a}" for a in arms[1:]]
    # Using an arm again makes it the newest: the next new arm drops another one.
    state = add_to_tally(state, _group("e", arms[1]), {"lists": 1.0})
    state = add_to_tally(state, _group("e", "fresh"), {"lists": 1.0})
    assert len(state.tallies) == TALLIES_KEPT
    kept = [key for key, _ in state.tallies]
    assert kept[-2:] == [f"e|{arms[1]}", "e|fresh"]
    assert f"e|{arms[2]}" not in kept
    again = tally_of(state, "e", arms[1])
    assert again is not None and again["lists"] == 2.0 + 1.0


categories_lists = st.lists(st.lists(st.sampled_from(["shoes", "hats", "bags", "belts"])
                                     | st.none(), max_size=12), min_size=1, max_size=8)


def _codes(lists: list[list[str | None]]) -> np.ndarray:
    """(B, K) int category codes, -1 for unknown categories and padding."""
    width = max(2, *(len(c) for c in lists))
    codes: dict[str, int] = {}
    out = np.full((len(lists), width), -1, dtype=np.int64)
    for row, cats in enumerate(lists):
        for col, cat in enumerate(cats):
            if cat is not None:
                out[row, col] = codes.setdefault(cat, len(codes))
    return out


@settings(max_examples=150, deadline=None)
@given(categories_lists)
def test_list_diversity_agrees_with_the_offline_metrics(lists: list[list[str | None]]) -> None:
    codes = _codes(lists)
    per_list = [list_diversity(cats) for cats in lists]
    for row, (ild, n_categories) in enumerate(per_list):
        one = codes[row:row + 1]
        assert n_categories == distinct_categories(one)
        known = sum(c is not None for c in lists[row])
        if known < 2:
            assert ild is None
        else:
            assert ild is not None and 0.0 <= ild <= 1.0
            assert ild == pytest.approx(intra_list_diversity(one), abs=1e-12)
    # Over the batch: the offline mean leaves out lists without a countable pair.
    counted = [ild for ild, _ in per_list if ild is not None]
    expected = sum(counted) / len(counted) if counted else 0.0
    assert intra_list_diversity(codes) == pytest.approx(expected, abs=1e-12)
    assert distinct_categories(codes) == pytest.approx(
        sum(n for _, n in per_list) / len(per_list), abs=1e-12)


def test_list_diversity_by_hand() -> None:
    assert list_diversity([]) == (None, 0)
    assert list_diversity(["a"]) == (None, 1)
    assert list_diversity([None, "a", None]) == (None, 1)
    assert list_diversity(["a", "a"]) == (0.0, 1)
    assert list_diversity(["a", "b"]) == (1.0, 2)
    # 3 pairs, 1 of them the same category: 2/3.
    assert list_diversity(["a", "b", "a", None]) == (pytest.approx(2 / 3), 2)


def _tallied() -> UserState:
    state = UserState(n_events=3, last_ts_ms=1_750_000_000_000)
    state = add_to_tally(state, _group("exp-1", "a"), {"lists": 2.0, "impressions": 1.0,
                                                       "impressed_items": 4.0,
                                                       "ild_sum": 0.75, "ild_lists": 1.0})
    state = add_to_tally(state, _group("exp-1", "b"), {"clicks": 1.0, "revenue": 19.99})
    return add_to_tally(state, _group("exp-2", "x"), {"purchases": 1.0})


def test_tallies_round_trip_through_the_state_codec() -> None:
    state = _tallied()
    raw = encode_state(state)
    assert "x" in json.loads(raw)
    back = decode_state(raw)
    assert back == state
    assert back.tallies == state.tallies
    assert tally_of(back, "exp-1", "b") == tally_of(state, "exp-1", "b")
    # No tallies: no key (readers that predate it see the record they know).
    assert "x" not in json.loads(encode_state(UserState()))
    assert decode_state(encode_state(UserState())).tallies == ()


def test_tallies_in_reads_stored_state_bytes() -> None:
    raw = encode_state(_tallied())
    found = tallies_in(raw, "exp-1")
    assert found is not None
    by_arm = {t["arm"]: t for t in found}
    assert set(by_arm) == {"a", "b"}
    assert set(by_arm["a"]) == {"arm", *TALLY_FIGURES}
    assert by_arm["a"]["lists"] == 2.0 and by_arm["a"]["ild_sum"] == 0.75
    assert by_arm["b"]["revenue"] == 19.99 and by_arm["b"]["lists"] == 0.0
    assert tallies_in(raw, "exp-2") == [{"arm": "x", **dict.fromkeys(TALLY_FIGURES, 0.0),
                                         "purchases": 1.0}]
    assert tallies_in(raw, "exp-3") is None
    assert tallies_in(encode_state(UserState()), "exp-1") is None


@pytest.mark.parametrize("raw", [
    b"", b"\x00\xff not json", b"[1, 2]", b"null", b'"text"', b'{"x": 5}',
    b'{"x": [["exp-1|a"]]}', b'{"x": [["exp-1|a", [1, "z"]]]}', b'{"x": [["exp-1|a", null]]}',
    b'{"x": [["exp-1|a", [null]]]}', b'{"x": [5]}', b'{"x": [["exp-1|a", [1, 2], 3]]}',
])
def test_tallies_in_is_none_for_unreadable_records(raw: bytes) -> None:
    assert tallies_in(raw, "exp-1") is None
