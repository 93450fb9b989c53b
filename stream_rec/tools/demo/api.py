"""What the demo page's API accepts and returns (pure: validation and shaping, no I/O).

``POST /api/click`` takes ``{"user_id": ..., "item_id": ..., "type": "click"}`` (type optional,
any contract type) and becomes one storefront event; anything else is a ``BadRequest`` whose
message the page shows. Lists and histories coming back from the worker get the catalog's
category, brand and price added, so a person can see what the re-ranking did.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from stream_rec.core.events import EVENT_TYPES, InvalidEvent, event_from_dict

MAX_BODY_BYTES = 4096
ItemTable = Mapping[str, Mapping[str, str]]


class BadRequest(ValueError):
    """The request cannot be served as sent; the message says why, for the person sending it."""


def click_event(body: bytes, items: ItemTable, event_id: str, now_ms: int) -> dict[str, Any]:
    """The storefront event a page click stands for, checked against the event contract."""
    if len(body) > MAX_BODY_BYTES:
        raise BadRequest(f"body of {len(body)} bytes is over the {MAX_BODY_BYTES}-byte limit")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("body is not JSON") from None
    if not isinstance(data, dict):
        raise BadRequest('body must be a JSON object: {"user_id": ..., "item_id": ...}')
    unknown = sorted(set(data) - {"user_id", "item_id", "type"})
    if unknown:
        raise BadRequest(f"unexpected field(s) {', '.join(unknown)}")
    for name in ("user_id", "item_id"):
        if not isinstance(data.get(name), str) or not data[name].strip():
            raise BadRequest(f"{name} must be a non-empty string")
    kind = data.get("type", "click")
    if kind not in EVENT_TYPES:
        raise BadRequest(f"type must be one of {', '.join(EVENT_TYPES)}")
    if items and data["item_id"] not in items:
        raise BadRequest(f"item {data['item_id'][:80]!r} is not in the catalog")
    event = {"event_id": event_id, "user_id": data["user_id"].strip(),
             "item_id": data["item_id"], "type": kind, "ts": now_ms,
             "session_id": f"page-{data['user_id'].strip()}"}
    try:
        event_from_dict(event)
    except InvalidEvent as exc:
        raise BadRequest(exc.reason) from None
    return event


def with_item_details(rows: list[dict[str, Any]], items: ItemTable) -> list[dict[str, Any]]:
    """Each row plus the catalog's category, brand and price of its ``item_id`` (when known)."""
    out = []
    for row in rows:
        attrs = items.get(str(row.get("item_id")), {})
        out.append({**row, **{k: attrs[k] for k in ("category", "brand", "price")
                              if k in attrs}})
    return out


def shopper_view(user_id: str, state: dict[str, Any] | None, recs: dict[str, Any] | None,
                 items: ItemTable, history: int = 12) -> dict[str, Any]:
    """The shopper panel: newest events first, the current list with item details."""
    view: dict[str, Any] = {"user_id": user_id, "events": [], "recommendations": None,
                            "category_affinity": {}}
    if state is not None:
        view["events"] = with_item_details(list(reversed(state.get("history", [])))[:history],
                                           items)
        affinity = state.get("category_affinity", {})
        view["category_affinity"] = dict(sorted(affinity.items(), key=lambda kv: -kv[1])[:5])
    if recs is not None:
        view["recommendations"] = {**recs, "items": with_item_details(recs.get("items", []),
                                                                      items)}
    return view
