"""`stream-rec storefront`: the synthetic storefront, as a dataset folder or as live traffic."""

from __future__ import annotations

import argparse

from stream_rec.config import load_settings


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("storefront", help="write the synthetic storefront's history as "
                            "an events: dataset, or stream its shoppers into Kafka")
    parser.add_argument("--seed", type=int, default=7,
                        help="the shop and its shoppers (default %(default)s)")
    parser.add_argument("--write", metavar="DIR", help="write events_train.csv, "
                        "events_test.csv and items.csv into DIR and exit")
    parser.add_argument("--rate", type=float, default=20.0,
                        help="live events per second (default %(default)g)")
    parser.add_argument("--duration", type=float, help="stop streaming after this many seconds")
    parser.add_argument("--broker", help="Kafka bootstrap servers")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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
