"""`stream-rec replay`: produce a dataset's events (and catalog) into Kafka."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from stream_rec.commands import _flags as f
from stream_rec.config import Settings, load_settings


def register(sub: Any, settings: Settings) -> None:
    """Add the ``replay`` subcommand."""
    parser = f.add_command(
        sub, "replay", "produce a dataset's events (and catalog) into Kafka",
        "Sends the dataset's events to the events topic as storefront events, keyed by "
        "shopper, and its items to the catalog topic first: to back-fill a new deployment's "
        "history or to replay traffic for a test. Progress goes to stderr.",
        "With --evaluate it measures what shoppers get: the split is replayed through a "
        "worker of its own (on the local broker, started if needed, unless --broker names "
        "one; topics and state of its own) serving the registry's current model with the "
        "settings in force; each shopper's next event is sent once the list for the "
        "previous one is back, and every list is scored against the shopper's next "
        "event, with the metrics of `stream-rec evaluate` plus the share of fallback lists "
        "and where the hits came from.")
    f.add_data(parser, "the dataset to replay", required=True)
    parser.add_argument("--rate", metavar=f.RATE, type=f.positive,
                        help="events per second (default: as fast as the broker takes them)")
    parser.add_argument("--topic", metavar=f.TOPIC, type=f.setting("events_topic"),
                        help=f"the events topic ({f.shown(settings, 'events_topic')})")
    parser.add_argument("--split", choices=["train", "test", "all"],
                        help="which part of the dataset (default all; with --evaluate, test)")
    parser.add_argument("--limit", metavar=f.N, type=f.count(),
                        help="stop after this many events (default: all of them)")
    parser.add_argument("--no-catalog", action="store_true",
                        help="do not publish item attributes to the catalog topic")
    parser.add_argument("--evaluate", action="store_true",
                        help="replay through a worker of its own and score the lists it "
                             "publishes (needs --split test or train)")
    parser.add_argument("--warm-up-events", metavar=f.N, type=f.count(), default=0,
                        help="with --evaluate: first replay the last N events of the "
                             "training split, not scored, so the worker has seen recent "
                             "traffic (default %(default)s)")
    parser.add_argument("--keep-topics", action="store_true",
                        help="with --evaluate: keep the run's topics (named in the output) "
                             "to inspect the lists; deleted by default")
    f.add_registry(parser, settings, "with --evaluate: the registry whose current model the "
                   "worker serves")
    f.add_broker(parser, settings)
    f.add_json(parser, "the counts (with --evaluate: the metrics)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Produce the events (and catalog), then print the counts."""
    from kafka import KafkaProducer

    from stream_rec.connection import kafka_python_config
    from stream_rec.datasets import load_dataset
    from stream_rec.offline.progress import Progress
    from stream_rec.offline.replay import RateLimiter, catalog_messages, dataset_events

    if args.evaluate:
        return _evaluate(args)
    settings = load_settings(broker=args.broker)
    topic = args.topic or settings.events_topic
    dataset = load_dataset(args.data, settings)
    events = dataset_events(dataset, args.split or "all")[: args.limit]
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


def _evaluate(args: argparse.Namespace) -> int:
    """``--evaluate``: the served-path metrics (see ``stream_rec.tools.served_eval``)."""
    import sys

    from stream_rec.datasets import load_dataset
    from stream_rec.errors import UserError
    from stream_rec.tools.served_eval import evaluate_served

    if args.rate or args.topic or args.no_catalog:
        raise UserError("--evaluate runs its own worker on topics of its own, as fast as it "
                        "goes: --rate, --topic and --no-catalog do not apply")
    settings = load_settings(broker=args.broker, registry_dir=args.registry)
    dataset = load_dataset(args.data, settings)
    metrics = evaluate_served(
        settings, dataset, split=args.split or "test", warm_up_events=args.warm_up_events,
        limit=args.limit, k=settings.eval_k, broker_flag=args.broker,
        keep_topics=args.keep_topics,
        say=lambda line: print(line, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(metrics, sort_keys=True))
    else:
        print(f"served lists of model {metrics['model_version']} on {args.data} "
              f"({metrics['n_cases']:,} cases):")
        for key, value in metrics.items():
            if key not in ("n_cases", "model_version"):
                print(f"  {key}: {value}")
    return 0
