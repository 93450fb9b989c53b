"""Catalog entries from the compacted ``storefront.items`` topic.

A catalog message is a JSON object keyed by item_id with any of ``category``, ``brand``,
``shop``, ``price`` and ``in_stock`` (plus free-form attributes). A tombstone (null value)
delists the item. Invalid catalog messages are rejected with a reason, like events.

The topic is compacted and every worker re-reads it from its first offset at each start, so a
message that made the parser fail in any other way would stop every worker, at every start,
for as long as the message stays the latest for its key. Hence the rule this module keeps:
``catalog_item_id`` and ``parse_catalog_item`` raise nothing but ``InvalidEvent``, whatever
the bytes (tests/unit/test_catalog.py checks it over arbitrary JSON in every field).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from stream_rec.core.events import MAX_ID_CHARS, InvalidEvent, decode_object

MAX_ATTRIBUTE_CHARS = 256
# Kafka's default message limit: the topic cannot hold a larger entry anyway.
MAX_CATALOG_BYTES = 1024 * 1024
_SKIPPED = frozenset({"in_stock", "price", "item_id"})


class Attributes(Mapping[str, str]):
    """An item's attributes, read-only and compact: the names are a tuple shared by every
    item with the same names, the values a tuple of their own. A million items in plain
    dicts held ~270 bytes of dict each; this holds ~100."""

    __slots__ = ("_names", "_values")

    def __init__(self, pairs: Mapping[str, str]) -> None:
        names = tuple(pairs)
        if len(_SHARED_NAMES) < MAX_SHARED_NAME_SETS:
            names = _SHARED_NAMES.setdefault(names, names)
        self._names: tuple[str, ...] = names
        self._values: tuple[str, ...] = tuple(pairs.values())

    def __getitem__(self, name: str) -> str:
        try:
            return self._values[self._names.index(name)]
        except ValueError:
            raise KeyError(name) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return repr(dict(self))


# Distinct attribute-name sets shared by ``Attributes`` (bounded: a feed that sends endless
# different names only stops sharing them)
_SHARED_NAMES: dict[tuple[str, ...], tuple[str, ...]] = {}
MAX_SHARED_NAME_SETS = 10_000


@dataclass(frozen=True, slots=True)
class CatalogItem:
    """One item as the shop lists it: category, stock, price and its other attributes."""

    item_id: str
    category: str | None = None
    in_stock: bool = True
    price: float | None = None
    attributes: Mapping[str, str] = field(default_factory=dict, hash=False)

    def attribute(self, name: str) -> str | None:
        """Category, brand, shop or any other attribute, as the model's vocabularies see it."""
        if name == "category":
            return self.category
        return self.attributes.get(name)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.attributes, "in_stock": self.in_stock}
        if self.category is not None:
            out["category"] = self.category
        if self.price is not None:
            out["price"] = self.price
        return out


def catalog_item_id(key: object) -> str:
    """The item id of a catalog message key; raise InvalidEvent when it cannot be one.

    The same rules as an event's ``item_id`` (1..256 printable characters), decoded strictly:
    a key that no event can ever name would only add an item nobody can click.
    """
    if key is None:
        raise InvalidEvent("catalog message has no key (item_id)")
    if not isinstance(key, bytes | bytearray | memoryview):
        raise InvalidEvent("catalog message key must be bytes")
    try:
        item_id = bytes(key).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent(f"catalog message key is not UTF-8 (byte {exc.start})") from None
    if not item_id or len(item_id) > MAX_ID_CHARS:
        raise InvalidEvent(f"catalog message key must have 1..{MAX_ID_CHARS} characters")
    if not item_id.isprintable():
        raise InvalidEvent("catalog message key contains control characters")
    return item_id


def parse_catalog_item(item_id: str, raw: object) -> CatalogItem:
    """Validate one catalog message value (not a tombstone); raise InvalidEvent with a reason."""
    data = _decode(raw)
    in_stock = data.get("in_stock", True)
    if not isinstance(in_stock, bool):
        raise InvalidEvent("field 'in_stock' must be true or false")
    price = _price(data.get("price"))
    attributes: dict[str, str] = {}
    for key, value in data.items():
        if key in _SKIPPED or value is None:
            continue
        if len(key) > MAX_ATTRIBUTE_CHARS:
            raise InvalidEvent(f"attribute {_preview(key)} is too long")
        if not _utf8(key):
            raise InvalidEvent(f"attribute name {_preview(key)} is not valid Unicode")
        text = _attribute_text(key, value)
        if len(text) > MAX_ATTRIBUTE_CHARS:
            raise InvalidEvent(f"attribute {_preview(key)} is too long")
        # One copy of each name and value for the whole catalog: a million items share a few
        # names and mostly a few thousand values (categories, brands), and each decoded copy
        # costs ~50 bytes a string.
        attributes[sys.intern(key)] = sys.intern(text)
    category = attributes.pop("category", None)
    return CatalogItem(item_id, category, in_stock, price, Attributes(attributes))


def _decode(raw: object) -> dict[str, Any]:
    return decode_object(raw, MAX_CATALOG_BYTES, "catalog entry")  # type: ignore[arg-type]


def _price(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEvent("field 'price' must be a non-negative number")
    try:
        price = float(value)  # an integer beyond a double's range overflows here
    except OverflowError:
        raise InvalidEvent("field 'price' is too large for a number") from None
    if not math.isfinite(price) or price < 0:
        raise InvalidEvent("field 'price' must be a non-negative number")
    return price


def _attribute_text(key: str, value: Any) -> str:
    """An attribute as the model's vocabularies see it: a string, or a number's decimal text."""
    if isinstance(value, str):
        if not _utf8(value):
            raise InvalidEvent(f"attribute {_preview(key)} is not valid Unicode")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEvent(f"attribute {_preview(key)} must be a string or a number")
    if isinstance(value, int) and abs(value) >= 10 ** MAX_ATTRIBUTE_CHARS:
        raise InvalidEvent(f"attribute {_preview(key)} is too long")  # before str() converts it
    return str(value)


def _utf8(text: str) -> bool:
    """False for text with lone surrogates (JSON's "\\ud800"): they cannot be written back out
    as UTF-8, and a category is written into shopper state and lists."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _preview(text: str, limit: int = 40) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else shown[:limit] + "..."
