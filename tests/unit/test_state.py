"""User-state transitions: bounded, deterministic, and restored bit-identically."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_rec.core.events import EVENT_TYPES, Event
from stream_rec.core.state import (
    StateLimits,
    UserState,
    already_applied,
    apply_event,
    is_duplicate,
    record_shown,
    top_categories,
    update_profile,
)
from stream_rec.core.state_codec import StateDecodeError, decode_state, encode_state

LIMITS = StateLimits(history=5, purchased=3, shown=4, categories=3, dedup_window=6)


def _event(n: int, item: str = "i1", kind: str = "click") -> Event:
    return Event(f"e{n}", "u", item, kind, 1_700_000_000_000 + n)


def test_history_is_bounded_and_keeps_the_newest() -> None:
    state = UserState()
    for n in range(8):
        state = apply_event(state, _event(n, item=f"i{n}"), None, LIMITS)
    assert state.history_items == ["i3", "i4", "i5", "i6", "i7"]
    assert state.n_events == 8 and state.last_ts_ms == 1_700_000_000_007


def test_purchases_are_remembered_once() -> None:
    state = UserState()
    for n, item in enumerate(["a", "a", "b"]):
        state = apply_event(state, _event(n, item, "purchase"), None, LIMITS)
    assert state.purchased == ("a", "b")


def test_duplicates_are_detected_within_the_window() -> None:
    state = apply_event(UserState(), _event(1), None, LIMITS)
    assert is_duplicate(state, "e1") and not is_duplicate(state, "e2")


def test_replays_longer_than_the_window_are_caught_by_source_offset() -> None:
    state = UserState()
    for n in range(20):  # far more than the dedup window of 6
        state = replace(apply_event(state, _event(n), None, LIMITS), source=(3, 100 + n))
    assert not is_duplicate(state, "e0")  # the id window has forgotten it ...
    assert already_applied(state, 3, 100)  # ... the source offset has not
    assert already_applied(state, 3, 119) and not already_applied(state, 3, 120)
    assert not already_applied(state, 2, 50)  # another partition: offsets do not compare
    assert not already_applied(UserState(), 0, 0)
    again = decode_state(encode_state(state))
    assert again.source == (3, 119) and again == state
    assert decode_state(encode_state(UserState())).source == (-1, -1)


def test_category_affinity_follows_recent_behaviour() -> None:
    state = UserState()
    for n in range(5):
        state = apply_event(state, _event(n), "shoes", LIMITS)
    for n in range(5, 8):
        state = apply_event(state, _event(n, kind="purchase"), "bags", LIMITS)
    assert top_categories(state, 1) == ["bags"]
    assert len(state.category_affinity) <= LIMITS.categories


def test_shown_counts_reset_when_the_shopper_interacts() -> None:
    state = record_shown(record_shown(UserState(), ["a", "b"], LIMITS), ["a"], LIMITS)
    assert state.shown_count("a") == 2 and state.shown_count("b") == 1
    state = apply_event(state, _event(1, "a"), None, LIMITS)
    assert state.shown_count("a") == 0 and state.shown_count("b") == 1


def test_profile_moves_toward_items_and_restarts_for_a_new_model() -> None:
    state = update_profile(UserState(), [1.0, 0.0], 1, "v1")
    state = update_profile(state, [0.0, 1.0], 3, "v1")
    assert 0 < state.profile_vector[1] < state.profile_vector[0] < 1.0
    fresh = update_profile(state, [0.0, 1.0], 1, "v2")
    assert fresh.profile_vector.tolist() == [0.0, 1.0] and fresh.profile_model == "v2"


events = st.builds(
    lambda n, item, kind, cat: (Event(f"e{n}", "u", item, kind, 1_700_000_000_000 + n), cat),
    st.integers(0, 10_000), st.sampled_from(["a", "b", "c", "d", "e", "f", "g"]),
    st.sampled_from(EVENT_TYPES), st.sampled_from([None, "x", "y", "z", "w"]))


@settings(max_examples=200, deadline=None)
@given(st.lists(events, max_size=40), st.lists(st.sampled_from("abcdefgh"), max_size=10))
def test_state_stays_bounded_and_survives_encoding(stream, shown) -> None:  # type: ignore[no-untyped-def]
    state = UserState()
    for event, category in stream:
        if is_duplicate(state, event.event_id):
            continue
        state = apply_event(state, event, category, LIMITS)
        state = update_profile(state, [0.1 * len(event.item_id), 0.3], event.type_code, "m")
        state = record_shown(state, shown, LIMITS)
        # what a restarted worker reads back is exactly what it wrote
        state = decode_state(encode_state(state))
    assert len(state.history) <= LIMITS.history
    assert len(state.purchased) <= LIMITS.purchased
    assert len(state.shown) <= LIMITS.shown
    assert len(state.seen_events) <= LIMITS.dedup_window
    assert decode_state(encode_state(state)) == state


def test_replaying_the_same_events_gives_the_same_state() -> None:
    def run() -> UserState:
        state = UserState()
        for n in range(30):
            state = apply_event(state, _event(n, f"i{n % 7}", EVENT_TYPES[n % 4]), f"c{n % 3}",
                                LIMITS)
            state = update_profile(state, [n / 30, 1 - n / 30], n % 4, "m")
            state = decode_state(encode_state(state))
        return state

    assert encode_state(run()) == encode_state(run())


def test_affinity_ties_go_by_category_name_and_scores_keep_six_decimals() -> None:
    state = UserState()
    for n, category in enumerate(["b", "a", "c"]):
        state = apply_event(state, _event(n), category, LIMITS)
    state = replace(state, category_affinity=(("b", 1.0), ("a", 1.0), ("c", 1.0)))
    state = apply_event(state, _event(9), None, LIMITS)
    assert [c for c, _ in state.category_affinity] == ["a", "b", "c"]
    assert all(s == round(s, 6) for _, s in state.category_affinity)
    assert state.category_affinity[0][1] == 0.9


def test_state_written_in_format_1_is_still_read() -> None:
    old = (b'{"v":1,"h":[["a",0,5],["b",3,9]],"c":[["x",1.5]],"b":["b"],'
           b'"s":[["a",2],["c",1]],"e":"0123456789ab","n":2,"t":9}')
    state = decode_state(old)
    assert state.shown_items == ("a", "c") and state.shown_counts == (2, 1)
    assert state.history_items == ["a", "b"] and state.history[1].ts_ms == 9
    assert state.purchased == ("b",) and state.seen_events == ("0123456789ab",)
    assert decode_state(encode_state(state)) == state  # and written back in the new format
    empty = decode_state(b'{"v":1,"h":[],"c":[],"b":[],"s":[],"e":"","n":0,"t":0}')
    assert empty.shown == ()


@pytest.mark.parametrize("raw", [
    b'{"v":2,"h":[["a",0]],"c":[],"b":[],"s":[],"sn":[],"e":"","n":1,"t":0}',
    b'{"v":2,"h":[],"c":[],"b":[],"s":["a","b"],"sn":[1],"e":"","n":1,"t":0}',
    b'{"v":3,"h":[],"c":[],"b":[],"s":[],"sn":[],"e":"","n":1,"t":0}',
    b'{"v":1,"h":[],"c":[],"b":[],"s":[["a"]],"e":"","n":1,"t":0}',
])
def test_malformed_state_is_refused(raw: bytes) -> None:
    with pytest.raises(StateDecodeError):
        decode_state(raw)


def test_evolve_is_replace() -> None:
    from dataclasses import fields

    from stream_rec.core.state import HistoryEntry

    state = UserState(history=(HistoryEntry("a", 0, 1),), n_events=1, source=(2, 3))
    names = [f.name for f in fields(UserState)]
    for i, name in enumerate(names):
        # each field alone, and with its neighbour, against dataclasses.replace
        changes = {name: getattr(UserState(), name), names[i - 1]: getattr(state, names[i - 1])}
        assert state.evolve(**changes) == replace(state, **changes)
    assert state.evolve() == state and state.evolve() is not state
    with pytest.raises(TypeError, match="no field 'nope'"):
        state.evolve(nope=1)
