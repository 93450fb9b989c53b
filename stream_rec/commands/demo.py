"""`stream-rec demo`: the main job on the embedded default (a local broker it starts itself)."""

from __future__ import annotations

import argparse

from stream_rec.config import load_settings


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("demo", help="run stream-rec live on a local Kafka broker")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--port", type=int, help="local Kafka port (default 9092)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stream_rec.demo import run_demo

    return run_demo(load_settings(kafka_port=args.port), duration_s=args.duration)
