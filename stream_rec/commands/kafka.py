"""`stream-rec kafka start|stop|status`: the local development broker."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stream_rec.config import load_settings
from stream_rec.tools.broker import BrokerStatus, LocalBroker
from stream_rec.topics import ensure_topics


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("kafka", help="start, stop or inspect the local Kafka broker")
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--port", type=int, help="client port on 127.0.0.1 (default 9092)")
    parser.add_argument("--data-dir", type=Path, help="KRaft storage folder")
    parser.add_argument("--json", action="store_true", help="print the status as JSON")
    parser.add_argument("--no-topics", action="store_true",
                        help="start without creating stream-rec's topics")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(kafka_port=args.port,
                             kafka_data_dir=str(args.data_dir) if args.data_dir else None)
    broker = LocalBroker(settings)
    if args.action == "start":
        status = broker.start()
        if not args.no_topics:
            ensure_topics(settings.with_overrides(broker=status.bootstrap))
        _print(status, args.json)
    elif args.action == "stop":
        stopped = broker.stop()
        if not args.json:
            print("stopped Kafka" if stopped else "Kafka was not running")
        else:
            print(json.dumps({"stopped": stopped}))
    else:
        status = broker.status()
        _print(status, args.json)
        return 0 if status.running else 1
    return 0


def _print(status: BrokerStatus, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"running": status.running, "pid": status.pid,
                          "bootstrap": status.bootstrap, "data_dir": str(status.data_dir)}))
    elif status.running:
        print(f"Kafka is running at {status.bootstrap} (pid {status.pid}, data {status.data_dir})")
    else:
        print(f"Kafka is not running (expected at {status.bootstrap})")
