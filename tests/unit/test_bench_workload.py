"""The bench's event stream: valid contract events, reproducible, interleaved, unique ids."""

from __future__ import annotations

import json
from collections import Counter

from stream_rec.core.events import Event, parse_message
from stream_rec.tools.bench.workload import (
    ShopperSession,
    ShopperStream,
    Workload,
    catalog_messages,
)


def _workload(sessions: int = 30, length: int = 4) -> Workload:
    made = tuple(ShopperSession(f"s{n}", f"s{n}", tuple((f"i{(n * 7 + k) % 50}", "click")
                                                       for k in range(length)))
                 for n in range(sessions))
    catalog = tuple(sorted({i for s in made for i, _ in s.actions}))
    return Workload("toy", made, catalog, {})


def test_events_are_valid_contract_events_with_unique_ids() -> None:
    stream = ShopperStream(_workload(), "run1", concurrency=5, seed=1)
    events = stream.take(100, "warmup") + stream.take(100, "warmup")
    assert len({e.event_id for e in events}) == 200
    for event in events:
        parsed = parse_message(event.value, 65536)
        assert isinstance(parsed, Event)
        assert parsed.event_id == event.event_id and parsed.user_id.encode() == event.key


def test_same_seed_same_stream() -> None:
    first = ShopperStream(_workload(), "r", concurrency=5, seed=3, start_ms=0).take(50, "p")
    again = ShopperStream(_workload(), "r", concurrency=5, seed=3, start_ms=0).take(50, "p")
    assert first == again


def test_sessions_interleave_and_keep_their_order() -> None:
    events = ShopperStream(_workload(), "r", concurrency=5, seed=0).take(60, "p")
    users = [e.key for e in events]
    assert len(set(users[:10])) > 1  # not one session after another
    by_user: dict[bytes, list[str]] = {}
    for e in events:
        by_user.setdefault(e.key, []).append(json.loads(e.value)["item_id"])
    for user, items in by_user.items():
        n = int(user.decode()[1:])
        assert items == [f"i{(n * 7 + k) % 50}" for k in range(len(items))]


def test_replayed_sessions_are_new_shoppers() -> None:
    events = ShopperStream(_workload(sessions=3, length=2), "r", concurrency=1).take(12, "p")
    per_user = Counter(e.key for e in events)
    assert len(per_user) == 6 and set(per_user.values()) == {2}


def test_catalog_messages_cover_every_item() -> None:
    workload = _workload()
    messages = dict(catalog_messages(workload))
    assert len(messages) == len(workload.catalog)
    assert json.loads(next(iter(messages.values()))) == {"in_stock": True}
