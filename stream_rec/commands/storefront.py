"""`stream-rec storefront`: the synthetic storefront, as a dataset folder or as live traffic."""

from __future__ import annotations

import argparse
from typing import Any

from stream_rec.commands import _flags as f
from stream_rec.config import Settings, load_settings


def register(sub: Any, settings: Settings) -> None:
    """Add the ``storefront`` subcommand."""
    parser = f.add_command(
        sub, "storefront", "a synthetic shop: its history as a dataset, or live shoppers",
        "A made-up shop of 600 items in 12 categories and 400 shoppers with their own tastes, "
        "the same for the same seed. With --write, its history is saved as an events: dataset "
        "that train, evaluate and replay read; without, its catalog and live shoppers' events "
        "are streamed into Kafka until Ctrl-C.")
    parser.add_argument("--seed", metavar=f.N, type=f.count(), default=7,
                        help="which shop and shoppers (default %(default)s)")
    parser.add_argument("--write", metavar=f.DIR, help="write events_train.csv, "
                        "events_test.csv and items.csv into DIR and exit")
    parser.add_argument("--rate", metavar=f.RATE, type=f.positive, default=20.0,
                        help="live events per second (default %(default)g)")
    parser.add_argument("--duration", metavar=f.S, type=f.positive,
                        help="stop streaming after this many seconds (default: run until "
                             "Ctrl-C)")
    f.add_broker(parser, settings)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the dataset, or stream the shop into Kafka."""
    from pathlib import Path

    from stream_rec.tools.storefront import StorefrontConfig, make_storefront, write_storefront

    storefront = make_storefront(StorefrontConfig(seed=args.seed))
    if args.write:
        folder = write_storefront(storefront, Path(args.write))
        print(f"wrote the storefront (seed {args.seed}) to {folder}; train with "
              f"`stream-rec train --data events:{folder}`")
        return 0
    from stream_rec.tools.demo.feed import stream_storefront

    return stream_storefront(load_settings(broker=args.broker), storefront, args.rate,
                             args.duration)
