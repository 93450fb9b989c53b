"""A storefront's side of stream-rec: publish shopper events and catalog changes to Kafka.

Needs only kafka-python (``pip install kafka-python``), not stream-rec. Examples:

    python examples/storefront_producer.py event --user u-42 --item sku-1 --type view
    python examples/storefront_producer.py item sku-1 --category shoes --brand acme --price 59.9
    python examples/storefront_producer.py item sku-1 --out-of-stock
    python examples/storefront_producer.py item sku-1 --delist

The broker and topics come from flags, else from STREAM_REC_BROKER, STREAM_REC_EVENTS_TOPIC and
STREAM_REC_ITEMS_TOPIC, else the stream-rec defaults. Each sent message is printed as one JSON
line with the partition and offset it got.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from typing import Any

from kafka import KafkaProducer

EVENT_TYPES = ("view", "click", "add_to_cart", "purchase")


def make_producer(broker: str) -> KafkaProducer:
    """A producer for events and catalog messages.

    acks="all" waits until every in-sync replica has the message. The client's own retries
    are idempotent (recent kafka-python turns that on), but a retry of your own, after a
    timeout or a crash, can deliver an event twice: stream-rec drops the repeat by its event_id
    (the shopper gets the same list again), so a retry must reuse the event_id, never mint one.
    """
    return KafkaProducer(
        bootstrap_servers=broker.split(","),
        acks="all",
        linger_ms=5,  # small batches: events stay real-time
        key_serializer=lambda key: key.encode("utf-8"),
        value_serializer=lambda value: None if value is None else json.dumps(value).encode(),
    )


def shopper_event(user_id: str, item_id: str, event_type: str, *, event_id: str | None = None,
                  session_id: str | None = None, price: float | None = None,
                  quantity: int | None = None, context: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
    """One event as stream-rec expects it (schemas/storefront-event.schema.json)."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"event type must be one of {', '.join(EVENT_TYPES)}")
    event: dict[str, Any] = {
        "event_id": event_id or str(uuid.uuid4()),  # unique, and kept across retries
        "user_id": user_id,
        "item_id": item_id,
        "type": event_type,
        "ts": int(time.time() * 1000),  # epoch ms; an ISO 8601 string works too
    }
    optional = {"session_id": session_id, "price": price, "quantity": quantity,
                "context": context}
    event.update({key: value for key, value in optional.items() if value is not None})
    return event


def send_event(producer: KafkaProducer, topic: str, event: dict[str, Any]) -> dict[str, Any]:
    """Key = user_id: one shopper's events stay on one partition, in order."""
    sent = producer.send(topic, key=event["user_id"], value=event).get(timeout=30)
    return {"topic": topic, "partition": sent.partition, "offset": sent.offset, "value": event}


def send_item(producer: KafkaProducer, topic: str, item_id: str,
              attributes: dict[str, Any] | None) -> dict[str, Any]:
    """Key = item_id on the compacted catalog topic; ``None`` (a tombstone) delists the item.

    Send the whole item each time: the latest message per key is what stream-rec knows.
    """
    sent = producer.send(topic, key=item_id, value=attributes).get(timeout=30)
    return {"topic": topic, "partition": sent.partition, "offset": sent.offset,
            "key": item_id, "value": attributes}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line, with defaults from the STREAM_REC_* environment."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default=os.environ.get("STREAM_REC_BROKER",
                                                           "127.0.0.1:9092"))
    sub = parser.add_subparsers(dest="what", required=True)
    event = sub.add_parser("event", help="publish one shopper event")
    event.add_argument("--topic", default=os.environ.get("STREAM_REC_EVENTS_TOPIC",
                                                         "storefront.events"))
    event.add_argument("--user", required=True)
    event.add_argument("--item", required=True)
    event.add_argument("--type", choices=EVENT_TYPES, default="view")
    event.add_argument("--event-id", help="default: a new UUID")
    event.add_argument("--session")
    event.add_argument("--price", type=float)
    event.add_argument("--quantity", type=int)
    item = sub.add_parser("item", help="publish, update or delist one catalog item")
    item.add_argument("item_id")
    item.add_argument("--topic", default=os.environ.get("STREAM_REC_ITEMS_TOPIC",
                                                        "storefront.items"))
    item.add_argument("--category")
    item.add_argument("--brand")
    item.add_argument("--price", type=float)
    item.add_argument("--out-of-stock", action="store_true")
    item.add_argument("--delist", action="store_true", help="send a tombstone")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the example; the exit status."""
    args = parse_args(argv)
    producer = make_producer(args.broker)
    try:
        if args.what == "event":
            record = send_event(producer, args.topic, shopper_event(
                args.user, args.item, args.type, event_id=args.event_id,
                session_id=args.session, price=args.price, quantity=args.quantity))
        else:
            attributes = None if args.delist else {
                key: value for key, value in {"category": args.category, "brand": args.brand,
                                              "price": args.price}.items() if value is not None}
            if attributes is not None:
                attributes["in_stock"] = not args.out_of_stock
            record = send_item(producer, args.topic, args.item_id, attributes)
    finally:
        producer.close(timeout=30)
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
