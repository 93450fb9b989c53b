"""`stream-rec replay`: produce a dataset's events (and catalog) into Kafka."""

from __future__ import annotations

import argparse
import json
import time

from stream_rec.config import load_settings


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("replay", help="produce a dataset's events into Kafka")
    parser.add_argument("--data", required=True, help="sessions:PATH | categories:PATH | "
                        "events:PATH")
    parser.add_argument("--rate", type=float, help="events per second (default: as fast as "
                        "possible)")
    parser.add_argument("--topic", help="events topic (default: settings.events_topic)")
    parser.add_argument("--split", choices=["train", "test", "all"], default="all")
    parser.add_argument("--limit", type=int, help="stop after this many events")
    parser.add_argument("--no-catalog", action="store_true",
                        help="do not publish item attributes to the catalog topic")
    parser.add_argument("--broker", help="Kafka bootstrap servers")
    parser.add_argument("--json", action="store_true", help="print counts as one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kafka import KafkaProducer

    from stream_rec.connection import kafka_python_config
    from stream_rec.datasets import load_dataset
    from stream_rec.offline.progress import Progress
    from stream_rec.offline.replay import RateLimiter, catalog_messages, dataset_events

    settings = load_settings(broker=args.broker)
    topic = args.topic or settings.events_topic
    dataset = load_dataset(args.data, settings)
    events = dataset_events(dataset, args.split)[: args.limit]
    producer = KafkaProducer(**kafka_python_config(settings), linger_ms=5, acks="all")
    started = time.monotonic()
    items = 0
    if not args.no_catalog:
        for key, value in catalog_messages(dataset):
            producer.send(settings.items_topic, key=key, value=value)
            items += 1
        producer.flush()
    progress = Progress(len(events), f"replay {dataset.name} -> {topic}")
    limiter = RateLimiter(args.rate)
    for event in events:
        limiter.wait()
        producer.send(topic, key=event.key, value=event.value)
        progress.update()
    producer.flush()
    producer.close()
    progress.close()
    elapsed = time.monotonic() - started
    summary = {"events": len(events), "items": items, "topic": topic,
               "seconds": round(elapsed, 3),
               "events_per_s": round(len(events) / elapsed, 1) if elapsed else None}
    print(json.dumps(summary) if args.json else
          f"replayed {len(events)} events and {items} catalog items into {topic} "
          f"in {elapsed:.1f} s")
    return 0
