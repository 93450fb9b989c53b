"""Dataset -> storefront events: contract-valid, time-ordered, deterministic ids."""

from __future__ import annotations

import json

from stream_rec.core.events import parse_event
from stream_rec.datasets import Dataset, Interaction, Session
from stream_rec.offline.replay import RateLimiter, catalog_messages, dataset_events


def _dataset() -> Dataset:
    def session(sid: str, user: str, start: int, items: list[str]) -> Session:
        return Session(sid, user, tuple(Interaction(i, "click", start + n * 10, user)
                                        for n, i in enumerate(items)))

    return Dataset("toy", train=(session("s1", "u1", 1_700_000_000_000, ["a", "b"]),
                                 session("s2", "u2", 1_700_000_000_005, ["c", "a"])),
                   test=(session("s3", "u1", 1_700_000_001_000, ["d"]),),
                   items={"a": {"category": "x"}})


def test_events_are_valid_time_ordered_and_keyed_by_user() -> None:
    events = dataset_events(_dataset())
    parsed = [parse_event(e.value, 10_000) for e in events]
    assert [p.ts_ms for p in parsed] == sorted(p.ts_ms for p in parsed)
    assert [p.item_id for p in parsed] == ["a", "c", "b", "a", "d"]
    assert all(e.key == p.user_id.encode() for e, p in zip(events, parsed, strict=True))
    assert len({p.event_id for p in parsed}) == len(parsed)


def test_event_ids_are_stable_across_replays_and_splits_select() -> None:
    assert dataset_events(_dataset()) == dataset_events(_dataset())
    assert len(dataset_events(_dataset(), "train")) == 4
    assert len(dataset_events(_dataset(), "test")) == 1


def test_catalog_messages_carry_attributes() -> None:
    (key, value), = list(catalog_messages(_dataset()))
    assert key == b"a" and json.loads(value) == {"category": "x", "in_stock": True}


def test_rate_limiter_without_rate_never_sleeps() -> None:
    limiter = RateLimiter(None)
    for _ in range(1000):
        limiter.wait()
    assert limiter.interval == 0.0


def test_catalog_entries_send_prices_as_numbers_and_drop_unusable_ones() -> None:
    import json

    from stream_rec.core.catalog import parse_catalog_item
    from stream_rec.offline.replay import catalog_entry

    for raw, expected in [("12.5", 12.5), ("0", 0.0), ("free", None), ("-3", None),
                          ("nan", None), ("inf", None), ("1e400", None)]:
        value = catalog_entry({"category": "c", "price": raw})
        assert json.loads(value).get("price") == expected, raw
        assert parse_catalog_item("i1", value).price == expected  # the worker takes it
