"""`stream-rec trainer`: retrain on a schedule from the live event topic, promote if not worse."""

from __future__ import annotations

import argparse

from stream_rec.config import load_settings


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("trainer", help="periodic retraining with a promotion gate")
    parser.add_argument("--every", required=True, metavar="DURATION",
                        help="time between rounds, e.g. 1h")
    parser.add_argument("--data", required=True, metavar="kafka:TOPIC",
                        help="event topic to learn from, e.g. kafka:storefront.events")
    parser.add_argument("--window", required=True, metavar="DURATION",
                        help="history each round reads, e.g. 7d (the newest part is held out)")
    parser.add_argument("--registry", metavar="DIR", help="model registry folder")
    parser.add_argument("--epochs", type=int, help="training epochs per round")
    parser.add_argument("--tolerance", type=float,
                        help="share of the current model's metric a candidate may trail by")
    parser.add_argument("--once", action="store_true", help="run one round and exit")
    parser.add_argument("--no-announce", action="store_true",
                        help="do not announce promoted versions on the model-updates topic")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stream_rec.core.durations import parse_duration_ms
    from stream_rec.datasets import load_dataset, parse_spec
    from stream_rec.errors import UserError
    from stream_rec.model.registry import FileRegistry
    from training.retrain import run_trainer
    from training.train import TrainConfig

    settings = load_settings(registry_dir=args.registry, promotion_tolerance=args.tolerance)
    spec = parse_spec(args.data)
    if spec.kind != "kafka":
        raise UserError("the trainer learns from the live topic: use --data kafka:TOPIC")
    every_ms, window_ms = parse_duration_ms(args.every), parse_duration_ms(args.window)
    config = TrainConfig.from_settings(settings, epochs=args.epochs)
    return run_trainer(lambda: load_dataset(spec, settings, window_ms=window_ms), args.data,
                       FileRegistry(settings.registry_dir), settings, config, every_ms,
                       once=args.once, announce=not args.no_announce)
