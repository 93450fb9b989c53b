"""`stream-rec kafka start|stop|status`: the local development broker."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from stream_rec.commands import _flags as f
from stream_rec.config import Settings, load_settings

if TYPE_CHECKING:
    from stream_rec.tools.broker import BrokerStatus


def register(sub: Any, settings: Settings) -> None:
    """Add the ``kafka`` subcommand."""
    parser = f.add_command(
        sub, "kafka", "start, stop or inspect the local Kafka broker",
        "A single-node Apache Kafka broker (KRaft) on 127.0.0.1, for development, tests and "
        "the demo. Its jars are fetched once from Maven Central into the folder of "
        "STREAM_REC_KAFKA_HOME. "
        "'start' does nothing when the broker already runs, and creates stream-rec's topics; "
        "'status' exits with 1 when it is not running.")
    parser.add_argument("action", choices=["start", "stop", "status"],
                        help="what to do with the broker")
    f.add_kafka_port(parser, settings, "client port on 127.0.0.1")
    parser.add_argument("--data-dir", metavar=f.DIR, type=f.setting("kafka_data_dir"),
                        help="the broker's KRaft log and metadata folder "
                             f"({f.shown(settings, 'kafka_data_dir')})")
    f.add_json(parser, "the broker's status")
    parser.add_argument("--no-topics", action="store_true",
                        help="start without creating stream-rec's topics")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start, stop or report on the broker."""
    # Imported here: kafka-python is slow to load and `stream-rec --help` does not need it.
    from stream_rec.tools.broker import LocalBroker
    from stream_rec.topics import ensure_topics

    settings = load_settings(kafka_port=args.kafka_port, kafka_data_dir=args.data_dir)
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
