"""The bench's matching: event ids out of both message shapes, and the ledger's accounting."""

from __future__ import annotations

import json

import pytest

from stream_rec.rerank import RerankPolicy
from stream_rec.serving.lists import RecItem, RecList
from stream_rec.tools.bench.ledger import Ledger, extract_event_id


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


