"""The worker's per-batch logic (stream_rec.serving.batch), without Kafka or Faust.

What a hostile or careless producer sends must cost exactly one dead letter per bad message and
nothing else: the rest of the batch gets its lists and its state, whatever the batch holds.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from stream_rec.core.attribution import attribute, group_key, record_impression, record_sent
from stream_rec.core.catalog import parse_catalog_item
from stream_rec.core.events import Event, ForgetUser, Impression, InvalidEvent, parse_message
from stream_rec.core.state import (
    RETRIES_KEPT,
    UserState,
    apply_event,
    is_duplicate,
    mark_seen,
    note_retry,
    record_shown,
)
from stream_rec.core.state_codec import decode_state, encode_state
from stream_rec.rerank import RerankPolicy
from stream_rec.serving.batch import BatchConfig, BatchHandler, BatchResult, handle_batch
from stream_rec.serving.dead_letter import Message
from stream_rec.serving.lists import RecRequest
from stream_rec.serving.recommender import Recommender, RecommenderConfig

NOW_MS = 1_750_000_000_000
TOPIC = "storefront.events"
ITEMS = [f"i{n}" for n in range(30)]
CONFIG = BatchConfig(max_event_bytes=65536)


def _recommender(cls: type[Recommender] = Recommender) -> Recommender:
    rec = cls(RecommenderConfig(k=5, pool=20))
    for n, item in enumerate(ITEMS):
        rec.upsert_item(parse_catalog_item(item, b'{"category": "c%d"}' % (n % 4)))
    return rec


class Store(dict[bytes, bytes]):
    """Two tables as dicts, written the way the worker writes them."""

    def __init__(self) -> None:
        super().__init__()
        self.latest: dict[bytes, bytes] = {}
        self.metrics: dict[bytes, bytes] = {}

    def read(self, key: bytes, _index: int) -> bytes | None:
        return self.get(key)

    def read_metrics(self, key: bytes, _index: int) -> bytes | None:
        return self.metrics.get(key)

    def apply(self, result: BatchResult, state: bool = True, metrics: bool = True) -> None:
        """Write what a batch wrote; a crash between the table writes skips one side."""
        tables = [(self.latest, result.latest)]
        if state:
            tables.append((self, result.state))
        if metrics:
            tables.append((self.metrics, result.metrics))
        for table, writes in tables:
            for write in writes:
                if write.value is None:
                    table.pop(write.key, None)
                else:
                    table[write.key] = write.value


def _event(user: str = "u1", item: str = "i1", event_id: str = "e1", **extra: Any) -> bytes:
    doc = {"event_id": event_id, "user_id": user, "item_id": item, "type": "view",
           "ts": NOW_MS - 1000, **extra}
    return json.dumps(doc).encode()


def _messages(values: Sequence[tuple[bytes | None, bytes | None]], partition: int = 0,
              first_offset: int = 0) -> list[Message]:
    return [Message(key, value, TOPIC, partition, first_offset + n)
            for n, (key, value) in enumerate(values)]


def _run(values: Sequence[tuple[bytes | None, bytes | None]], store: Store | None = None,
         handler: BatchHandler | None = None, first_offset: int = 0) -> BatchResult:
    store = store if store is not None else Store()
    handler = handler or BatchHandler(_recommender(), CONFIG)
    result = handle_batch(handler, _messages(values, first_offset=first_offset), store.read,
                          NOW_MS, read_metrics=store.read_metrics)
    store.apply(result)
    return result


def _reasons(result: BatchResult) -> list[str]:
    return [json.loads(record)["reason"] for _, record in result.dead_letters]


def test_huge_numbers_are_rejected_and_the_rest_of_the_batch_goes_on() -> None:
    huge = str(10**400)
    values = [(b"u1", _event(event_id="a")),
              (b"u2", _event("u2", event_id="b").replace(b'"view"', b'"view", "price": '
                                                         + huge.encode())),
              (b"u3", _event("u3", event_id="c").replace(b'"ts": ' + str(NOW_MS - 1000).encode(),
                                                         b'"ts": ' + huge.encode())),
              (b"u4", _event("u4", event_id="d", quantity=10**300)),
              (b"u5", _event("u5", event_id="e"))]
    result = _run(values)
    assert [json.loads(o.value)["event_id"] for o in result.lists] == ["a", "e"]
    assert [i for i, _ in result.dead_letters] == [1, 2, 3]
    assert all("price" in r or "'ts'" in r or "quantity" in r for r in _reasons(result))


def test_duplicate_json_keys_are_rejected() -> None:
    raw = _event()[:-1] + b', "type": "forget_user"}'
    result = _run([(b"u1", raw)])
    assert not result.lists
    assert _reasons(result) == ["duplicate key 'type' in a JSON object"]


@pytest.mark.parametrize("key", [None, b"", b"u2", b"U1", b"u1 "])
def test_events_keyed_other_than_by_user_id_are_rejected(key: bytes | None) -> None:
    store = Store()
    result = _run([(key, _event()), (key, b'{"type": "forget_user", "user_id": "u1"}')], store)
    assert not result.lists and not store
    assert len(result.dead_letters) == 2
    assert all("events must be keyed by user_id" in r for r in _reasons(result))


def test_an_unexpected_error_on_one_message_is_its_dead_letter_only() -> None:
    class Fragile(Recommender):
        def observe(self, state: UserState, event: Event, *args: Any, **kwargs: Any
                    ) -> UserState:
            if event.item_id == "i13":
                raise ZeroDivisionError("boom")
            return super().observe(state, event, *args, **kwargs)

    store = Store()
    handler = BatchHandler(_recommender(Fragile), CONFIG)
    result = _run([(b"u1", _event(item="i1", event_id="a")),
                   (b"u1", _event(item="i13", event_id="b")),
                   (b"u2", _event("u2", item="i2", event_id="c"))], store, handler)
    assert [json.loads(o.value)["event_id"] for o in result.lists] == ["a", "c"]
    assert _reasons(result) == ["internal error: ZeroDivisionError"]
    assert result.counts.internal_errors == 1
    assert decode_state(store[b"u1"]).history_items == ["i1"]  # b changed nothing


def test_a_batch_whose_lists_fail_gets_them_one_by_one_then_as_fallback() -> None:
    class Picky(Recommender):
        def recommend(self, requests: Sequence[RecRequest], clock: Any = None) -> Any:
            if any(r.user_id == "u2" for r in requests):
                raise ValueError("cannot score u2")
            return super().recommend(requests, clock)

    result = _run([(b"u1", _event(event_id="a")), (b"u2", _event("u2", event_id="b"))],
                  handler=BatchHandler(_recommender(Picky), CONFIG))
    by_event = {json.loads(o.value)["event_id"]: json.loads(o.value) for o in result.lists}
    assert set(by_event) == {"a", "b"} and not result.dead_letters
    assert by_event["b"]["fallback"] is True


def test_a_forget_request_is_final_for_everything_before_it_in_the_batch() -> None:
    store = Store()
    _run([(b"u1", _event(event_id="old"))], store)
    assert b"u1" in store and b"u1" in store.latest
    forget = b'{"type": "forget_user", "user_id": "u1", "request_id": "r1"}'
    result = _run([(b"u1", _event(item="i2", event_id="a")), (b"u1", forget)], store,
                  first_offset=1)
    assert b"u1" not in store and b"u1" not in store.latest
    assert len(result.lists) == 1  # the list made before the forget is still delivered
    # Events after a forget start a fresh state, and only their list is kept.
    result = _run([(b"u1", _event(item="i3", event_id="b")), (b"u1", forget),
                   (b"u1", _event(item="i4", event_id="c"))], store, first_offset=3)
    state = decode_state(store[b"u1"])
    assert state.history_items == ["i4"] and state.n_events == 1
    assert json.loads(store.latest[b"u1"])["event_id"] == "c"
    shown = {i["item_id"] for i in json.loads(store.latest[b"u1"])["items"]}
    assert set(state.shown_items) == shown


def test_event_times_far_ahead_of_the_clock_are_clamped() -> None:
    store = Store()
    handler = BatchHandler(_recommender(), CONFIG)
    year_2096 = 3_980_000_000_000
    result = _run([(b"u1", _event(item="i7", event_id="a", ts=year_2096)),
                   (b"u2", _event("u2", item="i8", event_id="b"))], store, handler)
    assert result.counts.clamped == 1
    assert decode_state(store[b"u1"]).last_ts_ms == NOW_MS + CONFIG.max_ahead_ms
    # Trending still sees both items as about equally popular, not i7 alone.
    scores = dict(handler.recommender.trending.top(5))
    assert scores["i8"] > 0.5 * scores["i7"]


def test_a_recreated_topic_is_not_taken_for_a_replay() -> None:
    store = Store()

    def handler(tag: str) -> BatchHandler:
        made = BatchHandler(_recommender(), CONFIG)
        made.topic_tags[TOPIC] = tag
        return made

    _run([(b"u1", _event(event_id=f"e{n}")) for n in range(5)], store, handler("aaaa0001"),
         first_offset=10)
    before = decode_state(store[b"u1"])
    assert before.source == (0, 14) and before.source_topic == "aaaa0001"
    # An offset at or below the stored one on the same topic is a replay, whatever its id.
    assert _run([(b"u1", _event(event_id="x"))], store, handler("aaaa0001"),
                12).counts.duplicate == 1
    assert decode_state(store[b"u1"]).n_events == before.n_events
    # The topic deleted and created again: offsets restart at 0, and these are new events.
    result = _run([(b"u1", _event(event_id="y"))], store, handler("bbbb0002"), 0)
    assert result.counts.duplicate == 0
    after = decode_state(store[b"u1"])
    assert after.n_events == before.n_events + 1 and after.source_topic == "bbbb0002"


def test_a_dead_letter_of_a_near_limit_message_fits_in_one_kafka_message() -> None:
    big = b'{"pad": "' + b"y" * 1_000_000 + b'"}'
    result = _run([(b"k" * 100_000, big)])
    (_, record), = result.dead_letters
    doc = json.loads(record)
    assert len(record) < 512 * 1024
    assert doc["raw_bytes"] == len(big) and doc["raw_truncated"] is True
    assert big.startswith(base64.b64decode(doc["raw_base64"]))
    assert doc["key_truncated"] is True and doc["key_bytes"] == 100_000


def test_unreadable_stored_state_starts_the_shopper_afresh() -> None:
    store = Store()
    store[b"u1"] = b"\x00 not state"
    result = _run([(b"u1", _event())], store)
    assert result.counts.state_unreadable == 1 and len(result.lists) == 1
    assert decode_state(store[b"u1"]).n_events == 1


def test_redelivered_offsets_in_one_generation_are_passed_over() -> None:
    handler = BatchHandler(_recommender(), CONFIG)
    store = Store()
    _run([(b"u1", _event(event_id="a")), (b"u1", _event(event_id="b"))], store, handler)
    result = _run([(b"u1", _event(event_id="b")), (b"u1", _event(event_id="c"))], store,
                  handler, first_offset=1)
    assert result.counts.redelivered == 1
    assert [json.loads(o.value)["event_id"] for o in result.lists] == ["c"]


# -- the property: any messages, any batch split ----------------------------------------------

USERS = ["u1", "u2", "u3", "ü-4"]
valid_event = st.fixed_dictionaries({
    "event_id": st.sampled_from([f"e{n}" for n in range(40)]),  # repeats: re-sent events
    "user_id": st.sampled_from(USERS),
    "item_id": st.sampled_from(ITEMS) | st.text("xyz", min_size=1, max_size=3),
    "type": st.sampled_from(["view", "click", "add_to_cart", "purchase"]),
    "ts": st.integers(NOW_MS - 10**9, NOW_MS + 10**9),  # some ahead of the clock
})
scalars = (st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats()
           | st.text(max_size=8))
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=3)
                           | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=6)
FIELDS = ["event_id", "user_id", "item_id", "type", "ts", "price", "quantity", "session_id",
          "context"]


def _as_message(kind: str, event: dict[str, Any], junk: Any, field: str, raw: bytes
                ) -> tuple[bytes | None, bytes | None]:
    key = event["user_id"].encode()
    if kind == "valid":
        return key, json.dumps(event).encode()
    if kind == "forget":
        return key, json.dumps({"type": "forget_user", "user_id": event["user_id"]}).encode()
    if kind == "junk_field":
        return key, json.dumps({**event, field: junk}).encode()
    if kind == "junk_value":
        return key, json.dumps(junk).encode()
    if kind == "mis_keyed":
        return b"someone-else", json.dumps(event).encode()
    if kind == "impression":  # shares the event ids' space: one may repeat the other's id
        shown = sorted({ITEMS[(len(raw) + 7 * n) % len(ITEMS)] for n in range(1 + len(raw) % 6)})
        return key, json.dumps({"type": "impression", "event_id": event["event_id"],
                                "user_id": event["user_id"], "list_id": "l-1",
                                "item_ids": shown, "ts": event["ts"]}).encode()
    return key, raw


message_values = st.lists(st.builds(
    _as_message, st.sampled_from(["valid"] * 5 + ["impression"] * 2
                                 + ["forget", "junk_field", "junk_value", "mis_keyed", "raw"]),
    valid_event, json_values, st.sampled_from(FIELDS), st.binary(max_size=30)),
    min_size=1, max_size=40)


def _expected(values: Sequence[tuple[bytes | None, bytes | None]], lists: list[dict[str, Any]],
              recommender: Recommender, shown_source: str
              ) -> tuple[dict[bytes, UserState], int, int]:
    """The states one gets by applying the valid messages one by one, each list recorded as
    shown right after its event (as ``shown_source`` says); and the numbers of lists and dead
    letters to expect."""
    states: dict[bytes, UserState] = {}
    forgotten: set[bytes] = set()
    n_lists = n_dead = 0
    impression_seen = False  # all messages carry the same time: the window never closes
    for offset, (key, value) in enumerate(values):
        try:
            parsed = parse_message(value, CONFIG.max_event_bytes)
        except InvalidEvent:
            n_dead += 1
            continue
        if key != parsed.user_id.encode():
            n_dead += 1
            continue
        if isinstance(parsed, ForgetUser):
            states.pop(key, None)
            forgotten.add(key)
            continue
        if isinstance(parsed, Impression):
            state = states.get(key, UserState())
            if is_duplicate(state, parsed.event_id):  # a retry: remembered as one
                states[key] = note_retry(state, offset)
                continue
            impression_seen = True
            state, _ = record_impression(state, parsed, NOW_MS, offset)
            state = mark_seen(state, parsed.event_id, CONFIG.limits)
            state = replace(state, source=(0, offset), active_ms=NOW_MS)
            if shown_source != "published":
                state = record_shown(state, parsed.item_ids, CONFIG.limits)
            states[key] = state
            continue
        rec = lists[n_lists]
        n_lists += 1
        assert rec["event_id"] == parsed.event_id
        state = states.get(key, UserState())
        group = group_key(rec["model_version"], str(RerankPolicy.from_dict(rec["policy"])),
                          None)
        if is_duplicate(state, parsed.event_id):  # a retry: its list is sent again
            states[key] = record_sent(note_retry(state, offset), rec["list_id"], group)
            continue
        event = replace(parsed, ts_ms=min(parsed.ts_ms, NOW_MS + CONFIG.max_ahead_ms))
        state, _, _ = attribute(state, event, NOW_MS, CONFIG.attribution_window_ms, offset)
        state = apply_event(state, event, recommender.catalog.category(event.item_id),
                            CONFIG.limits)
        state = replace(state, source=(0, offset), active_ms=NOW_MS)
        if shown_source == "published" or (shown_source == "auto" and not impression_seen):
            state = record_shown(state, (i["item_id"] for i in rec["items"]), CONFIG.limits)
        states[key] = record_sent(state, rec["list_id"], group)
    return states, n_lists, n_dead


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(message_values, st.lists(st.integers(1, 40), min_size=1, max_size=10),
       st.sampled_from(["auto", "impressions", "published"]))
def test_any_messages_in_any_batches_give_one_list_or_one_dead_letter_each(
        values: list[tuple[bytes | None, bytes | None]], sizes: list[int],
        shown_source: str) -> None:
    """One list per valid interaction event, none per impression, one dead letter per invalid
    message; and the state of handling the valid messages one by one."""
    handler = BatchHandler(_recommender(), replace(CONFIG, shown_source=shown_source))
    store = Store()
    messages = _messages(values)
    lists: list[dict[str, Any]] = []
    dead: list[int] = []
    start, turn = 0, 0
    while start < len(messages):
        size = sizes[turn % len(sizes)]
        result = handle_batch(handler, messages[start:start + size], store.read, NOW_MS,
                              read_metrics=store.read_metrics)
        store.apply(result)
        lists += [json.loads(o.value) for o in result.lists]
        dead += [start + i for i, _ in result.dead_letters]
        assert result.counts.internal_errors == 0
        start, turn = start + size, turn + 1
    expected, n_lists, n_dead = _expected(values, lists, handler.recommender, shown_source)
    assert len(lists) == n_lists and len(dead) == n_dead == len(set(dead))
    assert {k: decode_state(v) for k, v in store.items()} == expected
    for key in store.latest:
        assert key in store
    # Encoded state reads back as itself: what the table holds is what was computed.
    assert all(encode_state(decode_state(v)) == v for v in store.values())


def _impression(user: str, event_id: str, items: list[str]) -> bytes:
    return json.dumps({"type": "impression", "event_id": event_id, "user_id": user,
                       "list_id": "l-1", "item_ids": items, "ts": NOW_MS - 500}).encode()


@pytest.mark.parametrize("shown_source", ["auto", "impressions", "published"])
def test_impressions_make_no_list_and_count_as_shown_as_configured(shown_source: str) -> None:
    store = Store()
    handler = BatchHandler(_recommender(), replace(CONFIG, shown_source=shown_source))
    first = _run([(b"u1", _event(event_id="a"))], store, handler)
    published = [i["item_id"] for i in json.loads(first.lists[0].value)["items"]]
    before = decode_state(store[b"u1"]).shown
    assert set(dict(before)) == (set() if shown_source == "impressions" else set(published))
    shown_items = ["i20", "i21"]
    result = _run([(b"u1", _impression("u1", "imp-1", shown_items)),
                   (b"u1", _impression("u1", "imp-1", shown_items)),  # re-sent: counted once
                   (b"u1", _event(item="i3", event_id="b"))], store, handler, first_offset=1)
    assert len(result.lists) == 1 and result.counts.impressions == 1
    state = decode_state(store[b"u1"])
    shown = dict(state.shown)
    second = {i["item_id"] for i in json.loads(result.lists[0].value)["items"]}
    if shown_source == "published":  # impressions ignored, every list counts
        assert not set(shown_items) - set(published) & set(shown)
        assert second <= set(shown)
    else:  # impressions count; after one, published lists no longer do (auto)
        assert all(shown[i] == 1 for i in shown_items)
        assert set(shown) - set(dict(before)) == set(shown_items)
    assert state.n_events == 2  # an impression is no interaction


def test_interaction_events_may_name_the_list_and_position_they_came_from() -> None:
    raw = _event(event_id="a", list_id="4f9a", position=3)
    event = parse_message(raw, CONFIG.max_event_bytes)
    assert isinstance(event, Event) and (event.list_id, event.position) == ("4f9a", 3)
    for bad in ({"position": -1}, {"position": 10_000}, {"position": "3"},
                {"position": True}, {"list_id": ""}, {"list_id": ["x"]}):
        with pytest.raises(InvalidEvent):
            parse_message(_event(event_id="a", **bad), CONFIG.max_event_bytes)


# -- attribution and online metrics ------------------------------------------------------------

def _figures(store: Store) -> dict[str, dict[str, float]]:
    from stream_rec.serving.online_metrics import add_up, decode_partition_metrics

    return add_up([decode_partition_metrics(v) for v in store.metrics.values()])


JOURNEY_AT = 11  # the offset the journey's messages start at


def _journey(store: Store, handler: BatchHandler) -> list[tuple[bytes | None, bytes | None]]:
    """A shopper gets a list, sees three of its items, clicks the second, buys it."""
    others = [(f"w{n}".encode(), _event(f"w{n}", item=f"i{n + 10}", event_id=f"w{n}"))
              for n in range(10)]  # other shoppers, so that items trend
    first = _run([*others, (b"u1", _event(event_id="a"))], store, handler)
    rec = json.loads(first.lists[-1].value)
    shown = [i["item_id"] for i in rec["items"][:3]]
    return [
        (b"u1", json.dumps({"type": "impression", "event_id": "imp", "user_id": "u1",
                            "list_id": rec["list_id"], "item_ids": shown,
                            "ts": NOW_MS}).encode()),
        (b"u1", _event(item=shown[1], event_id="click", type="click")),
        (b"u1", _event(item=shown[1], event_id="buy", type="purchase", price=20.0,
                       quantity=2)),
        (b"u1", _event(item=shown[1], event_id="buy", type="purchase", price=20.0,
                       quantity=2)),  # the storefront's retry: not counted again
        (b"u1", _event(item="i29", event_id="other", type="purchase", price=5.0)),
    ]


def test_interactions_are_attributed_to_the_list_they_came_from() -> None:
    store, handler = Store(), BatchHandler(_recommender(), CONFIG)
    _run(_journey(store, handler), store, handler, first_offset=JOURNEY_AT)
    [(group, figures)] = _figures(store).items()
    assert group.startswith("fallback|dpp:0.15|")
    assert figures["lists"] == 11 + 3  # every interaction's list but the retry's
    assert figures["impressions"] == 1 and figures["impressed_items"] == 3
    assert figures["clicks"] == 1 and figures["position_sum"] == 1
    assert figures["positioned_clicks"] == 1
    assert figures["purchases"] == 1 and figures["revenue"] == 40.0  # the unattributed one: no


@pytest.mark.parametrize("lost", ["state", "metrics"])
def test_a_crash_between_the_two_writes_neither_loses_nor_double_counts(lost: str) -> None:
    clean_store, clean = Store(), BatchHandler(_recommender(), CONFIG)
    messages = _journey(clean_store, clean)
    store = Store()  # the same tables, as the journey left them
    store.update(clean_store)
    store.latest.update(clean_store.latest)
    store.metrics.update(clean_store.metrics)
    _run(messages, clean_store, clean, first_offset=JOURNEY_AT)

    crashed = handle_batch(BatchHandler(_recommender(), CONFIG),
                           _messages(messages, first_offset=JOURNEY_AT), store.read, NOW_MS,
                           read_metrics=store.read_metrics)
    store.apply(crashed, state=lost != "state", metrics=lost != "metrics")
    # The restarted worker handles the same messages again (their offsets were not committed).
    _run(messages, store, BatchHandler(_recommender(), CONFIG), first_offset=JOURNEY_AT)
    clean_figures, figures = _figures(clean_store), _figures(store)
    assert set(figures) == set(clean_figures)
    for group in clean_figures:
        for name in ("lists", "impressions", "impressed_items", "clicks", "purchases",
                     "revenue", "position_sum", "positioned_clicks"):
            assert figures[group][name] == clean_figures[group][name], (name, lost)


def test_no_attribution_outside_the_window_or_without_an_impression() -> None:
    store = Store()
    handler = BatchHandler(_recommender(), replace(CONFIG, attribution_window_ms=1000))
    first = _run([(b"u1", _event(event_id="a"))], store, handler)
    rec = json.loads(first.lists[0].value)
    item = rec["items"][0]["item_id"]
    old = Message(b"u1", json.dumps({"type": "impression", "event_id": "imp", "user_id": "u1",
                                     "list_id": rec["list_id"], "item_ids": [item],
                                     "ts": NOW_MS}).encode(), TOPIC, 0, 1,
                  timestamp_ms=NOW_MS - 5000)
    click = Message(b"u1", _event(item=item, event_id="c", type="click"), TOPIC, 0, 2,
                    timestamp_ms=NOW_MS)
    explicit = Message(b"u1", _event(item="i9", event_id="d", type="click",
                                     list_id=rec["list_id"], position=7), TOPIC, 0, 3,
                       timestamp_ms=NOW_MS)
    store.apply(handle_batch(handler, [old, click, explicit], store.read, NOW_MS,
                             read_metrics=store.read_metrics))
    [figures] = _figures(store).values()
    # The click came 5 s after its impression (window 1 s): only the explicit one counts.
    assert figures["clicks"] == 1 and figures["position_sum"] == 7


def _totals(store: Store) -> dict[str, float]:
    totals: dict[str, float] = {}
    for figures in _figures(store).values():
        for name, value in figures.items():
            totals[name] = totals.get(name, 0.0) + value
    return totals


FORGET_U1 = (b"u1", b'{"type": "forget_user", "user_id": "u1"}')
# Retries of an event, a forget request, the event again, all in one batch: the forget left
# the stored state without the retries' notes. And more retries than the state notes.
RETRIES_THEN_FORGET = [(b"u1", _event())] * 4 + [FORGET_U1, (b"u1", _event())]
MANY_RETRIES = [(b"u1", _event())] * (RETRIES_KEPT + 5) + [(b"u1", _event(event_id="e2"))]


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(message_values, st.lists(st.integers(1, 15), min_size=1, max_size=6),
       st.integers(0, 50), st.sampled_from(["state", "metrics", "both", "neither"]))
@example(values=RETRIES_THEN_FORGET, sizes=[6], crash_at=0, written="state")
@example(values=MANY_RETRIES, sizes=[len(MANY_RETRIES)], crash_at=0, written="state")
def test_online_figures_are_exact_across_a_crash_at_any_batch(
        values: list[tuple[bytes | None, bytes | None]], sizes: list[int], crash_at: int,
        written: str) -> None:
    """A worker dies after a batch's writes were partly made (state, metrics, both or
    neither); its successor handles that batch again (its offsets were never committed). Every
    message counts once, as in a run without the crash."""
    messages = _messages(values)
    bounds, start = [], 0
    while start < len(messages):
        bounds.append((start, start + sizes[len(bounds) % len(sizes)]))
        start = bounds[-1][1]
    clean = Store()
    handler = BatchHandler(_recommender(), CONFIG)
    for lo, hi in bounds:
        clean.apply(handle_batch(handler, messages[lo:hi], clean.read, NOW_MS,
                                 read_metrics=clean.read_metrics))
    crashed = Store()
    handler = BatchHandler(_recommender(), CONFIG)
    crash = crash_at % len(bounds)
    for n, (lo, hi) in enumerate(bounds):
        result = handle_batch(handler, messages[lo:hi], crashed.read, NOW_MS,
                              read_metrics=crashed.read_metrics)
        if n == crash:
            crashed.apply(result, state=written in ("state", "both"),
                          metrics=written in ("metrics", "both"))
            handler = BatchHandler(_recommender(), CONFIG)  # restarted: no memory of offsets
            result = handle_batch(handler, messages[lo:hi], crashed.read, NOW_MS,
                                  read_metrics=crashed.read_metrics)
        crashed.apply(result)
    assert _totals(crashed) == _totals(clean)


def test_shoppers_in_an_experiment_get_their_arms_policy_and_count_in_their_arm() -> None:
    from stream_rec.core.experiments import parse_experiment

    experiment = parse_experiment("exp-1", json.dumps({
        "id": "exp-1", "arms": [{"name": "plain", "policy": "none"},
                                {"name": "diverse", "policy": "mmr:0.5"}],
        "weights": [1, 1]}).encode())
    store, handler = Store(), BatchHandler(_recommender(), CONFIG)
    handler.experiments = {"exp-1": experiment}
    users = [f"s{n}" for n in range(40)]
    result = _run([(u.encode(), _event(u, event_id=f"e-{u}")) for u in users], store, handler)
    lists = [json.loads(o.value) for o in result.lists]
    arms = {r["experiment"]["arm"]: r["policy"]["method"] for r in lists}
    assert arms == {"plain": "none", "diverse": "mmr"}
    assert {r["experiment"]["id"] for r in lists} == {"exp-1"}
    groups = _figures(store)
    assert {tuple(g.split("|")[2:]) for g in groups} == {("exp-1", "plain"),
                                                         ("exp-1", "diverse")}
    assert sum(f["lists"] for f in groups.values()) == len(users)
    # Stopped: the default policy again, and no experiment on the lists.
    handler.experiments = {"exp-1": replace(experiment, running=False)}
    after = _run([(b"s1", _event("s1", event_id="later"))], store, handler,
                 first_offset=len(users))
    assert json.loads(after.lists[0].value)["experiment"] is None


# -- experiment tallies: each shopper's figures per arm, kept in their state --------------------

def _two_arms() -> Any:
    from stream_rec.core.experiments import parse_experiment

    return parse_experiment("exp-1", json.dumps({
        "id": "exp-1", "arms": [{"name": "plain", "policy": "none"},
                                {"name": "diverse", "policy": "mmr:0.5"}],
        "weights": [1, 1]}).encode())


def _arm_of(user: str) -> str:
    from stream_rec.core.experiments import assign

    placed = assign([_two_arms()], user)
    assert placed is not None
    return placed[1].name


# Shoppers of each arm (assignment is a pure function of salt and user id).
ARM_USERS = {arm: [u for u in (f"t{n}" for n in range(60)) if _arm_of(u) == arm][:2]
             for arm in ("plain", "diverse")}
ARM_GROUP = {"plain": "fallback|none|exp-1|plain", "diverse": "fallback|mmr:0.5|exp-1|diverse"}


def _experiment_handler(**config: Any) -> BatchHandler:
    handler = BatchHandler(_recommender(), replace(CONFIG, **config))
    handler.experiments = {"exp-1": _two_arms()}
    return handler


def _tally(store: Store, user: str, arm: str) -> dict[str, float] | None:
    from stream_rec.core.tally import tally_of

    return tally_of(decode_state(store[user.encode()]), "exp-1", arm)


def test_an_arms_impressions_clicks_and_purchases_count_in_the_tally_and_the_record() -> None:
    from stream_rec.core.tally import TALLY_FIGURES

    user, other = ARM_USERS["diverse"][0], ARM_USERS["plain"][0]
    key = user.encode()
    store, handler = Store(), _experiment_handler()
    first = _run([(key, _event(user, event_id="a")),
                  (other.encode(), _event(other, event_id="o"))], store, handler)
    rec = json.loads(first.lists[0].value)
    assert rec["experiment"] == {"id": "exp-1", "arm": "diverse", "version": 1}
    assert _tally(store, user, "diverse") == {**dict.fromkeys(TALLY_FIGURES, 0.0), "lists": 1.0}
    assert _tally(store, user, "plain") is None
    # i0, i1, i4 are in categories c0, c1, c0: 3 pairs, 2 of them differ; 2 categories.
    shown = ["i0", "i1", "i4"]
    _run([(key, json.dumps({"type": "impression", "event_id": "imp", "user_id": user,
                            "list_id": rec["list_id"], "item_ids": shown,
                            "ts": NOW_MS}).encode()),
          (key, _event(user, item="i1", event_id="click", type="click",
                       list_id=rec["list_id"], position=1)),
          (key, _event(user, item="i1", event_id="buy", type="purchase", price=20.0,
                       quantity=2)),
          (key, _event(user, item="i1", event_id="buy", type="purchase", price=20.0,
                       quantity=2)),  # the storefront's retry: not counted again
          (key, _event(user, item="i9", event_id="cart", type="add_to_cart")),  # no click: none
          ], store, handler, first_offset=2)
    expected = {**dict.fromkeys(TALLY_FIGURES, 0.0),
                "lists": 1.0 + 3,  # the first list, and those of the click, buy and cart
                "impressions": 1.0, "impressed_items": 3.0, "ild_sum": 2 / 3, "ild_lists": 1.0,
                "categories_sum": 2.0, "clicks": 1.0, "purchases": 1.0, "revenue": 40.0}
    assert _tally(store, user, "diverse") == pytest.approx(expected)
    figures = _figures(store)
    group = figures[ARM_GROUP["diverse"]]
    for name, value in expected.items():
        assert group[name] == pytest.approx(value), name
    assert group["position_sum"] == 1 and group["positioned_clicks"] == 1
    assert group["distinct_items"] == 3
    # The other arm's shopper only got their one list.
    other_tally = _tally(store, other, "plain")
    assert other_tally is not None and other_tally["lists"] == 1 and other_tally["clicks"] == 0
    assert figures[ARM_GROUP["plain"]]["lists"] == 1
    assert "distinct_items" not in figures[ARM_GROUP["plain"]]


def test_an_impression_of_a_list_without_categories_adds_no_ild() -> None:
    from stream_rec.core.tally import tally_of

    user = ARM_USERS["plain"][0]
    store, handler = Store(), _experiment_handler()
    rec = json.loads(_run([(user.encode(), _event(user, event_id="a"))], store, handler)
                     .lists[0].value)
    _run([(user.encode(), json.dumps({
        "type": "impression", "event_id": "imp", "user_id": user, "list_id": rec["list_id"],
        "item_ids": ["not-in-catalog", "i3"], "ts": NOW_MS}).encode())], store, handler,
        first_offset=1)
    tally = tally_of(decode_state(store[user.encode()]), "exp-1", "plain")
    assert tally is not None
    assert (tally["impressions"], tally["impressed_items"]) == (1, 2)
    assert (tally["ild_lists"], tally["ild_sum"], tally["categories_sum"]) == (0, 0, 1)
    # An impression of a list the shopper was never sent counts in no arm.
    _run([(user.encode(), json.dumps({
        "type": "impression", "event_id": "imp-2", "user_id": user, "list_id": "stranger",
        "item_ids": ["i1", "i2"], "ts": NOW_MS}).encode())], store, handler, first_offset=2)
    assert tally_of(decode_state(store[user.encode()]), "exp-1", "plain") == tally


@pytest.mark.parametrize("written", ["nothing", "state", "everything"])
def test_a_redelivered_message_gets_the_same_list_id_a_retry_another(written: str) -> None:
    from stream_rec.serving.lists import list_id_for

    user = ARM_USERS["diverse"][0]
    key = user.encode()
    store = Store()
    _run([(key, _event(user, event_id="first"))], store, _experiment_handler())
    message = Message(key, _event(user, item="i2", event_id="b"), TOPIC, 0, 5)
    before = handle_batch(_experiment_handler(), [message], store.read, NOW_MS,
                          read_metrics=store.read_metrics)
    # The worker dies before committing offset 5 (after writing some of the batch, or none).
    store.apply(before, state=written != "nothing", metrics=written == "everything")
    again = handle_batch(_experiment_handler(), [message], store.read, NOW_MS,
                         read_metrics=store.read_metrics)
    store.apply(again)
    [sent], [resent] = before.lists, again.lists
    assert sent.rec.list_id == resent.rec.list_id == list_id_for(TOPIC, 0, 5)
    assert json.loads(resent.value)["list_id"] == sent.rec.list_id
    tally = _tally(store, user, "diverse")
    assert tally is not None and tally["lists"] == 2  # the first list and this one, once
    # An impression naming it finds the arm, whichever delivery the shop displayed.
    _run([(key, json.dumps({"type": "impression", "event_id": "imp", "user_id": user,
                            "list_id": sent.rec.list_id, "item_ids": ["i5"],
                            "ts": NOW_MS}).encode())], store, _experiment_handler(),
         first_offset=6)
    tally = _tally(store, user, "diverse")
    assert tally is not None and tally["impressions"] == 1
    # A storefront's retry of the event is another message: another list, not counted again.
    retry = handle_batch(_experiment_handler(), [Message(key, message.value, TOPIC, 0, 7)],
                         store.read, NOW_MS, read_metrics=store.read_metrics)
    store.apply(retry)
    assert retry.counts.duplicate == 1
    assert retry.lists[0].rec.list_id == list_id_for(TOPIC, 0, 7) != sent.rec.list_id
    assert _tally(store, user, "diverse") == tally
    # The topic-id tag, where known, names the list (a topic created anew restarts offsets).
    tagged = _experiment_handler()
    tagged.topic_tags[TOPIC] = "feedbeef"
    other = handle_batch(tagged, [Message(b"z", _event("z", event_id="z"), TOPIC, 0, 5)],
                         Store().read, NOW_MS)
    assert other.lists[0].rec.list_id == list_id_for("feedbeef", 0, 5) != sent.rec.list_id


# The property: a 2-arm experiment's per-shopper tallies are exact across crashes.

TALLY_USERS = ARM_USERS["plain"] + ARM_USERS["diverse"]
CATEGORISED = ITEMS[:8]

tally_op = st.tuples(
    st.sampled_from(["event"] * 3 + ["impression"] * 3 + ["click_list"] * 3 + ["buy"] * 2),
    st.integers(0, len(TALLY_USERS) - 1),
    st.integers(0, 63),  # which item(s)
    st.integers(0, 7),  # which earlier list, position
    st.integers(0, 24),  # event id: repeats are storefront retries
)


def _tally_messages(ops: list[tuple[str, int, int, int, int]]
                    ) -> tuple[list[Message], list[int]]:
    """Events, impressions of the shoppers' earlier lists, clicks naming them and purchases
    of what was clicked; and for each message, the offset of the event whose list it names
    (-1: none)."""
    from stream_rec.serving.lists import list_id_for

    lists_of: dict[str, list[int]] = {u: [] for u in TALLY_USERS}  # offsets of their events
    last_click: tuple[str, str] | None = None  # (shopper, item) of the last click on a list
    out, refs = [], []
    for offset, (kind, u, item, ref, eid) in enumerate(ops):
        user = TALLY_USERS[u]
        target = CATEGORISED[item % 8]
        if kind == "buy" and last_click is not None and ref % 4 != 3:
            user, target = last_click  # mostly what was clicked: attributed through the click
        earlier = lists_of[user]
        named = earlier[-1 - ref % len(earlier)] if earlier else -1
        list_id = list_id_for(TOPIC, 0, named) if named >= 0 else f"never-sent-{ref}"
        event_id = f"e{eid}"
        if kind == "impression":
            shown = [CATEGORISED[(item + 3 * n) % 8] for n in range(1 + item % 5)]
            shown = list(dict.fromkeys(shown + ["no-category"] * (item % 2)))
            value = json.dumps({"type": "impression", "event_id": event_id, "user_id": user,
                                "list_id": list_id, "item_ids": shown,
                                "ts": NOW_MS - 500}).encode()
        else:
            fields: dict[str, Any] = {"type": ("view", "click", "add_to_cart")[item % 3]}
            if kind == "click_list":
                fields = {"type": "click", "list_id": list_id, "position": ref % 5}
                if named >= 0:
                    last_click = (user, target)
            elif kind == "buy":
                fields = {"type": "purchase", "price": 5.0 + item % 7, "quantity": 1 + ref % 3}
            value = _event(user, item=target, event_id=event_id, **fields)
            earlier.append(offset)  # its list will be list_id_for(TOPIC, 0, offset)
        out.append(Message(user.encode(), value, TOPIC, 0, offset))
        refs.append(named if kind in ("impression", "click_list") else -1)
    return out, refs


def _batch_bounds(refs: list[int], sizes: list[int]) -> list[tuple[int, int]]:
    """Batches of the given sizes, cut where a message names a list made in its own batch: a
    list is published when its batch ends, so nothing can name it before the next batch."""
    bounds: list[tuple[int, int]] = []
    start = 0
    while start < len(refs):
        end = start + 1
        while (end < len(refs) and end - start < sizes[len(bounds) % len(sizes)]
               and refs[end] < start):
            end += 1
        bounds.append((start, end))
        start = end
    return bounds


def _arm_totals(store: Store) -> dict[str, dict[str, float]]:
    from stream_rec.core.tally import TALLY_FIGURES, tally_of

    totals = {arm: dict.fromkeys(TALLY_FIGURES, 0.0) for arm in ARM_USERS}
    for raw in store.values():
        state = decode_state(raw)
        for arm in ARM_USERS:
            figures = tally_of(state, "exp-1", arm) or {}
            for name, value in figures.items():
                totals[arm][name] += value
    return totals


def _apply_some(store: Store, result: BatchResult, persisted: list[bool]) -> None:
    """Write the subset of a batch's table writes that ``persisted`` picks (cyclically)."""
    tables = ([(store, w) for w in result.state] + [(store.metrics, w) for w in result.metrics]
              + [(store.latest, w) for w in result.latest])
    for n, (table, write) in enumerate(tables):
        if not persisted[n % len(persisted)]:
            continue
        if write.value is None:
            table.pop(write.key, None)
        else:
            table[write.key] = write.value


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(tally_op, min_size=4, max_size=40),
       st.lists(st.integers(1, 8), min_size=1, max_size=5),
       st.sets(st.integers(0, 12), min_size=1, max_size=3),
       st.lists(st.booleans(), min_size=1, max_size=8),
       st.sampled_from(["auto", "impressions", "published"]))
@example(ops=[(kind, u, 1, 3, 5 * k + u) for k, kind in enumerate(
    ["event", "impression", "click_list", "buy", "event"]) for u in range(4)],
    sizes=[3, 5], crash_turns={1, 2, 4}, persisted=[True, False, False],
    shown_source="auto")
def test_experiment_tallies_are_exact_across_crashes_at_any_batch(
        ops: list[tuple[str, int, int, int, int]], sizes: list[int], crash_turns: set[int],
        persisted: list[bool], shown_source: str) -> None:
    """A worker dies after any batch with any subset of its table writes made; its successor
    handles that batch again (its offsets were never committed), and may die again. The
    tallies in the final states are those of a run without crashes, shopper by shopper and
    per arm; and so are the partitions' online figures."""
    messages, refs = _tally_messages(ops)
    bounds = _batch_bounds(refs, sizes)
    clean = Store()
    handler = _experiment_handler(shown_source=shown_source)
    for lo, hi in bounds:
        clean.apply(handle_batch(handler, messages[lo:hi], clean.read, NOW_MS,
                                 read_metrics=clean.read_metrics))
    crashed = Store()
    handler = _experiment_handler(shown_source=shown_source)
    done, turn, crashes = 0, 0, 0
    while done < len(bounds):
        lo, hi = bounds[done]
        result = handle_batch(handler, messages[lo:hi], crashed.read, NOW_MS,
                              read_metrics=crashed.read_metrics)
        assert result.counts.internal_errors == 0 and not result.dead_letters
        if turn in crash_turns:
            _apply_some(crashed, result, persisted[crashes:] + persisted[:crashes])
            handler = _experiment_handler(shown_source=shown_source)  # no memory of offsets
            crashes += 1
        else:
            crashed.apply(result)
            done += 1  # committed
        turn += 1
    assert set(crashed) == set(clean)
    for key in clean:
        want, got = decode_state(clean[key]).tallies, decode_state(crashed[key]).tallies
        assert [k for k, _ in got] == [k for k, _ in want], key
        for (_, mine), (_, theirs) in zip(got, want, strict=True):
            assert mine == pytest.approx(theirs), key
    clean_totals, totals = _arm_totals(clean), _arm_totals(crashed)
    for arm, figures in clean_totals.items():
        assert totals[arm] == pytest.approx(figures), arm
    online, clean_online = _figures(crashed), _figures(clean)
    assert set(online) == set(clean_online)
    for group, figures in clean_online.items():
        assert online[group] == pytest.approx(figures), group


def test_the_tally_property_exercises_both_arms() -> None:
    """The generated journeys do reach every figure of both arms (the property is not empty)."""
    users = range(len(TALLY_USERS))
    ops = [("event", u, u, 0, u) for u in users]
    ops += [("impression", u, 1, 0, 10 + u) for u in users]
    ops += [("click_list", u, 1, 0, 15 + u) for u in users]
    ops += [("buy", u, 1, 3, 20 + u) for u in users]  # ref 3: the op's own shopper and item
    messages, refs = _tally_messages(ops)
    bounds = _batch_bounds(refs, [100])
    assert bounds == [(0, len(users)), (len(users), len(ops))]
    store, handler = Store(), _experiment_handler()
    for lo, hi in bounds:
        store.apply(handle_batch(handler, messages[lo:hi], store.read, NOW_MS,
                                 read_metrics=store.read_metrics))
    totals = _arm_totals(store)
    for arm in ARM_USERS:
        for name in ("lists", "impressions", "impressed_items", "clicks", "purchases",
                     "revenue", "ild_sum", "ild_lists", "categories_sum"):
            assert totals[arm][name] > 0, (arm, name)


def test_a_replay_holding_an_event_and_the_impression_of_its_list_counts_in_the_arm() -> None:
    from stream_rec.serving.lists import list_id_for

    user = ARM_USERS["diverse"][0]
    key = user.encode()
    sent = list_id_for(TOPIC, 0, 0)
    event = Message(key, _event(user, event_id="a"), TOPIC, 0, 0)
    seen = [Message(key, json.dumps({"type": "impression", "event_id": "imp", "user_id": user,
                                     "list_id": sent, "item_ids": ["i0", "i1"],
                                     "ts": NOW_MS}).encode(), TOPIC, 0, 1),
            Message(key, _event(user, item="i1", event_id="c", type="click", list_id=sent,
                                position=1), TOPIC, 0, 2)]
    # Without a crash: the list is published when its batch ends, the shop shows it after.
    clean, handler = Store(), _experiment_handler()
    for batch in ([event], seen):
        clean.apply(handle_batch(handler, batch, clean.read, NOW_MS,
                                 read_metrics=clean.read_metrics))
    # The worker published the list, then died before its state write was made; restarted,
    # it reads from offset 0 again, and this time the shop's messages come in the same batch.
    crashed = Store()
    first = handle_batch(_experiment_handler(), [event], crashed.read, NOW_MS,
                         read_metrics=crashed.read_metrics)
    assert first.lists[0].rec.list_id == sent
    crashed.apply(handle_batch(_experiment_handler(), [event, *seen], crashed.read, NOW_MS,
                               read_metrics=crashed.read_metrics))
    want = _tally(clean, user, "diverse")
    assert want is not None and want["impressions"] == 1 and want["clicks"] == 1
    assert _tally(crashed, user, "diverse") == want
    assert _figures(crashed) == _figures(clean)


def test_lists_name_the_weights_version_and_count_in_one_arm_across_versions() -> None:
    user = ARM_USERS["plain"][0]
    key = user.encode()
    store, handler = Store(), _experiment_handler()
    first = _run([(key, _event(user, event_id="a"))], store, handler)
    assert json.loads(first.lists[0].value)["experiment"]["version"] == 1
    # The bandit moved the weights (the shopper stays in their arm: 0.5 -> 0.6 for "plain").
    handler.experiments = {"exp-1": _two_arms().reweighted([0.6, 0.4], at_ms=NOW_MS)}
    second = _run([(key, _event(user, event_id="b"))], store, handler, first_offset=1)
    doc = json.loads(second.lists[0].value)
    assert doc["experiment"] == {"id": "exp-1", "arm": "plain", "version": 2}
    tally = _tally(store, user, "plain")
    assert tally is not None and tally["lists"] == 2  # one arm's figures, whatever the version
    assert set(_figures(store)) == {ARM_GROUP["plain"]}
