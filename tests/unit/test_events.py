"""The event contract: what is accepted, and a clear reason for everything that is not."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_rec.core.events import EVENT_TYPES, InvalidEvent, parse_event

LIMIT = 64 * 1024
GOOD = {"event_id": "e-1", "user_id": "u-1", "item_id": "i-1", "type": "click",
        "ts": 1_700_000_000_000}


def _raw(**changes: object) -> bytes:
    doc = {**GOOD, **changes}
    return json.dumps({k: v for k, v in doc.items() if v is not ...}).encode()


def test_valid_event_round_trips() -> None:
    event = parse_event(_raw(price=9.5, quantity=2, session_id="s", context={"page": "home"}),
                        LIMIT)
    assert (event.event_id, event.user_id, event.item_id, event.type) == ("e-1", "u-1", "i-1",
                                                                          "click")
    assert event.ts_ms == 1_700_000_000_000 and event.price == 9.5 and event.quantity == 2
    assert parse_event(json.dumps(event.to_dict()).encode(), LIMIT) == event


@pytest.mark.parametrize("ts, expected", [
    ("2023-11-14T22:13:20Z", 1_700_000_000_000),
    ("2023-11-14T22:13:20+00:00", 1_700_000_000_000),
    ("2023-11-14T23:13:20+01:00", 1_700_000_000_000),
    ("2023-11-14T22:13:20", 1_700_000_000_000),
    (1_700_000_000_000, 1_700_000_000_000),
])
def test_timestamps_iso_or_epoch_ms(ts: object, expected: int) -> None:
    assert parse_event(_raw(ts=ts), LIMIT).ts_ms == expected


def test_numeric_ids_become_strings() -> None:
    assert parse_event(_raw(item_id=42, user_id=7), LIMIT).item_id == "42"


@pytest.mark.parametrize("raw, reason", [
    (b"\xff\xfe{}", "not UTF-8"),
    (b"{not json", "bad JSON"),
    (b"[1, 2]", "expected a JSON object"),
    (b"[" * 100_000 + b"]" * 100_000, "exceeds"),
    (b"[" * 5_000 + b"]" * 5_000, "nested too deeply"),
    (_raw(type="like"), "unknown event type"),
    (_raw(type=...), "missing field 'type'"),
    (_raw(event_id=...), "missing field 'event_id'"),
    (_raw(user_id=None), "missing field 'user_id'"),
    (_raw(item_id=["x"]), "'item_id' must be a string"),
    (_raw(item_id=True), "'item_id' must be a string"),
    (_raw(item_id=""), "1..256 characters"),
    (_raw(item_id="x" * 300), "1..256 characters"),
    (_raw(user_id="a\x00b"), "control characters"),
    (_raw(ts=...), "missing field 'ts'"),
    (_raw(ts=-5), "outside"),
    (_raw(ts=10**30), "outside"),
    (_raw(ts=1_700_000_000), "outside"),  # seconds, not ms
    (_raw(ts="yesterday"), "not ISO 8601"),
    (_raw(ts={"a": 1}), "epoch milliseconds or an ISO 8601"),
    (_raw(price=-1), "'price' must be in"),
    (_raw(price="free"), "'price' must be a number"),
    (_raw(quantity=0), "'quantity' must be in"),
    (_raw(quantity=1.5), "'quantity' must be an integer"),
    (_raw(context="x"), "'context' must be a JSON object"),
    (_raw(context={"k": "v" * 5000}), "'context' exceeds"),
    (b"", "bad JSON"),
])
def test_rejections_say_why(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_event(raw, LIMIT)
    assert reason in info.value.reason


def test_oversized_payload_is_rejected_before_parsing() -> None:
    with pytest.raises(InvalidEvent, match="exceeds the 100-byte limit"):
        parse_event(_raw(context={"pad": "x" * 200}), 100)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children,
                                                                       max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_input_is_an_event_or_a_reason(raw: bytes) -> None:
    try:
        event = parse_event(raw, LIMIT)
    except InvalidEvent as exc:
        assert exc.reason
    else:
        assert event.type in EVENT_TYPES and event.event_id and event.item_id
