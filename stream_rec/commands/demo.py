"""`stream-rec demo`: the main job on the embedded default (a local broker it starts itself)."""

from __future__ import annotations

import argparse
from typing import Any

from stream_rec.commands import _flags as f
from stream_rec.config import Settings, load_settings


def register(sub: Any, settings: Settings) -> None:
    """Add the ``demo`` subcommand."""
    parser = f.add_command(
        sub, "demo", "run stream-rec live on a local Kafka broker, with a web page",
        "Starts a local Kafka broker (unless one answers on its port) and a worker, trains a "
        "small model when the registry has none trained on the data, streams shoppers into "
        "Kafka and serves a live page on 127.0.0.1 showing each shopper's list as it changes. "
        "Ctrl-C stops everything it started.")
    f.add_data(parser, "stream this dataset's test split", default="default: the synthetic "
               "storefront's live shoppers")
    parser.add_argument("--rate", metavar=f.RATE, type=f.positive, default=20.0,
                        help="shopper events per second (default %(default)g)")
    parser.add_argument("--duration", metavar=f.S, type=f.positive,
                        help="stop after this many seconds (default: run until Ctrl-C)")
    f.add_kafka_port(parser, settings, "client port of the local Kafka broker on 127.0.0.1")
    parser.add_argument("--page-port", metavar=f.PORT, type=f.setting("demo_port"),
                        help="port of the live page on 127.0.0.1, 0 for any free one "
                             f"({f.shown(settings, 'demo_port')})")
    f.add_registry(parser, settings)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo until Ctrl-C or ``--duration``."""
    from stream_rec.tools.demo import run_demo

    settings = load_settings(kafka_port=args.kafka_port, registry_dir=args.registry,
                             demo_port=args.page_port)
    if args.kafka_port:
        settings = settings.with_overrides(broker=f"127.0.0.1:{args.kafka_port}")
    return run_demo(settings, data=args.data, duration_s=args.duration, rate=args.rate)
