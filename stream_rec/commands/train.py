"""`stream-rec train`: train the fusion model on a dataset and add it to the registry."""

from __future__ import annotations

import argparse
import json
from typing import Any

from stream_rec.commands import _flags as f
from stream_rec.config import Settings, load_settings


def register(sub: Any, settings: Settings) -> None:
    """Add the ``train`` subcommand."""
    window = f.shown(settings, "train_window_ms", f.format_ms(settings.train_window_ms))
    parser = f.add_command(
        sub, "train", "train the fusion model on a dataset and add it to the registry",
        "Trains the model (TensorFlow) on the dataset's training split, showing each epoch, "
        "evaluates it on the test split, exports it to ONNX with a parity check and adds it "
        "to the registry as a new version. Training settings (epochs, batch size, learning "
        "rate, ...) come from their STREAM_REC_* variables. Needs the train extra: "
        "pip install 'stream-rec[train]'.")
    f.add_data(parser, "the dataset to learn from", required=True)
    f.add_registry(parser, settings)
    parser.add_argument("--epochs", metavar=f.N, type=f.setting("train_epochs"),
                        help=f"most training epochs ({f.shown(settings, 'train_epochs')})")
    parser.add_argument("--publish", action="store_true",
                        help="make the new version current and announce it on model-updates")
    parser.add_argument("--no-content", action="store_true",
                        help="train without the content (item attribute) branch")
    parser.add_argument("--window", metavar=f.DURATION,
                        help=f"history to read for kafka: data, e.g. 7d ({window})")
    parser.add_argument("--hide-items", type=f.fraction, default=0.0, metavar=f.FRACTION,
                        help="cold-start experiment: leave this share of the items out of "
                             "training; they stay in the catalog and the test split "
                             "(default 0)")
    parser.add_argument("--no-evaluate", action="store_true",
                        help="skip the test-split evaluation stored in the manifest")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train, evaluate, export and register one model version."""
    from stream_rec.core.durations import parse_duration_ms
    from stream_rec.datasets import hide_items, load_dataset
    from stream_rec.errors import UserError
    from stream_rec.model.registry import open_registry
    from training.pipeline import train_and_register
    from training.train import TrainConfig

    settings = load_settings(registry_dir=args.registry)
    window = parse_duration_ms(args.window) if args.window else None
    if args.hide_items >= 1.0:  # checked before the dataset is read, which can take minutes
        raise UserError("--hide-items must leave some items to train on: use a share below 1")
    dataset = load_dataset(args.data, settings, window_ms=window)
    if args.hide_items:
        dataset = hide_items(dataset, args.hide_items)
    config = TrainConfig.from_settings(settings, epochs=args.epochs,
                                       use_content=not args.no_content)
    trained = train_and_register(dataset, args.data, open_registry(settings),
                                 settings, config, publish=args.publish,
                                 evaluate_test=not args.no_evaluate)
    print(f"model version {trained.version} -> {trained.path}"
          f"{' (published, current)' if args.publish else ''}")
    print(f"training wall time: {trained.wall_time_s:.0f} s")
    if trained.metrics:
        print("offline metrics:", json.dumps(trained.metrics, sort_keys=True))
    return 0
