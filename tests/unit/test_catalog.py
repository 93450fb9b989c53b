"""A catalog message can only ever be an item or a rejection with a reason.

The catalog topic is compacted and re-read from its first offset at every start, so anything
else the parser raised would stop every worker at every start. Hypothesis throws arbitrary JSON
at every field (huge integers, NaN and Infinity, lone surrogates, nesting) and arbitrary bytes
at the whole message; the worker's second wall (``WorkerRuntime.apply_catalog_record``) is
checked with a fault of its own.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_rec.config import load_settings
from stream_rec.core.catalog import (
    MAX_ATTRIBUTE_CHARS,
    CatalogItem,
    catalog_item_id,
    parse_catalog_item,
)
from stream_rec.core.events import InvalidEvent
from stream_rec.worker.runtime import WorkerRuntime

PROPERTIES = settings(max_examples=400, deadline=None,
                      suppress_health_check=[HealthCheck.too_slow])

# Text as JSON can carry it: any code point, lone surrogates included ("\ud800").
any_text = st.text(st.characters(codec=None), max_size=12) | st.sampled_from(
    ["\ud800", "a\udfffb", "x" * MAX_ATTRIBUTE_CHARS, "x" * (MAX_ATTRIBUTE_CHARS + 1), ""])
huge_ints = st.sampled_from([10**400, -(10**400), 10**308 * 2, 10**255, 10**256, -(10**255),
                             2**1024, 10**4000])
scalars = (st.none() | st.booleans() | st.integers() | huge_ints | st.floats() | any_text)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(any_text, inner, max_size=3), max_leaves=10)
field_names = st.sampled_from(["category", "brand", "shop", "price", "in_stock", "item_id"]) \
    | any_text


def encode(value: Any, ascii_only: bool) -> bytes:
    """JSON as a producer might write it, NaN and Infinity included (Python's default)."""
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def assert_usable(item: CatalogItem) -> None:
    """What the worker does with an accepted item must work: lists and state are JSON."""
    assert item.price is None or (math.isfinite(item.price) and item.price >= 0)
    for name, text in item.attributes.items():
        assert isinstance(text, str) and len(text) <= MAX_ATTRIBUTE_CHARS
        name.encode("utf-8")
        text.encode("utf-8")
    assert item.category is None or len(item.category) <= MAX_ATTRIBUTE_CHARS
    orjson.dumps(item.to_dict())


@PROPERTIES
@given(st.dictionaries(field_names, json_values, max_size=6), st.booleans())
def test_any_json_in_any_field_is_an_item_or_a_reason(fields: dict[str, Any],
                                                      ascii_only: bool) -> None:
    try:
        item = parse_catalog_item("sku-1", encode(fields, ascii_only))
    except InvalidEvent as exc:
        assert exc.reason
        return
    assert_usable(item)


@PROPERTIES
@given(json_values, st.booleans())
def test_any_json_document_is_an_item_or_a_reason(value: Any, ascii_only: bool) -> None:
    try:
        item = parse_catalog_item("sku-1", encode(value, ascii_only))
    except InvalidEvent:
        return
    assert isinstance(value, dict)
    assert_usable(item)


@PROPERTIES
@given(st.binary(max_size=64) | st.builds(lambda b: b'{"brand": "' + b + b'"}',
                                          st.binary(max_size=16)))
def test_any_bytes_are_an_item_or_a_reason(raw: bytes) -> None:
    with contextlib.suppress(InvalidEvent):
        assert_usable(parse_catalog_item("sku-1", raw))


@pytest.mark.parametrize(("raw", "reason"), [
    (b'{"price": ' + str(10**400).encode() + b'}', "price"),
    (b'{"price": -' + str(10**400).encode() + b'}', "price"),
    (b'{"price": NaN}', "JSON"),
    (b'{"price": Infinity}', "JSON"),
    (b'{"price": 1e400}', "price"),
    (b'{"brand": ' + b"9" * 5000 + b'}', "JSON"),
    (b'{"brand": ' + str(10**300).encode() + b'}', "too long"),
    (b'{"category": "\\ud800"}', "Unicode"),
    (b'{"\\udfff": "x"}', "Unicode"),
    (b'{"brand": {"nested": [1, {"junk": null}]}}', "string or a number"),
    (b"[" * 100_000 + b"]" * 100_000, "nested"),
    (b'{"brand": "caf\xe9"}', "UTF-8"),
    (b"\xff\xfe{\x00}\x00", "UTF-8"),
    (b'"an item"', "JSON object"),
    (b"17", "JSON object"),
    (b"null", "JSON object"),
    (b"", "JSON"),
])
def test_unusable_values_are_rejected_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_catalog_item("sku-1", raw)
    assert reason in caught.value.reason


def test_a_usable_item_keeps_its_fields() -> None:
    item = parse_catalog_item("sku-1", json.dumps(
        {"category": "shoes", "brand": 7, "price": 10**20, "in_stock": False,
         "colour": "caf\u00e9", "item_id": "ignored", "size": None}).encode())
    assert item == CatalogItem("sku-1", "shoes", False, 1e20, {"brand": "7", "colour": "café"})


@PROPERTIES
@given(st.none() | st.binary(max_size=300) | st.text(max_size=5))
def test_any_key_is_an_item_id_or_a_reason(key: Any) -> None:
    try:
        item_id = catalog_item_id(key)
    except InvalidEvent as exc:
        assert exc.reason
        return
    assert item_id == key.decode("utf-8") and item_id.isprintable()
    assert 1 <= len(item_id) <= 256


@pytest.mark.parametrize("key", [None, b"", b"\xff\xfe", b"tab\there", b"x" * 257, "text"])
def test_keys_no_event_could_name_are_rejected(key: Any) -> None:
    with pytest.raises(InvalidEvent):
        catalog_item_id(key)


# -- the worker's wall ------------------------------------------------------------------------
def record(key: bytes | None, value: bytes | None, offset: int = 7) -> ConsumerRecord:
    return ConsumerRecord(topic="storefront.items", partition=0, offset=offset, timestamp=0,
                          timestamp_type=0, key=key, value=value, checksum=None,
                          serialized_key_size=0, serialized_value_size=0, headers=())


@pytest.fixture
def runtime() -> WorkerRuntime:
    return WorkerRuntime(load_settings({}, recommend_in_thread=False))


@settings(max_examples=150, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.none() | st.binary(max_size=12),
       st.none() | st.binary(max_size=40) | st.builds(encode, json_values, st.booleans()))
def test_the_feed_takes_any_record(runtime: WorkerRuntime, key: bytes | None,
                                   value: bytes | None) -> None:
    before = runtime.metrics.catalog_rejected
    runtime.apply_catalog_record(record(key, value))
    assert runtime.metrics.catalog_rejected - before in (0, 1)


def test_the_crashing_example_is_counted_and_logged_with_key_and_offset(
        runtime: WorkerRuntime, caplog: pytest.LogCaptureFixture) -> None:
    runtime.apply_catalog_record(record(b"sku-1", b'{"price": ' + str(10**400).encode() + b"}",
                                        offset=41))
    runtime.apply_catalog_record(record(b"sku-2", b'{"category": "c1"}', offset=42))
    assert runtime.metrics.catalog_rejected == 1
    assert "sku-1" not in runtime.recommender.catalog.items
    assert runtime.recommender.catalog.items["sku-2"].category == "c1"
    assert "storefront.items[0]@41 (key b'sku-1')" in caplog.text


def test_a_fault_in_applying_costs_one_record_and_one_traceback_a_minute(
        runtime: WorkerRuntime, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(item: CatalogItem) -> None:
        raise KeyError(item.item_id)

    monkeypatch.setattr(runtime.recommender, "upsert_item", broken)
    with caplog.at_level(logging.ERROR):
        for offset in range(3):
            runtime.apply_catalog_record(record(b"sku-%d" % offset, b"{}", offset=offset))
    assert runtime.metrics.catalog_rejected == 3
    lines = [r for r in caplog.records if "could not be applied" in r.getMessage()]
    assert [f"@{n} " in r.getMessage() for n, r in enumerate(lines)] == [True] * 3
    assert [bool(r.exc_info) for r in lines] == [True, False, False]


def test_catalog_records_wait_for_the_last_hold_and_keep_their_order(
        runtime: WorkerRuntime) -> None:
    """A batch on its thread and an item table being built overlap: records that come meanwhile
    are applied once both are done, in the order they came (a delisting after an update)."""
    items = runtime.recommender.catalog.items
    with runtime.catalog_held():
        with runtime.catalog_held():
            runtime.apply_catalog_record(record(b"sku-1", b'{"category": "c1"}', offset=1))
        runtime.apply_catalog_record(record(b"sku-2", b'{"category": "c2"}', offset=2))
        assert "sku-1" not in items and "sku-2" not in items  # the outer hold is still open
        runtime.apply_catalog_record(record(b"sku-1", None, offset=3))  # delisted after
    assert "sku-1" not in items and items["sku-2"].category == "c2"
    assert "sku-1" in runtime.recommender.catalog.delisted
    runtime.apply_catalog_record(record(b"sku-3", b'{"category": "c3"}', offset=4))
    assert items["sku-3"].category == "c3"  # no hold: applied at once


def test_attributes_read_as_a_mapping_and_share_their_names() -> None:
    one = parse_catalog_item("a", b'{"category": "shoes", "brand": "Acme", "size": 42}')
    two = parse_catalog_item("b", b'{"brand": "Other", "size": "9", "category": "bags"}')
    assert one.attributes == {"brand": "Acme", "size": "42"}
    assert dict(two.attributes) == {"brand": "Other", "size": "9"}
    assert one.attribute("size") == "42" and one.attribute("colour") is None
    assert "brand" in one.attributes and len(one.attributes) == 2
    with pytest.raises(KeyError):
        one.attributes["colour"]
    # Equal to an item built with a plain dict, and one copy of the names for both items.
    assert one == CatalogItem("a", "shoes", True, None, {"brand": "Acme", "size": "42"})
    assert one.attributes._names is two.attributes._names  # type: ignore[attr-defined]
    assert one.to_dict() == {"brand": "Acme", "size": "42", "category": "shoes",
                             "in_stock": True}
