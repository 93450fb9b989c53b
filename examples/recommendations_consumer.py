"""A storefront's side of stream-rec: read the recommendation lists it publishes.

Needs only kafka-python (``pip install kafka-python``), not stream-rec. Examples:

    python examples/recommendations_consumer.py                    # follow new lists
    python examples/recommendations_consumer.py --user u-42 --from-beginning
    python examples/recommendations_consumer.py --event-id EVENT --timeout 60 --json

One line per list: "user, triggering event, model, policy: item (score, reason), ..." or, with
--json, the message itself. With --event-id it stops (exit 0) once that event's list has been
printed, or exits 1 after --timeout seconds. The broker and topic come from flags, else from
STREAM_REC_BROKER and STREAM_REC_RECOMMENDATIONS_TOPIC, else the stream-rec defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

from kafka import KafkaConsumer


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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    consumer = make_consumer(args.broker, args.topic, args.group, args.from_beginning)
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    try:
        for rec in lists(consumer, deadline):
            if args.user is not None and rec["user_id"] != args.user:
                continue
            print(json.dumps(rec) if args.json else describe(rec), flush=True)
            if args.event_id is not None and rec["event_id"] == args.event_id:
                return 0
    except KeyboardInterrupt:
        return 0
    finally:
        consumer.close()
    if args.event_id is not None:
        print(f"no list for event {args.event_id} within {args.timeout} s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
