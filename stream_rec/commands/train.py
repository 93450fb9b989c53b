"""`stream-rec train`: train the fusion model on a dataset and add it to the registry."""

from __future__ import annotations

import argparse
import json

from stream_rec.config import load_settings


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("train", help="train the fusion model and add it to the registry")
    parser.add_argument("--data", required=True, metavar="SPEC",
                        help="sessions:PATH, categories:PATH, events:PATH or kafka:TOPIC")
    parser.add_argument("--registry", metavar="DIR", help="model registry folder")
    parser.add_argument("--epochs", type=int, help="training epochs (default: setting)")
    parser.add_argument("--publish", action="store_true",
                        help="make the new version current and announce it on model-updates")
    parser.add_argument("--no-content", action="store_true",
                        help="train without the content (item attribute) branch")
    parser.add_argument("--window", metavar="DURATION",
                        help="history to read for kafka: data, e.g. 7d (default: setting)")
    parser.add_argument("--hide-items", type=float, default=0.0, metavar="FRACTION",
                        help="cold-start experiment: leave this share of the items out of "
                             "training (they stay in the catalog and the test split)")
    parser.add_argument("--no-evaluate", action="store_true",
                        help="skip the test-split evaluation stored in the manifest")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stream_rec.core.durations import parse_duration_ms
    from stream_rec.datasets import hide_items, load_dataset
    from stream_rec.errors import UserError
    from stream_rec.model.registry import FileRegistry
    from training.pipeline import train_and_register
    from training.train import TrainConfig

    settings = load_settings(registry_dir=args.registry)
    window = parse_duration_ms(args.window) if args.window else None
    dataset = load_dataset(args.data, settings, window_ms=window)
    if args.hide_items:
        if not 0.0 < args.hide_items < 1.0:
            raise UserError("--hide-items takes a share between 0 and 1")
        dataset = hide_items(dataset, args.hide_items)
    config = TrainConfig.from_settings(settings, epochs=args.epochs,
                                       use_content=not args.no_content)
    trained = train_and_register(dataset, args.data, FileRegistry(settings.registry_dir),
                                 settings, config, publish=args.publish,
                                 evaluate_test=not args.no_evaluate)
    print(f"model version {trained.version} -> {trained.path}"
          f"{' (published, current)' if args.publish else ''}")
    print(f"training wall time: {trained.wall_time_s:.0f} s")
    if trained.metrics:
        print("offline metrics:", json.dumps(trained.metrics, sort_keys=True))
    return 0
