"""`stream-rec trainer`: retrain on a schedule from the live event topic, promote if not worse."""

from __future__ import annotations

import argparse
from typing import Any

from stream_rec.commands import _flags as f
from stream_rec.config import Settings, env_name, load_settings


def register(sub: Any, settings: Settings) -> None:
    """Add the ``trainer`` subcommand."""
    parser = f.add_command(
        sub, "trainer", "retrain on a schedule from the live events, promote if not worse",
        "Each round reads the event topic's recent history, holds out its newest part, trains "
        "a candidate model (warm-started from the current one) and evaluates both on the "
        "held-out events; the candidate becomes current, and is announced to the running "
        "workers, unless it trails the current model on the promotion metric by more than the "
        "tolerance. One JSON line per round on stdout.",
        epilog=f.text("examples:\n"
                      "  stream-rec trainer --every 6h --window 30d\n"
                      "  stream-rec trainer --once     (one round, e.g. from a cron job)"))
    every = f.shown(settings, "retrain_every_ms", f.format_ms(settings.retrain_every_ms))
    window = f.shown(settings, "train_window_ms", f.format_ms(settings.train_window_ms))
    parser.add_argument("--every", metavar=f.DURATION,
                        help=f"time from one round's start to the next's, e.g. 6h ({every}; "
                             "unused with --once)")
    f.add_data(parser, "the event topic to learn from", forms="kafka:TOPIC",
               default=f"default kafka:{settings.events_topic}, the topic of "
               f"{env_name('events_topic')}")
    parser.add_argument("--window", metavar=f.DURATION,
                        help="history each round reads, e.g. 30d; its newest part is held out "
                             f"({window})")
    f.add_registry(parser, settings)
    parser.add_argument("--epochs", metavar=f.N, type=f.setting("train_epochs"),
                        help=f"most training epochs per round "
                             f"({f.shown(settings, 'train_epochs')})")
    parser.add_argument("--tolerance", metavar=f.FRACTION,
                        type=f.setting("promotion_tolerance"),
                        help="share of the current model's metric a candidate may trail by "
                             f"({f.shown(settings, 'promotion_tolerance')})")
    parser.add_argument("--once", action="store_true", help="run one round and exit")
    parser.add_argument("--no-announce", action="store_true",
                        help="do not announce promoted versions on the model-updates topic")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run rounds until interrupted (or one with ``--once``)."""
    from stream_rec.core.durations import parse_duration_ms
    from stream_rec.datasets import load_dataset, parse_spec
    from stream_rec.errors import UserError
    from stream_rec.model.registry import open_registry
    from training.retrain import run_trainer
    from training.train import TrainConfig

    settings = load_settings(registry_dir=args.registry, promotion_tolerance=args.tolerance)
    data = args.data or f"kafka:{settings.events_topic}"
    spec = parse_spec(data)
    if spec.kind != "kafka":
        raise UserError("the trainer learns from the live topic: use --data kafka:TOPIC")
    # Durations are read before the first round, so that a typo fails at once, not hours later.
    every_ms = parse_duration_ms(args.every) if args.every else settings.retrain_every_ms
    window_ms = parse_duration_ms(args.window) if args.window else settings.train_window_ms
    config = TrainConfig.from_settings(settings, epochs=args.epochs)
    return run_trainer(lambda: load_dataset(spec, settings, window_ms=window_ms), data,
                       open_registry(settings), settings, config, every_ms,
                       once=args.once, announce=not args.no_announce)
