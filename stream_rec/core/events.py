"""The storefront event contract and its validator.

An event is JSON with ``event_id``, ``user_id``, ``item_id``, ``type`` and ``ts`` (ISO 8601 or
epoch milliseconds), and optionally ``session_id``, ``price``, ``quantity`` and ``context``.
Anything else is rejected with a reason that ends up in the dead-letter topic; nothing in here
raises anything but ``InvalidEvent``, whatever JSON value stands in any field (numbers of any
size included). Objects with a repeated key are rejected. Unknown extra fields are ignored
(forward compatible).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stream_rec.core.record import record

EVENT_TYPES: tuple[str, ...] = ("view", "click", "add_to_cart", "purchase")
TYPE_CODE: dict[str, int] = {name: code for code, name in enumerate(EVENT_TYPES)}
MAX_ID_CHARS = 256
MAX_CONTEXT_CHARS = 4096
# 2000-01-01 .. 2100-01-01 in epoch ms: anything outside is a unit mistake or garbage.
MIN_TS_MS = 946_684_800_000
MAX_TS_MS = 4_102_444_800_000
MAX_QUANTITY = 1_000_000
MAX_PRICE = 1e12


class InvalidEvent(ValueError):
    """The message breaks the event contract; ``reason`` says how, in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@record
class Event:
    """One valid shopper action. Ids are strings; ``ts_ms`` is epoch milliseconds (UTC)."""

    event_id: str
    user_id: str
    item_id: str
    type: str
    ts_ms: int
    session_id: str | None = None
    price: float | None = None
    quantity: int | None = None
    # Explicit attribution: the recommendation list the shopper acted from, and the item's
    # place on it (0 = first).
    list_id: str | None = None
    position: int | None = None

    @property
    def type_code(self) -> int:
        return TYPE_CODE[self.type]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event_id": self.event_id, "user_id": self.user_id,
                               "item_id": self.item_id, "type": self.type, "ts": self.ts_ms}
        for key in ("session_id", "price", "quantity", "list_id", "position"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


FORGET_USER = "forget_user"


@dataclass(frozen=True, slots=True)
class ForgetUser:
    """A privacy request on the events topic: delete everything kept about ``user_id``.

    ``{"type": "forget_user", "user_id": "...", "request_id": "..."}``, keyed by user_id like
    the shopper's events, so it is applied in order with them.
    """

    user_id: str
    request_id: str | None = None


IMPRESSION = "impression"
MAX_IMPRESSION_ITEMS = 200
MAX_POSITION = 9999
MAX_PLACEMENT_CHARS = 64


@record
class Impression:
    """The storefront displayed items of a recommendation list to the shopper.

    ``{"type": "impression", "event_id", "user_id", "list_id", "item_ids": [...], "ts"}`` and
    optionally ``placement``. It changes what counts as shown (``shown_source``); it does not
    ask for a new list.
    """

    event_id: str
    user_id: str
    list_id: str
    item_ids: tuple[str, ...]  # as displayed, in display order
    ts_ms: int
    placement: str | None = None


RawValue = bytes | bytearray | memoryview | str | None


def parse_event(raw: RawValue, max_bytes: int) -> Event:
    """Decode and validate one message value; raise ``InvalidEvent`` with the reason."""
    return event_from_dict(decode_object(raw, max_bytes))


def parse_message(raw: RawValue, max_bytes: int) -> Event | Impression | ForgetUser:
    """A shopper event, an impression or a forget-user request; anything else raises
    ``InvalidEvent``."""
    data = decode_object(raw, max_bytes)
    kind = data.get("type")
    if kind == FORGET_USER:
        request_id = data.get("request_id")
        return ForgetUser(_id(data, "user_id"),
                          None if request_id is None else _id(data, "request_id"))
    if kind == IMPRESSION:
        return impression_from_dict(data)
    return event_from_dict(data)


def impression_from_dict(data: dict[str, Any]) -> Impression:
    """Validate an already-decoded impression object against the contract."""
    items = data.get("item_ids")
    if "item_ids" not in data or items is None:
        raise InvalidEvent("missing field 'item_ids'")
    if not isinstance(items, list):
        raise InvalidEvent("field 'item_ids' must be a list of item ids")
    if not 1 <= len(items) <= MAX_IMPRESSION_ITEMS:
        raise InvalidEvent(f"field 'item_ids' must hold 1..{MAX_IMPRESSION_ITEMS} items")
    item_ids = tuple(_id({"item_ids": item}, "item_ids") for item in items)
    if len(set(item_ids)) != len(item_ids):
        raise InvalidEvent("field 'item_ids' names an item twice")
    placement = data.get("placement")
    if placement is not None and (not isinstance(placement, str)
                                  or not 1 <= len(placement) <= MAX_PLACEMENT_CHARS
                                  or not placement.isprintable()):
        raise InvalidEvent(f"field 'placement' must be a string of 1..{MAX_PLACEMENT_CHARS} "
                           "printable characters")
    return Impression(event_id=_id(data, "event_id"), user_id=_id(data, "user_id"),
                      list_id=_id(data, "list_id"), item_ids=item_ids,
                      ts_ms=parse_timestamp(data.get("ts"), present="ts" in data),
                      placement=placement)


def decode_object(raw: RawValue, max_bytes: int, what: str = "payload") -> dict[str, Any]:
    """Bytes -> JSON object, within the size limit; raise ``InvalidEvent`` with the reason.

    Events and catalog entries both come through here (``what`` names which in the reasons):
    one place decides what a JSON object is. A repeated key, NaN and Infinity (not JSON,
    though Python's parser takes them) and nesting past Python's recursion limit are refused.
    """
    if raw is None:
        raise InvalidEvent("empty message")
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise InvalidEvent(f"{what} must be bytes")
    if len(raw) > max_bytes:
        raise InvalidEvent(f"{what} of {len(raw)} bytes exceeds the {max_bytes}-byte limit")
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent(f"{what} is not UTF-8 (byte {exc.start})") from None
    try:
        data = _DECODER.decode(text)
    except RecursionError:
        raise InvalidEvent(f"{what}: JSON nested too deeply") from None
    except InvalidEvent:
        raise
    except ValueError as exc:  # and integers longer than Python converts (4300 digits)
        raise InvalidEvent(f"{what}: bad JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidEvent(f"{what}: expected a JSON object, got {type(data).__name__}")
    return data


def _not_json(name: str) -> Any:
    raise InvalidEvent(f"{name} is not a JSON value")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused when a key repeats: parsers disagree on which copy wins (the
    last one here, the first in others), so ``{"type": "view", ..., "type": "forget_user"}``
    could mean one thing to the storefront's tools and another to the worker."""
    data = dict(pairs)
    if len(data) != len(pairs):
        repeated = next(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
        raise InvalidEvent(f"duplicate key {_preview(repeated)} in a JSON object")
    return data


# Built once: ``json.loads`` with hooks builds a decoder per call (1.3 us of 3 per event).
_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_not_json)


def event_from_dict(data: dict[str, Any]) -> Event:
    """Validate an already-decoded JSON object against the contract."""
    event_type = data.get("type")
    if not isinstance(event_type, str) or event_type not in TYPE_CODE:
        if "type" not in data:
            raise InvalidEvent("missing field 'type'")
        raise InvalidEvent(f"unknown event type {_preview(event_type)}; "
                           f"expected one of {', '.join(EVENT_TYPES)}")
    _check_context(data.get("context"))
    session_id = data.get("session_id")
    return Event(
        event_id=_id(data, "event_id"),
        user_id=_id(data, "user_id"),
        item_id=_id(data, "item_id"),
        type=event_type,
        ts_ms=parse_timestamp(data.get("ts"), present="ts" in data),
        session_id=None if session_id is None else _id(data, "session_id"),
        price=_price(data.get("price")),
        quantity=_quantity(data.get("quantity")),
        list_id=None if data.get("list_id") is None else _id(data, "list_id"),
        position=_position(data.get("position")),
    )


def parse_timestamp(value: Any, present: bool = True) -> int:
    """Epoch milliseconds from an int/float (ms) or an ISO 8601 string (naive means UTC)."""
    if not present or value is None:
        raise InvalidEvent("missing field 'ts'")
    if isinstance(value, bool):
        raise InvalidEvent("field 'ts' must be epoch milliseconds or an ISO 8601 string")
    if isinstance(value, int):
        ts = value  # compared as an integer below: any size is fine
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidEvent("field 'ts' is not a finite number")
        ts = int(value)
    elif isinstance(value, str):
        if len(value) > 64:
            raise InvalidEvent("field 'ts' is too long for a timestamp")
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            ts = int(parsed.timestamp() * 1000)
        except (ValueError, OverflowError, OSError):  # out-of-range dates raise the latter two
            raise InvalidEvent(f"field 'ts' is not ISO 8601: {_preview(value)}") from None
    else:
        raise InvalidEvent("field 'ts' must be epoch milliseconds or an ISO 8601 string")
    if not MIN_TS_MS <= ts < MAX_TS_MS:
        raise InvalidEvent(f"field 'ts' = {_preview(ts)} is outside 2000-01-01..2100-01-01 in "
                           "epoch ms")
    return ts


def _id(data: dict[str, Any], key: str) -> str:
    if key not in data or data[key] is None:
        raise InvalidEvent(f"missing field {key!r}")
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidEvent(f"field {key!r} must be a string, got {type(value).__name__}")
    text = str(value)
    if not text or len(text) > MAX_ID_CHARS:
        raise InvalidEvent(f"field {key!r} must have 1..{MAX_ID_CHARS} characters")
    if not text.isprintable():
        raise InvalidEvent(f"field {key!r} contains control characters")
    return text


def _price(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEvent("field 'price' must be a number")
    # Compared before any float conversion: math.isfinite(10**400) raises OverflowError.
    if not 0 <= value <= MAX_PRICE:  # NaN fails this comparison too
        raise InvalidEvent(f"field 'price' must be in 0..{MAX_PRICE:g}")
    return float(value)


def _quantity(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEvent("field 'quantity' must be an integer")
    if not 1 <= value <= MAX_QUANTITY:
        raise InvalidEvent(f"field 'quantity' must be in 1..{MAX_QUANTITY}")
    return value


def _position(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEvent("field 'position' must be an integer")
    if not 0 <= value <= MAX_POSITION:
        raise InvalidEvent(f"field 'position' must be in 0..{MAX_POSITION}")
    return value


def _check_context(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise InvalidEvent("field 'context' must be a JSON object")
    try:
        size = len(json.dumps(value))
    except (ValueError, RecursionError):  # e.g. an integer too long to print
        raise InvalidEvent("field 'context' cannot be re-encoded") from None
    if size > MAX_CONTEXT_CHARS:
        raise InvalidEvent(f"field 'context' exceeds {MAX_CONTEXT_CHARS} characters")


def _preview(value: Any, limit: int = 40) -> str:
    try:
        text = repr(value)
    except ValueError:  # an integer past Python's digit limit for str()
        return f"<{type(value).__name__} too large to show>"
    return text if len(text) <= limit else text[:limit] + "..."
