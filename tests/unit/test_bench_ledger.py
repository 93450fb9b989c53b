"""The bench's matching: event ids out of both message shapes, and the ledger's accounting."""

from __future__ import annotations

import json

import pytest

from stream_rec.rerank import RerankPolicy
from stream_rec.serving.lists import RecItem, RecList
from stream_rec.tools.bench.ledger import Ledger, extract_event_id, extract_own_ms


def _recommendation(user_id: str, event_id: str) -> bytes:
    """Exactly what the worker publishes (agents.publish: compact JSON of RecList.to_dict)."""
    items = tuple(RecItem(f"item-{n}", 1.0 / (n + 1), "trending now") for n in range(20))
    rec = RecList(user_id, event_id, items, "v1", RerankPolicy.parse("dpp:0.5"), False,
                  1_700_000_000_000.0, 3.2)
    return json.dumps(rec.to_dict(), separators=(",", ":")).encode()


def test_event_id_from_a_worker_recommendation() -> None:
    assert extract_event_id(_recommendation("u1", "run:throughput:17")) == "run:throughput:17"


def test_event_id_from_a_contract_event_with_spaces() -> None:
    event = json.dumps({"event_id": "a:b:3", "user_id": "u", "item_id": "i", "type": "click",
                        "ts": 1}).encode()
    assert extract_event_id(event) == "a:b:3"


def test_event_id_is_the_top_level_one_even_when_a_user_id_looks_like_it() -> None:
    # user_id comes first in the recommendation: an id with "event_id" in it must not fool us.
    assert extract_event_id(_recommendation('event_id', "e-1")) == "e-1"


@pytest.mark.parametrize("value", [None, b"", b"not json", b'{"user_id": "u"}'])
def test_no_event_id(value: bytes | None) -> None:
    assert extract_event_id(value) is None


def test_ledger_matches_counts_duplicates_and_unknown() -> None:
    ledger = Ledger()
    ledger.record_send("a", 1.0)
    ledger.record_send("b", 1.5)
    ledger.record_arrival("a", 1.25)
    ledger.record_arrival("a", 1.30)  # a re-delivery: the first arrival counts
    ledger.record_arrival("zzz", 2.0)  # never sent
    ledger.record_arrival(None, 2.0)  # no id at all
    assert ledger.missing(["a", "b"]) == ["b"]
    assert not ledger.all_arrived(["a", "b"])
    assert ledger.duplicates == 1 and ledger.unknown == 2
    assert ledger.latencies_ms(["a", "b"]) == [250.0]
    ledger.record_arrival("b", 3.5)
    assert ledger.all_arrived(["a", "b"])
    assert ledger.span_s(["a", "b"]) == pytest.approx(2.5)  # first send -> last arrival


def test_ledger_refuses_an_id_sent_twice() -> None:
    ledger = Ledger()
    ledger.record_send("a", 1.0)
    with pytest.raises(ValueError, match="sent twice"):
        ledger.record_send("a", 2.0)




def test_the_workers_own_time_from_a_recommendation_and_none_from_an_event() -> None:
    assert extract_own_ms(_recommendation("u1", "e1")) == 3.2
    # an item id that looks like the field does not fool it
    tricky = _recommendation("u1", "e1").replace(b'"item-0"', b'"latency_ms"')
    assert extract_own_ms(tricky) == 3.2
    assert extract_own_ms(b'{"event_id": "e1", "user_id": "u1", "latency_ms": "x"}') is None
    assert extract_own_ms(None) is None


def test_latency_parts_add_up_to_the_latency() -> None:
    ledger = Ledger()
    ledger.record_send("a", 10.000)
    ledger.record_send("b", 10.005)  # passthrough-like: no own time
    ledger.record_send("c", 10.010)  # never arrives
    ledger.record_made("a", 10.030, 12.0)
    ledger.record_arrival("a", 10.038)
    ledger.record_made("a", 10.040, 1.0)  # a duplicate output changes nothing
    ledger.record_made("b", 10.020, None)
    ledger.record_arrival("b", 10.025)
    ledger.record_made("zzz", 10.0, 1.0)  # never sent: ignored
    parts = ledger.latency_parts_ms(["a", "b", "c"])
    assert [round(v, 6) for v in parts["to_worker"]] == [18.0]
    assert parts["in_worker"] == [12.0]
    assert [round(v, 6) for v in parts["from_worker"]] == [8.0]
    total = parts["to_worker"][0] + parts["in_worker"][0] + parts["from_worker"][0]
    assert total == pytest.approx(ledger.latencies_ms(["a"])[0])
