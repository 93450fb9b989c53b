"""A storefront's side of stream-rec: read the recommendation lists it publishes.

Needs only kafka-python (``pip install kafka-python``), not stream-rec. Examples:

    python examples/recommendations_consumer.py                    # follow new lists
    python examples/recommendations_consumer.py --user u-42 --from-beginning
    python examples/recommendations_consumer.py --event-id EVENT --timeout 60 --json
    python examples/recommendations_consumer.py --impressions 4     # "display" the first 4

One line per list: "user, triggering event, model, policy: item (score, reason), ..." or, with
--json, the message itself. With --event-id it stops (exit 0) once that event's list has been
printed, or exits 1 after --timeout seconds. With --impressions N it acts as the page that
displays each list: it sends an impression of the list's first N items to the events topic
(STREAM_REC_EVENTS_TOPIC), so that the worker counts what the shopper saw, not what it sent.
The broker and topics come from flags, else from STREAM_REC_BROKER,
STREAM_REC_RECOMMENDATIONS_TOPIC and STREAM_REC_EVENTS_TOPIC, else the stream-rec defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

from kafka import KafkaConsumer, KafkaProducer


def make_consumer(broker: str, topic: str, group: str | None,
                  from_beginning: bool) -> KafkaConsumer:
    """Lists are keyed by user_id, so one shopper's lists arrive in order: the last one wins.

    A shopper's list can arrive twice with the same event_id (after a worker restart, or when
    the storefront re-sent an event); storing "latest list per user" absorbs that for free.
    """
    return KafkaConsumer(
        topic,
        bootstrap_servers=broker.split(","),
        group_id=group,  # a group remembers where it stopped; None reads without committing
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=group is not None,
        key_deserializer=lambda key: key.decode("utf-8") if key is not None else None,
        value_deserializer=lambda value: json.loads(value),
    )


def lists(consumer: KafkaConsumer, deadline: float | None) -> Iterator[dict[str, Any]]:
    """Every recommendation list read, until the deadline (time.monotonic()) if any."""
    while deadline is None or time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                yield record.value


def describe(rec: dict[str, Any]) -> str:
    """One line for people; see schemas/recommendation.schema.json for every field."""
    policy = rec["policy"]
    model = "fallback (no model yet)" if rec["fallback"] else f"model {rec['model_version']}"
    items = ", ".join(f"{i['item_id']} ({i['score']:.3f}, {i['reason']})" for i in rec["items"])
    return (f"user {rec['user_id']} after event {rec['event_id']}, {model}, "
            f"{policy['method']}:{policy['param']:g}, {rec['latency_ms']:.1f} ms: "
            f"{items or '(empty list)'}")


def impression(rec: dict[str, Any], shown: int) -> dict[str, Any]:
    """What a page sends once it displayed the first ``shown`` items of a list."""
    return {"type": "impression", "event_id": f"impression-{rec['list_id']}",
            "user_id": rec["user_id"], "list_id": rec["list_id"],
            "item_ids": [i["item_id"] for i in rec["items"][:shown]],
            "ts": int(time.time() * 1000), "placement": "example-consumer"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line, with defaults from the STREAM_REC_* environment."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default=os.environ.get("STREAM_REC_BROKER",
                                                           "127.0.0.1:9092"))
    parser.add_argument("--topic", default=os.environ.get("STREAM_REC_RECOMMENDATIONS_TOPIC",
                                                          "recommendations"))
    parser.add_argument("--group", help="consumer group (default: none, nothing committed)")
    parser.add_argument("--from-beginning", action="store_true",
                        help="start at the oldest list kept, not at new ones")
    parser.add_argument("--user", help="print only this shopper's lists")
    parser.add_argument("--event-id", help="stop once the list for this event is printed")
    parser.add_argument("--timeout", type=float, help="give up after this many seconds")
    parser.add_argument("--json", action="store_true", help="print each message as JSON")
    parser.add_argument("--impressions", type=int, metavar="N",
                        help="send an impression of each list's first N items")
    parser.add_argument("--events-topic", default=os.environ.get("STREAM_REC_EVENTS_TOPIC",
                                                                 "storefront.events"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the example; the exit status."""
    args = parse_args(argv)
    consumer = make_consumer(args.broker, args.topic, args.group, args.from_beginning)
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    producer = None if not args.impressions else KafkaProducer(
        bootstrap_servers=args.broker.split(","), acks="all",
        key_serializer=lambda key: key.encode("utf-8"),
        value_serializer=lambda value: json.dumps(value).encode("utf-8"))
    try:
        for rec in lists(consumer, deadline):
            if args.user is not None and rec["user_id"] != args.user:
                continue
            print(json.dumps(rec) if args.json else describe(rec), flush=True)
            if producer is not None and rec["items"]:
                # Keyed by the shopper, like their events, so it is applied in order with them.
                producer.send(args.events_topic, key=rec["user_id"],
                              value=impression(rec, args.impressions)).get(timeout=30)
            if args.event_id is not None and rec["event_id"] == args.event_id:
                return 0
    except KeyboardInterrupt:
        return 0
    finally:
        consumer.close()
        if producer is not None:
            producer.close()
    if args.event_id is not None:
        print(f"no list for event {args.event_id} within {args.timeout} s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
