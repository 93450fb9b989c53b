"""The JSON Schemas in schemas/ say what the code does.

Hypothesis builds event and catalog objects, valid and invalid, and the schema (jsonschema) must
accept exactly what the validators accept. The few rules a JSON Schema cannot express are
written in the schemas' descriptions; the generators stay out of those corners, and where the
corner is easy to hit by accident, a named helper says which examples are left out and why.
Real outputs (a recommendation list, a dead letter, a model announcement) must validate too.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from stream_rec.core.catalog import parse_catalog_item
from stream_rec.core.events import (
    EVENT_TYPES,
    MAX_CONTEXT_CHARS,
    MAX_ID_CHARS,
    MAX_QUANTITY,
    MAX_TS_MS,
    MIN_TS_MS,
    InvalidEvent,
    event_from_dict,
    parse_message,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
NAMES = ("storefront-event", "catalog-item", "recommendation", "dead-letter", "model-update",
         "experiment")
C0_C1 = re.compile("[\u0000-\u001f\u007f-\u009f]")
LIMIT = 65536
PROPERTY_SETTINGS = settings(max_examples=300, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])


def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return loaded


def validator(name: str, definition: str | None = None) -> Draft202012Validator:
    """The schema, or one of its ``$defs`` (same ``$defs`` around it, so refs resolve)."""
    doc = schema(name)
    if definition is not None:
        doc = {**doc, "$ref": f"#/$defs/{definition}"}
        doc.pop("oneOf", None)
    return Draft202012Validator(doc)


@pytest.mark.parametrize("name", NAMES)
def test_schema_files_are_valid_draft_2020_12(name: str) -> None:
    doc = schema(name)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(doc)
    assert doc["description"].strip()


# -- strategies ------------------------------------------------------------------------------
MISSING = object()  # "leave the field out"
json_scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(
    allow_nan=False, allow_infinity=False) | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                           max_leaves=8)
not_a_string_or_int = st.booleans() | st.floats(allow_nan=False, allow_infinity=False).filter(
    lambda f: not f.is_integer()) | st.lists(json_scalars, max_size=2) | st.dictionaries(
    st.text(max_size=4), json_scalars, max_size=2)


def printable_matches_schema(text: str) -> bool:
    """The schema checks C0/C1 controls only; the worker refuses all non-printable characters.

    Examples whose text falls in that gap (documented in the schema) are left out.
    """
    return text.isprintable() == (C0_C1.search(text) is None)


# Letters, digits, punctuation, symbols and the space: printable to both sides.
printable = st.characters(categories=["L", "N", "P", "S"], include_characters=" ")
identifiers = st.one_of(
    st.text(min_size=1, max_size=40),
    st.text(printable, min_size=MAX_ID_CHARS - 1, max_size=MAX_ID_CHARS + 1),
    st.sampled_from(["", "x" * MAX_ID_CHARS, "x" * (MAX_ID_CHARS + 1), "tab\there", "\x7f",
                     "\x85", "caf\u00e9 \u2603"]),
    st.text(max_size=5).map(lambda t: t + "\x00"),
    st.integers(),
    st.sampled_from([0, -1, 10**256 - 1, 10**256, -(10**255 - 1), -(10**255)]),
    st.none(),
    not_a_string_or_int,
).filter(lambda v: not isinstance(v, str) or printable_matches_schema(v))

datetimes = st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30))
offsets = st.sampled_from(["", "Z", "+00:00", "-05:00", "+0530", "+14:00"])


def iso(moment: datetime, sep: str, precision: str, offset: str) -> str:
    return moment.isoformat(sep=sep, timespec=precision) + offset


iso_strings = st.builds(iso, datetimes, st.sampled_from(["T", " "]),
                        st.sampled_from(["minutes", "seconds", "milliseconds", "microseconds"]),
                        offsets) | datetimes.map(lambda d: d.date().isoformat())
timestamps = st.one_of(
    st.sampled_from([MIN_TS_MS - 1, MIN_TS_MS, MAX_TS_MS - 1, MAX_TS_MS, MIN_TS_MS - 0.5,
                     MAX_TS_MS - 0.5, -1, 0]),
    st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    iso_strings,
    # Out of range years, and text that is no date at all (both sides refuse these).
    st.builds(lambda y, rest: f"{y:04d}{rest}", st.integers(1, 1999) | st.integers(2100, 9999),
              st.sampled_from(["-06-01", "-06-01T10:00:00Z", "-06-01 10:00"])),
    st.sampled_from(["2024-13-01", "2024-00-10", "2024-01-32T10:00", "2024-01-01T24:00",
                     "2024-01-01T10:00:00" + "0" * 60, "yesterday", ""]),
    st.text(alphabet=st.characters(blacklist_categories=["Nd"]), max_size=20),
    st.booleans(), st.none(), st.lists(st.integers(), max_size=2),
)
prices = st.none() | st.floats(-10, 1e13, allow_nan=False) | st.integers(-5, 10**13) | \
    st.sampled_from([0, -1, -0.5, 1e12, 10**12 + 1, 1e12 + 1e-3, -0.0]) | st.booleans() | \
    st.text(max_size=4)
quantities = st.none() | st.integers(-5, MAX_QUANTITY + 5) | st.sampled_from(
    [1, 0, MAX_QUANTITY, MAX_QUANTITY + 1, 2.5]) | st.booleans() | st.text(max_size=3)
contexts = st.none() | st.dictionaries(st.text(max_size=8), json_values, max_size=4) | \
    st.lists(st.integers(), max_size=2) | st.text(max_size=4) | st.integers()
event_types = st.sampled_from([*EVENT_TYPES, "like", "VIEW", "forget_user", ""]) | \
    st.integers(0, 3) | st.none() | st.booleans()
positions = st.none() | st.integers(-3, 10_003) | st.sampled_from([0, 9999, 10_000, 2.5]) \
    | st.booleans() | st.text(max_size=3)
placements = (st.none() | st.text(max_size=70) | st.sampled_from(["", "x" * 64, "x" * 65, "a\nb"])
              | st.integers() | st.booleans()).filter(
    lambda v: not isinstance(v, str) or printable_matches_schema(v))


@st.composite
def event_objects(draw: st.DrawFn) -> dict[str, Any]:
    fields = {
        "event_id": identifiers, "user_id": identifiers, "item_id": identifiers,
        "type": event_types, "ts": timestamps, "session_id": identifiers, "price": prices,
        "quantity": quantities, "context": contexts, "list_id": identifiers,
        "position": positions,
    }
    valid = {"event_id": "e-1", "user_id": "u-1", "item_id": "i-1", "type": "view",
             "ts": 1_700_000_000_000}
    obj: dict[str, Any] = {}
    # Mostly valid objects with a few fields changed, so both outcomes are common.
    for name in draw(st.sets(st.sampled_from(sorted(fields)), max_size=3)):
        value = draw(fields[name] | st.just(MISSING))
        if value is not MISSING:
            obj[name] = value
        valid.pop(name, None)
    extras = draw(st.dictionaries(st.text(max_size=10).filter(lambda k: k not in fields),
                                  json_values, max_size=2))
    return {**extras, **valid, **obj}


def same_item_twice(items: Any) -> bool:
    """An integer id and its decimal string are one item to the worker, two to the schema
    (documented in the schema); such examples are left out."""
    if not isinstance(items, list):
        return False
    texts = [str(i) for i in items if isinstance(i, str | int) and not isinstance(i, bool)]
    return len(set(texts)) != len(texts) and len({json.dumps(i) for i in items}) == len(items)


item_lists = st.one_of(
    st.lists(identifiers, max_size=4),
    st.lists(st.text(printable, min_size=1, max_size=8), min_size=199, max_size=201,
             unique=True),
    st.just([]), st.none(), st.text(max_size=3), st.integers(),
    st.lists(st.sampled_from(["a", "b"]), min_size=2, max_size=3),
).filter(lambda items: not same_item_twice(items))


@st.composite
def impression_objects(draw: st.DrawFn) -> dict[str, Any]:
    fields = {"event_id": identifiers, "user_id": identifiers, "list_id": identifiers,
              "item_ids": item_lists, "ts": timestamps, "placement": placements}
    valid: dict[str, Any] = {"type": "impression", "event_id": "e-1", "user_id": "u-1",
                             "list_id": "l-1", "item_ids": ["i-1", "i-2"],
                             "ts": 1_700_000_000_000}
    obj: dict[str, Any] = {}
    for name in draw(st.sets(st.sampled_from(sorted(fields)), max_size=2)):
        value = draw(fields[name] | st.just(MISSING))
        if value is not MISSING:
            obj[name] = value
        valid.pop(name, None)
    return {**valid, **obj}


@st.composite
def topic_messages(draw: st.DrawFn) -> dict[str, Any]:
    """Anything on the events topic: shopper events, impressions and forget-user requests."""
    kind = draw(st.sampled_from(["event", "event", "impression", "forget"]))
    if kind == "event":
        return draw(event_objects())
    if kind == "impression":
        return draw(impression_objects())
    obj: dict[str, Any] = {"type": "forget_user"}
    for name in ("user_id", "request_id"):
        value = draw(identifiers | st.just(MISSING))
        if value is not MISSING:
            obj[name] = value
    return obj


def context_size_known(obj: dict[str, Any]) -> bool:
    """The schema cannot measure a context's serialised length; see the test below instead."""
    context = obj.get("context")
    return not isinstance(context, dict) or len(json.dumps(context)) <= MAX_CONTEXT_CHARS


def run_collecting(test: Any) -> set[bool]:
    """Run a @given check that returns the outcome; return the outcomes seen."""
    seen: set[bool] = set()

    @PROPERTY_SETTINGS
    @given(st.data())
    def wrapper(data: st.DataObject) -> None:
        seen.add(test(data))

    wrapper()
    return seen


# -- events ----------------------------------------------------------------------------------
def test_event_schema_accepts_what_event_from_dict_accepts() -> None:
    check = validator("storefront-event", "event")

    def agree(data: st.DataObject) -> bool:
        obj = data.draw(event_objects().filter(context_size_known))
        try:
            event_from_dict(obj)
            accepted = True
        except InvalidEvent:
            accepted = False
        errors = [e.message for e in check.iter_errors(obj)]
        assert accepted == (not errors), (obj, errors)
        return accepted

    assert run_collecting(agree) == {True, False}


def test_topic_schema_accepts_what_the_worker_accepts() -> None:
    """The whole schema (event or forget_user) against parse_message on the encoded bytes."""
    check = validator("storefront-event")

    def agree(data: st.DataObject) -> bool:
        obj = data.draw(topic_messages().filter(context_size_known))
        try:
            parse_message(json.dumps(obj).encode(), LIMIT)
            accepted = True
        except InvalidEvent:
            accepted = False
        assert accepted == check.is_valid(obj), (obj, [e.message for e in
                                                      check.iter_errors(obj)])
        return accepted

    assert run_collecting(agree) == {True, False}


def test_what_the_schema_cannot_check_is_documented() -> None:
    doc = schema("storefront-event")
    described = json.dumps(doc)
    for rule in ("isprintable", "4096 characters", "fromisoformat", "65536", "2.0 is not"):
        assert rule in described, rule
    # And the worker does enforce those rules the schema lets through.
    event = {"event_id": "e", "user_id": "u", "item_id": "i", "type": "view",
             "ts": 1_700_000_000_000}
    check = validator("storefront-event")
    for gap in ({"user_id": "u\u200b"}, {"item_id": "\u00a0"},
                {"context": {"k": "x" * MAX_CONTEXT_CHARS}}, {"quantity": 2.0},
                {"event_id": 7.0}, {"ts": "2023-02-30T10:00:00Z"}):
        obj = {**event, **gap}
        assert check.is_valid(obj), gap
        with pytest.raises(InvalidEvent):
            event_from_dict(obj)


ID_EDGES: list[Any] = ["x" * MAX_ID_CHARS, "x" * (MAX_ID_CHARS + 1), "", "a\x00", "\x7f", "\x9f",
                       " ", 10**256 - 1, 10**256, -(10**255 - 1), -(10**255), 0, True, 1.5,
                       None, [], {}, MISSING]
EVENT_EDGES: dict[str, list[Any]] = {
    "event_id": ID_EDGES, "user_id": ID_EDGES, "item_id": ID_EDGES, "session_id": ID_EDGES,
    "type": [*EVENT_TYPES, "forget_user", "VIEW", "", None, 1, True, MISSING],
    "ts": [MIN_TS_MS - 1, MIN_TS_MS, MAX_TS_MS - 1, MAX_TS_MS, MIN_TS_MS - 0.5,
           MIN_TS_MS + 0.5, MAX_TS_MS - 0.5, True, None, "2000-01-01T00:00:00Z",
           "1999-12-31T23:59:59.999Z", "2099-12-31T23:59:59.999Z", "2100-01-01T00:00:00Z",
           "2024-01-01T00:00:00." + "0" * 44, "2024-01-01T00:00:00." + "0" * 45, MISSING],
    "price": [0, -0.0, 1e12, 10**12 + 1, 1e12 + 1e-4, -1e-9, True, "1", None, MISSING],
    "quantity": [1, 0, MAX_QUANTITY, MAX_QUANTITY + 1, 2.5, True, "2", None, MISSING],
    "context": [{}, {"k": "x" * (MAX_CONTEXT_CHARS - 9)}, [], "x", 1, None, MISSING],
    "list_id": ID_EDGES,
    "position": [0, 9999, 10_000, -1, 2.5, True, "1", None, MISSING],
}


@pytest.mark.parametrize("field, value", [(f, v) for f, values in EVENT_EDGES.items()
                                          for v in values])
def test_event_edges_agree(field: str, value: Any) -> None:
    """Every limit in stream_rec.core.events, on both sides of it."""
    obj: dict[str, Any] = {"event_id": "e", "user_id": "u", "item_id": "i", "type": "view",
                           "ts": 1_700_000_000_000}
    obj.pop(field, None)
    if value is not MISSING:
        obj[field] = value
    try:
        event_from_dict(obj)
        accepted = True
    except InvalidEvent:
        accepted = False
    assert accepted == validator("storefront-event", "event").is_valid(obj)


@pytest.mark.parametrize("value", [[], {}, ["view"]])
def test_unhashable_type_is_an_invalid_event(value: Any) -> None:
    with pytest.raises(InvalidEvent):
        event_from_dict({"event_id": "e", "user_id": "u", "item_id": "i", "type": value,
                         "ts": 1_700_000_000_000})


@pytest.mark.parametrize("ts", ["2024-05-01", "2024-05-01T10:15", "2024-05-01 10:15:30.5+02:00",
                                "2024-05-01T10:15:30.123456Z", "2024-05-01T10:15:30-0800"])
def test_documented_timestamp_forms_are_accepted_by_both(ts: str) -> None:
    event = {"event_id": "e", "user_id": "u", "item_id": "i", "type": "view", "ts": ts}
    assert validator("storefront-event").is_valid(event)
    assert event_from_dict(event).ts_ms // 86_400_000 in range(19_843, 19_845)  # 2024-05-01 +-1


# -- catalog ---------------------------------------------------------------------------------
attribute_values = st.one_of(
    st.none(), st.text(max_size=20), st.text(min_size=254, max_size=258),
    st.integers(-10**200, 10**200), st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(), st.lists(json_scalars, max_size=2),
    st.dictionaries(st.text(max_size=3), json_scalars, max_size=2))
attribute_names = st.text(max_size=12) | st.text(min_size=255, max_size=258) | \
    st.sampled_from(["category", "brand", "shop", "item_id"])


@st.composite
def catalog_objects(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(json_scalars | st.lists(json_scalars, max_size=2))
    obj: dict[str, Any] = draw(st.dictionaries(attribute_names, attribute_values, max_size=4))
    if draw(st.booleans()):
        obj["in_stock"] = draw(st.booleans() | st.none() | st.sampled_from([0, 1, "yes"]))
    if draw(st.booleans()):
        obj["price"] = draw(prices)
    return obj


def test_catalog_schema_accepts_what_parse_catalog_item_accepts() -> None:
    check = validator("catalog-item")

    def agree(data: st.DataObject) -> bool:
        obj = data.draw(catalog_objects())
        try:
            parse_catalog_item("item-1", json.dumps(obj).encode())
            accepted = True
        except InvalidEvent:
            accepted = False
        assert accepted == check.is_valid(obj), (obj, [e.message for e in
                                                      check.iter_errors(obj)])
        return accepted

    assert run_collecting(agree) == {True, False}


CATALOG_EDGES: list[Any] = [
    {"brand": "b" * 256}, {"brand": "b" * 257}, {"k" * 256: "v"}, {"k" * 257: "v"},
    {"k" * 257: None}, {"brand": None}, {"brand": True}, {"brand": []}, {"brand": 10**255},
    {"category": 3}, {"in_stock": None}, {"in_stock": 0}, {"in_stock": False},
    {"price": -0.0}, {"price": 0}, {"price": -1e-9}, {"price": True}, {"price": None},
    {"price": "9.99"}, {"item_id": [1, 2]}, {}, [], "item", 1, None,
]


@pytest.mark.parametrize("obj", CATALOG_EDGES)
def test_catalog_edges_agree(obj: Any) -> None:
    try:
        parse_catalog_item("item-1", json.dumps(obj).encode())
        accepted = True
    except InvalidEvent:
        accepted = False
    assert accepted == validator("catalog-item").is_valid(obj)


# -- outputs ---------------------------------------------------------------------------------
def test_a_real_recommendation_list_validates() -> None:
    from stream_rec.core.catalog import CatalogItem
    from stream_rec.core.events import event_from_dict as make_event
    from stream_rec.core.state import StateLimits, UserState, apply_event
    from stream_rec.serving.catalog_view import CatalogView
    from stream_rec.serving.lists import RecRequest
    from stream_rec.serving.recommender import Recommender, RecommenderConfig

    catalog = CatalogView()
    for n in range(30):
        catalog.upsert(CatalogItem(f"item-{n}", category=f"cat-{n % 4}", price=float(n)))
    recommender = Recommender(RecommenderConfig(k=5), catalog=catalog)
    state = UserState()
    for n in range(6):
        event = make_event({"event_id": f"e-{n}", "user_id": "u-1", "item_id": f"item-{n}",
                            "type": "view", "ts": 1_700_000_000_000 + n})
        state = apply_event(state, event, catalog.category(event.item_id), StateLimits())
        recommender.trending.add(event.item_id, event.ts_ms, event.type_code)
    from stream_rec.core.experiments import ExperimentTag

    [rec, in_arm] = recommender.recommend([
        RecRequest("u-1", "e-5", state, 1_700_000_000_000.0),
        RecRequest("u-1", "e-5", state, 1_700_000_000_000.0, experiment=ExperimentTag(
            "exp-1", "diverse", 3), list_id="0123456789abcdef0123456789abcdef")])
    message = json.loads(json.dumps(rec.to_dict()))
    arm_message = json.loads(json.dumps(in_arm.to_dict()))
    assert arm_message["experiment"] == {"id": "exp-1", "arm": "diverse", "version": 3}
    assert message["items"], "the list should not be empty"
    doc = schema("recommendation")
    for each in (message, arm_message):
        Draft202012Validator(doc, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(
            each)
    # Kept in step: the schema names exactly the fields the code writes.
    assert set(doc["properties"]) == set(message)
    assert set(doc["properties"]["items"]["items"]["properties"]) == set(message["items"][0])
    assert set(doc["properties"]["policy"]["properties"]) == set(message["policy"])


def _message(**fields: Any) -> Any:
    from stream_rec.serving.dead_letter import Message

    base: dict[str, Any] = {"topic": "storefront.events", "partition": 3, "offset": 41,
                            "timestamp_ms": 1_700_000_000_123, "key": b"u-1",
                            "value": b"{not json"}
    return Message(**{**base, **fields})


@pytest.mark.parametrize("fields", [{}, {"key": None}, {"value": b"\xff\xfe"},
                                    {"value": None}, {"timestamp_ms": None},
                                    {"value": b"x" * 2_000_000, "key": b"k" * 10_000}])
def test_a_real_dead_letter_validates(fields: dict[str, Any]) -> None:
    from stream_rec.serving.dead_letter import dead_letter

    raw = dead_letter("bad JSON: Expecting value", _message(**fields))
    record = json.loads(raw)
    doc = schema("dead-letter")
    Draft202012Validator(doc).validate(record)
    assert set(doc["required"]) <= set(record) <= set(doc["properties"])
    assert len(raw) < 512 * 1024  # always fits in one Kafka message


def test_a_real_model_announcement_validates(tmp_path: Path) -> None:
    from stream_rec.model.announce import announcement_for
    from tests.unit.fake_artifact import make_artifact

    message = announcement_for(make_artifact(tmp_path / "20240101-000000", "20240101-000000"))
    doc = schema("model-update")
    Draft202012Validator(doc).validate(json.loads(json.dumps(message)))
    assert set(doc["properties"]) == set(message)
    assert not Draft202012Validator(doc).is_valid({**message, "version": "../etc"})


def test_experiment_records_the_cli_and_the_bandit_write_validate() -> None:
    from stream_rec.commands.experiment import checked, start_record
    from stream_rec.core.events import InvalidEvent
    from stream_rec.core.experiments import parse_experiment

    doc = schema("experiment")
    validator = Draft202012Validator(doc)
    started = checked("exp-1", start_record("exp-1", "control=dpp:0.15,new=mmr:0.5@v0002",
                                            "3,1", "thompson", 0.2, 0.5, now_ms=1_000))
    moved = started.reweighted([0.3, 0.7], 2_000)
    for experiment in (started, moved):
        record = json.loads(json.dumps(experiment.to_dict()))
        validator.validate(record)
        assert set(record) == set(doc["properties"])  # the schema names every field written
    # What the schema refuses, the worker refuses too.
    for bad in ({"id": "exp-1", "arms": []},
                {"id": "exp-1", "arms": [{"name": "a", "policy": "dpp:0.1", "model": "latest"}]},
                {"id": "exp-1", "arms": [{"name": "a", "policy": "none"}], "allocation": "ucb"},
                {"id": "exp-1", "arms": [{"name": "a", "policy": "none"}], "version": 0}):
        assert not validator.is_valid(bad), bad
        with pytest.raises(InvalidEvent):
            parse_experiment("exp-1", json.dumps(bad).encode())
