"""`stream-rec experiment start|stop|list`: experiments on the re-ranking policy.

An experiment is one record on the compacted experiments topic (key = its id). Every worker
follows the topic, so starting, changing or stopping one needs no restart; shoppers are
assigned to arms by a stable hash of (salt, user_id) (stream_rec/core/experiments.py).
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from stream_rec.commands import _flags as f
from stream_rec.config import Settings, load_settings
from stream_rec.errors import UserError

if TYPE_CHECKING:
    from stream_rec.core.experiments import Experiment


def register(sub: Any, settings: Settings) -> None:
    """Add the ``experiment`` subcommand."""
    parser = f.add_command(
        sub, "experiment", "start, stop or list experiments on the re-ranking policy",
        "An experiment splits shoppers between arms, each with its own re-ranking policy, so "
        "that the online metrics (docs/operations.md) can settle which balance of relevance "
        "and diversity sells. 'start ID --arms control=dpp:0.15,diverse=dpp:0.3' defines or "
        "changes one; 'stop ID' ends it (its shoppers get the default policy again); 'list' "
        "shows them. Running workers follow the experiments topic: no restart.")
    parser.add_argument("action", choices=["start", "stop", "list"],
                        help="what to do")
    parser.add_argument("id", metavar="ID", nargs="?", help="the experiment's id")
    parser.add_argument("--arms", metavar=f.ARMS,
                        help="name=policy pairs separated by ',', e.g. control=dpp:0.15,"
                             "diverse=dpp:0.3 (policies: none, dpp:THETA, mmr:LAMBDA)")
    parser.add_argument("--weights", metavar=f.WEIGHTS,
                        help="traffic weight of each arm, separated by ',' (default: equal)")
    parser.add_argument("--traffic", metavar=f.FRACTION, type=f.fraction, default=1.0,
                        help="share of shoppers in the experiment (default %(default)g)")
    parser.add_argument("--salt", metavar="ID",
                        help="what shoppers are hashed with (default: the id; a new salt "
                             "reshuffles who is in which arm)")
    f.add_broker(parser, settings)
    f.add_json(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write or read the experiments topic."""
    from stream_rec.core.events import InvalidEvent
    from stream_rec.core.experiments import parse_experiment

    settings = load_settings(broker=args.broker)
    if args.action == "list":
        experiments = read_experiments(settings)
        if args.json:
            print(json.dumps({"experiments": [e.to_dict() for e in experiments.values()]}))
        else:
            for experiment in experiments.values():
                shown = ", ".join(f"{a.name}={a.policy} ({w:g})" for a, w in
                                  zip(experiment.arms, experiment.weights, strict=True))
                print(f"{experiment.id}: {'running' if experiment.running else 'stopped'}, "
                      f"traffic {experiment.traffic:g}, {shown}")
            if not experiments:
                print(f"no experiments on {settings.experiments_topic}")
        return 0
    if not args.id:
        raise UserError(f"{args.action} needs the experiment's ID")
    if args.action == "stop":
        current = read_experiments(settings).get(args.id)
        if current is None:
            raise UserError(f"no experiment {args.id!r} on {settings.experiments_topic}")
        record = {**current.to_dict(), "running": False}
    else:
        if not args.arms:
            raise UserError("start needs --arms, e.g. control=dpp:0.15,diverse=dpp:0.3")
        arms: list[dict[str, str]] = []
        for pair in args.arms.split(","):
            name, equals, policy = pair.partition("=")
            if not equals:
                raise UserError(f"--arms: {pair!r} is not name=policy")
            arms.append({"name": name.strip(), "policy": policy.strip()})
        try:
            weights = ([float(w) for w in args.weights.split(",")] if args.weights
                       else [1.0] * len(arms))
        except ValueError:
            raise UserError(f"--weights: {args.weights!r} is not numbers separated by ','"
                            ) from None
        record = {"id": args.id, "arms": arms, "weights": weights,
                  "salt": args.salt or args.id, "traffic": args.traffic, "running": True}
    raw = json.dumps(record).encode()
    try:
        experiment = parse_experiment(args.id, raw)  # what the workers will check, first
    except InvalidEvent as exc:
        raise UserError(exc.reason) from None
    publish_experiment(settings, experiment)
    print(json.dumps(experiment.to_dict()) if args.json else
          f"experiment {experiment.id} {'started' if experiment.running else 'stopped'} "
          f"on {settings.experiments_topic}")
    return 0


def publish_experiment(settings: Settings, experiment: Experiment) -> None:
    """Write an experiment's definition (the topic keeps the latest per id)."""
    from kafka import KafkaProducer

    from stream_rec.connection import kafka_python_config
    from stream_rec.topics import ensure_topics

    ensure_topics(settings)  # compacted, one partition
    producer = KafkaProducer(**kafka_python_config(settings), acks="all")
    try:
        producer.send(settings.experiments_topic, key=experiment.id.encode(),
                      value=json.dumps(experiment.to_dict()).encode()).get(timeout=30)
    finally:
        producer.close()


def read_experiments(settings: Settings) -> dict[str, Experiment]:
    """Every experiment on the topic, as the workers see it (the latest record per id)."""
    from kafka import KafkaConsumer, TopicPartition

    from stream_rec.connection import kafka_python_config
    from stream_rec.core.events import InvalidEvent
    from stream_rec.core.experiments import parse_experiment

    consumer = KafkaConsumer(**kafka_python_config(settings), group_id=None,
                             enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(settings.experiments_topic) or set()
        tps = [TopicPartition(settings.experiments_topic, p) for p in sorted(partitions)]
        if not tps:
            return {}
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        latest: dict[str, bytes | None] = {}
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for records in consumer.poll(timeout_ms=1000).values():
                for record in records:
                    if record.key is not None:
                        latest[record.key.decode("utf-8", "replace")] = record.value
    finally:
        consumer.close()
    experiments: dict[str, Experiment] = {}
    for key, value in sorted(latest.items()):
        if value is None:
            continue
        try:
            experiments[key] = parse_experiment(key, value)
        except InvalidEvent:
            continue  # the workers refuse it too (and say so)
    return experiments
