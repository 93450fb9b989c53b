"""The expiry sweep finds every inactive shopper, a bounded number of records per step."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rocksdict import Rdict

from stream_rec.core.events import EVENT_TYPES, Event
from stream_rec.core.state import (
    StateLimits,
    UserState,
    apply_event,
    inactive_since,
    is_expired,
    record_shown,
)
from stream_rec.core.state_codec import (
    StateDecodeError,
    decode_state,
    encode_state,
    stored_activity_ms,
)
from stream_rec.worker.expiry import FAUST_OFFSET_KEY, Sweeper

DAY_MS = 86_400_000
NOW_MS = 1_800_000_000_000


def _dbs(tmp_path: Path, shoppers: dict[int, dict[bytes, int]]) -> dict[int, Rdict]:
    dbs = {}
    for partition, active in shoppers.items():
        db = Rdict(str(tmp_path / f"p{partition}"))
        db[FAUST_OFFSET_KEY] = b"1234"  # Faust's own record: never a shopper
        for key, active_ms in active.items():
            db[key] = encode_state(UserState(n_events=1, active_ms=active_ms))
        db[b"corrupt"] = b"\x00not state"
        dbs[partition] = db
    return dbs


def test_a_sweep_finds_every_expired_shopper_within_its_budget(tmp_path: Path) -> None:
    old, recent = NOW_MS - 100 * DAY_MS, NOW_MS - DAY_MS
    shoppers = {p: {f"p{p}-u{n}".encode(): old if n % 3 == 0 else recent for n in range(250)}
                for p in range(3)}
    dbs = _dbs(tmp_path, shoppers)
    sweeper = Sweeper(keep_ms=90 * DAY_MS, records_per_step=100)
    expected = {(p, k) for p, active in shoppers.items() for k, ms in active.items() if ms == old}
    found: list[tuple[int, bytes]] = []
    steps = 0
    while set(found) != expected:
        step = sweeper.step(dbs, NOW_MS)
        assert len(step) <= 100 and set(step) <= expected
        if steps < 7:  # 3 x 251 records at 100 a step: the first pass ends in the 8th step
            assert not set(step) & set(found), "a record came round twice in one pass"
        found += step
        steps += 1
        assert steps <= 8, "the sweep does not get through the partitions"
    # A second pass finds them again (nothing was deleted here), and only them.
    again = {hit for _ in range(steps + 2) for hit in sweeper.step(dbs, NOW_MS)}
    assert again == expected


def test_nothing_expires_with_expiry_off_or_for_legacy_state_with_recent_events() -> None:
    assert not is_expired(UserState(active_ms=1), NOW_MS, keep_ms=0)
    assert is_expired(UserState(last_ts_ms=NOW_MS - 91 * DAY_MS), NOW_MS, 90 * DAY_MS)
    assert not is_expired(UserState(last_ts_ms=NOW_MS - 91 * DAY_MS, active_ms=NOW_MS - 1),
                          NOW_MS, 90 * DAY_MS)
    assert Sweeper(keep_ms=0).step({0: {}}, NOW_MS) == []  # type: ignore[dict-item]


def test_partitions_handed_away_are_forgotten(tmp_path: Path) -> None:
    dbs = _dbs(tmp_path, {0: {b"a": 0}, 1: {b"b": 0}})
    sweeper = Sweeper(keep_ms=DAY_MS, records_per_step=1)
    assert sweeper.step(dbs, NOW_MS) == [(0, b"a")]
    assert sweeper.step({1: dbs[1]}, NOW_MS) == [(1, b"b")]


# Item ids, categories and event ids that spell the keys the fast reader looks for.
tricky = st.sampled_from(['i1', ',"a":5,', '{"t":7}', '"a":1}', '\\",\\"a\\":9,', 'a', 't',
                          ',"t":0,"a":3}'])


@settings(max_examples=300, deadline=None)
@given(items=st.lists(st.tuples(tricky, st.sampled_from(EVENT_TYPES), tricky,
                                st.integers(0, 2**41)), max_size=8),
       shown=st.lists(tricky, max_size=6), active_ms=st.integers(0, 2**41))
def test_the_activity_time_read_alone_is_the_decoded_ones(items: list, shown: list[str],
                                                          active_ms: int) -> None:
    state = UserState()
    for item, kind, category, ts in items:
        event = Event(f"e{ts}{item}", "u", item, kind, ts)
        state = apply_event(state, event, category, StateLimits())
    state = record_shown(state, shown, StateLimits())
    state = replace(state, active_ms=active_ms)
    raw = encode_state(state)
    assert stored_activity_ms(raw) == inactive_since(decode_state(raw))


def test_a_record_the_fast_reader_cannot_read_is_decoded_in_full() -> None:
    with pytest.raises(StateDecodeError):
        stored_activity_ms(b"\x00not state")
    # "t" as a float: not read alone, and the full decode gives the answer
    raw = encode_state(UserState(n_events=1, last_ts_ms=5)).replace(b'"t":5', b'"t":5.0')
    assert stored_activity_ms(raw) == 5
