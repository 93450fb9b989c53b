"""`stream-rec user show|forget ID`: what stream-rec keeps about one shopper, or forget them.

``show`` reads the shopper's latest records on the changelog topics of the worker's
``user-state`` and ``latest-recs`` tables (the durable copy of the RocksDB tables: no worker
needs to run). A table record lies on the partition of the shopper's events, which the
storefront's producer chose from the key; the command reads the partition Kafka's default
partitioner (murmur2, as in the Java, kafka-python and aiokafka clients) gives the key first,
and the other partitions only when the shopper is not there.

``forget`` sends the forget-user request of the event contract (``stream_rec.core.events``)
to the events topic, keyed by the user_id like the shopper's events.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stream_rec.commands import _flags as f
from stream_rec.commands.topics import (
    consumer_for,
    kafka_errors,
    producer_for,
    read_between,
    require_partitions,
)
from stream_rec.config import Settings, load_settings
from stream_rec.errors import UserError

if TYPE_CHECKING:
    from kafka import KafkaConsumer


NOT_FOUND_STATUS = 1


def register(sub: Any, settings: Settings) -> None:
    """Add the ``user`` subcommand."""
    parser = f.add_command(
        sub, "user", "show what is kept about one shopper, or forget them",
        "'show ID' prints the shopper's state (recent events, purchases, category "
        "affinities, items shown) and their latest recommendation list, read from the "
        "changelog topics of the worker's tables, so no worker needs to run; it exits with 1 "
        "when nothing is kept about the shopper. 'forget ID' sends a forget-user request to "
        "the events topic: the worker that owns the shopper deletes their state and latest "
        "list, in order with their events (docs/operations.md, Privacy).")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", title="actions",
                                    required=True)
    show = f.add_command(
        actions, "show", "the shopper's state and latest list",
        "Reads the changelog partition that holds the shopper (the one Kafka's default "
        "partitioner gives the user_id, then the others): seconds on a small shop, longer on "
        "a large one; the worker's HTTP API (/users/ID/state/) answers at once when it is "
        "reachable. Exit status 1 when the shopper has no state: never seen, forgotten or "
        "expired.")
    show.add_argument("user_id", metavar=f.ID, help="the shopper's user_id")
    f.add_broker(show, settings)
    f.add_json(show, "the state and the list")
    show.set_defaults(func=run_show)
    forget = f.add_command(
        actions, "forget", "send a forget-user request for the shopper",
        "Sends {\"type\": \"forget_user\", \"user_id\": ID, \"request_id\": ...} to the events "
        "topic, keyed by ID, and waits until the broker has it. The worker applies it in "
        "order with the shopper's events; 'stream-rec user show ID' says 'not found' once it "
        "has. The request goes to the partition Kafka's default partitioner gives the key: "
        "a storefront whose producer partitions otherwise must send the request itself.")
    forget.add_argument("user_id", metavar=f.ID, help="the shopper's user_id")
    forget.add_argument("--request-id", metavar=f.ID,
                        help="the request's id, logged by the worker (default: a new "
                             "'stream-rec-...' id)")
    f.add_broker(forget, settings)
    f.add_json(forget, "the request sent and where it went")
    forget.set_defaults(func=run_forget)


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` (murmur2, as the Java client,
    kafka-python and aiokafka do)."""
    from kafka.partitioner.default import murmur2

    return int((murmur2(key) & 0x7FFFFFFF) % partitions)


@dataclass(frozen=True)
class Found:
    """The latest record of a key on a changelog: its partition and value (None: deleted)."""

    partition: int
    value: bytes | None


def latest_of_key(consumer: KafkaConsumer, topic: str, key: bytes,
                  partitions: Sequence[int]) -> Found | None:
    """The latest record of ``key`` on the first of ``partitions`` (in that order) that has
    one, read up to the partition's end when asked; None when none has a record of it."""
    from kafka import TopicPartition

    for partition in partitions:
        tp = TopicPartition(topic, partition)
        start = consumer.beginning_offsets([tp])[tp]
        end = consumer.end_offsets([tp])[tp]
        found: Found | None = None
        for record in read_between(consumer, {tp: (start, end)}):
            if record.key == key:
                found = Found(partition, record.value)
        if found is not None:
            return found
    return None


def search_order(key: bytes, partitions: int) -> list[int]:
    """The partitions to look for ``key`` in: the default partitioner's first."""
    home = key_partition(key, partitions)
    return [home, *(p for p in range(partitions) if p != home)]


def run_show(args: argparse.Namespace) -> int:
    """Print the shopper's state and latest list; 1 when nothing is kept about them."""
    from stream_rec.core.state_codec import StateDecodeError, decode_state, state_summary
    from stream_rec.worker.state_guard import changelog_topic

    settings = load_settings(broker=args.broker)
    user_id: str = args.user_id
    key = user_id.encode()
    state_topic = changelog_topic(settings.app_id, "user-state")
    recs_topic = changelog_topic(settings.app_id, "latest-recs")
    with kafka_errors(settings):
        consumer = consumer_for(settings)
        try:
            tps = require_partitions(settings, consumer, state_topic,
                                     f"no worker of app {settings.app_id!r} has run there "
                                     "(STREAM_REC_APP_ID)")
            state = latest_of_key(consumer, state_topic, key, search_order(key, len(tps)))
            latest = None
            if state is not None and state.value is not None:
                found = latest_of_key(consumer, recs_topic, key, [state.partition])
                latest = found.value if found is not None else None
        finally:
            consumer.close()
    if state is None or state.value is None:
        why = "never seen" if state is None else "forgotten or expired"
        print(f"stream-rec user: no state for user {user_id!r} on {state_topic} ({why})",
              file=sys.stderr)
        return NOT_FOUND_STATUS
    try:
        summary = state_summary(decode_state(state.value))
    except StateDecodeError as exc:
        raise UserError(f"the state of user {user_id!r} on {state_topic} is unreadable: "
                        f"{exc}") from None
    recs = _json_or_none(latest)
    home = key_partition(key, len(tps))
    if args.json:
        print(json.dumps({"user_id": user_id, "partition": state.partition, "state": summary,
                          "latest": recs}))
        return 0
    print(f"user {user_id} (partition {state.partition} of the worker's tables)")
    if state.partition != home:
        print(f"  note: Kafka's default partitioner puts this key on partition {home}: the "
              "storefront's producer partitions otherwise")
    print("state:")
    print("  " + json.dumps(summary, indent=2).replace("\n", "\n  "))
    print(format_list(recs))
    return 0


def format_list(recs: dict[str, Any] | None) -> str:
    """A recommendation message as a few readable lines."""
    if recs is None:
        return "latest list: none yet"
    policy = recs.get("policy") or {}
    head = (f"latest list: for event {recs.get('event_id')}, generated "
            f"{recs.get('generated_at')}, model {recs.get('model_version') or 'none'}"
            f"{' (fallback)' if recs.get('fallback') else ''}, policy "
            f"{policy.get('method')}:{policy.get('param')}")
    if recs.get("experiment"):
        head += f", experiment {recs['experiment'].get('id')} arm {recs['experiment'].get('arm')}"
    lines = [head]
    for n, item in enumerate(recs.get("items") or [], 1):
        score = item.get("score")
        shown = f"{score:.4f}" if isinstance(score, int | float) else str(score)
        lines.append(f"  {n:2d}. {item.get('item_id')}  {shown}  {item.get('reason', '')}")
    return "\n".join(lines)


def _json_or_none(raw: bytes | None) -> dict[str, Any] | None:
    from stream_rec.serving.lists import without_pool

    if raw is None:
        return None
    try:  # the message as published: the table keeps the candidate pool beside it
        doc = json.loads(without_pool(raw))
    except ValueError:
        return {"unreadable": raw[:200].decode("utf-8", "replace")}
    return doc if isinstance(doc, dict) else {"unreadable": str(doc)[:200]}


def forget_request(user_id: str, request_id: str | None, max_bytes: int) -> tuple[bytes, bytes]:
    """(key, value) of the forget-user request for ``user_id``, checked as the worker will
    check it; ``UserError`` for an id the contract refuses."""
    from stream_rec.core.events import FORGET_USER, ForgetUser, InvalidEvent, parse_message

    request = request_id or default_request_id()
    value = json.dumps({"type": FORGET_USER, "user_id": user_id,
                        "request_id": request}).encode()
    try:
        parsed = parse_message(value, max_bytes)
    except InvalidEvent as exc:
        raise UserError(f"the worker would refuse this request: {exc.reason}") from None
    assert isinstance(parsed, ForgetUser)
    return parsed.user_id.encode(), value


def default_request_id() -> str:
    """A request id that says where it came from and when."""
    return f"stream-rec-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}"


def run_forget(args: argparse.Namespace) -> int:
    """Send the forget-user request and print what was sent and where."""
    settings = load_settings(broker=args.broker)
    key, value = forget_request(args.user_id, args.request_id, settings.max_event_bytes)
    with kafka_errors(settings):
        consumer = consumer_for(settings)
        try:
            require_partitions(settings, consumer, settings.events_topic)
        finally:
            consumer.close()
        producer = producer_for(settings)
        try:
            sent = producer.send(settings.events_topic, key=key, value=value).get(timeout=30)
        finally:
            producer.close()
    if args.json:
        print(json.dumps({"topic": settings.events_topic, "partition": sent.partition,
                          "offset": sent.offset, "key": args.user_id,
                          "value": json.loads(value)}))
    else:
        print(f"sent {value.decode()} keyed {args.user_id!r} to {settings.events_topic} "
              f"(partition {sent.partition}, offset {sent.offset})")
    return 0
