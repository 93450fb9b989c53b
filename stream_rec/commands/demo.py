"""`stream-rec demo`: the main job on the embedded default (a local broker it starts itself)."""

from __future__ import annotations

import argparse

from stream_rec.config import load_settings


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("demo", help="run stream-rec live on a local Kafka broker, with a "
                            "web page")
    parser.add_argument("--data", metavar="SPEC", help="stream this dataset's test split "
                        "(default: live traffic from the synthetic storefront)")
    parser.add_argument("--rate", type=float, default=20.0,
                        help="shopper events per second (default %(default)g)")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--port", type=int, help="local Kafka port (default 9092)")
    parser.add_argument("--page-port", type=int,
                        help="port of the live page on 127.0.0.1 (default: settings.demo_port)")
    parser.add_argument("--registry", help="model registry (default: settings.registry_dir)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stream_rec.tools.demo import run_demo

    settings = load_settings(kafka_port=args.port, registry_dir=args.registry,
                             demo_port=args.page_port)
    if args.port:
        settings = settings.with_overrides(broker=f"127.0.0.1:{args.port}")
    return run_demo(settings, data=args.data, duration_s=args.duration, rate=args.rate)
