"""What the demo page may post, and what it gets to show (no broker, no worker)."""

from __future__ import annotations

import json

import pytest

from stream_rec.core.events import event_from_dict
from stream_rec.tools.demo.api import BadRequest, click_event, shopper_view
from stream_rec.tools.demo.traffic import Shoppers
from stream_rec.tools.storefront import LiveTraffic, StorefrontConfig, make_storefront

ITEMS = {"i1": {"category": "shoes", "brand": "Kado", "price": "79.99"}, "i2": {}}


def post(body: object) -> dict:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return click_event(raw, ITEMS, "page:1", 1_767_571_200_000)


def test_a_click_becomes_a_contract_event() -> None:
    event = post({"user_id": "u7", "item_id": "i1"})
    parsed = event_from_dict(event)
    assert (parsed.user_id, parsed.item_id, parsed.type) == ("u7", "i1", "click")
    assert parsed.event_id == "page:1" and parsed.ts_ms == 1_767_571_200_000
    assert post({"user_id": "u7", "item_id": "i2", "type": "purchase"})["type"] == "purchase"


@pytest.mark.parametrize(("body", "says"), [
    (b"{not json", "not JSON"),
    (b"\xff\xfe", "not JSON"),
    ([1, 2], "JSON object"),
    ({"item_id": "i1"}, "user_id"),
    ({"user_id": "u7", "item_id": ""}, "item_id"),
    ({"user_id": 7, "item_id": "i1"}, "user_id"),
    ({"user_id": "u7", "item_id": "i1", "type": "like"}, "type must be one of"),
    ({"user_id": "u7", "item_id": "nope"}, "not in the catalog"),
    ({"user_id": "u7", "item_id": "i1", "price": 3}, "unexpected field"),
    ({"user_id": "u" * 300, "item_id": "i1"}, "user_id"),
    (b"{" + b" " * 5000 + b"}", "limit"),
])
def test_bad_clicks_are_refused_with_the_reason(body: object, says: str) -> None:
    with pytest.raises(BadRequest, match=says):
        post(body)


def test_shopper_view_adds_item_details_newest_event_first() -> None:
    state = {"history": [{"item_id": "i2", "type": "view", "ts": 1},
                         {"item_id": "i1", "type": "click", "ts": 2}],
             "category_affinity": {"shoes": 0.2, "bags": 0.9}}
    recs = {"event_id": "e9", "items": [{"item_id": "i1", "score": 0.5, "reason": "x"},
                                        {"item_id": "gone", "score": 0.1, "reason": "y"}]}
    view = shopper_view("u7", state, recs, ITEMS)
    assert [e["item_id"] for e in view["events"]] == ["i1", "i2"]
    assert view["events"][0]["category"] == "shoes"
    assert list(view["category_affinity"]) == ["bags", "shoes"]
    assert view["recommendations"]["event_id"] == "e9"
    assert view["recommendations"]["items"][0]["brand"] == "Kado"
    assert "category" not in view["recommendations"]["items"][1]
    assert shopper_view("u8", None, None, ITEMS)["recommendations"] is None


def test_driven_shoppers_get_no_more_synthetic_traffic() -> None:
    shoppers = Shoppers()
    traffic = LiveTraffic(make_storefront(StorefrontConfig(n_items=100, n_shoppers=20)), 3,
                          concurrent=4)
    first = traffic.next_step(skip=shoppers)
    shoppers.saw(first.user_id)
    shoppers.drive(first.user_id)
    assert all(traffic.next_step(skip=shoppers).user_id != first.user_id for _ in range(200))
    listed = shoppers.active(limit=10, since_ms=0)
    assert listed == [{"user_id": first.user_id, "events": 1, "last_ms": listed[0]["last_ms"],
                       "driven": True}]
