"""Catalog entries from the compacted ``storefront.items`` topic.

A catalog message is a JSON object keyed by item_id with any of ``category``, ``brand``,
``shop``, ``price`` and ``in_stock`` (plus free-form attributes). A tombstone (null value)
delists the item. Invalid catalog messages are rejected with a reason, like events.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from stream_rec.core.events import InvalidEvent

MAX_ATTRIBUTE_CHARS = 256


@dataclass(frozen=True, slots=True)
class CatalogItem:
    item_id: str
    category: str | None = None
    in_stock: bool = True
    price: float | None = None
    attributes: dict[str, str] = field(default_factory=dict, hash=False)

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


def parse_catalog_item(item_id: str, raw: bytes) -> CatalogItem:
    """Validate one catalog message value (not a tombstone); raise InvalidEvent with a reason."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidEvent("catalog entry is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidEvent("catalog entry must be a JSON object")
    in_stock = data.get("in_stock", True)
    if not isinstance(in_stock, bool):
        raise InvalidEvent("field 'in_stock' must be true or false")
    price = data.get("price")
    if price is not None and (isinstance(price, bool) or not isinstance(price, int | float)
                              or not math.isfinite(price) or price < 0):
        raise InvalidEvent("field 'price' must be a non-negative number")
    attributes: dict[str, str] = {}
    for key, value in data.items():
        if key in {"in_stock", "price", "item_id"} or value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise InvalidEvent(f"attribute {key!r} must be a string or a number")
        text = str(value)
        if len(text) > MAX_ATTRIBUTE_CHARS or len(key) > MAX_ATTRIBUTE_CHARS:
            raise InvalidEvent(f"attribute {key!r} is too long")
        attributes[key] = text
    category = attributes.pop("category", None)
    return CatalogItem(item_id, category, in_stock, None if price is None else float(price),
                       attributes)
