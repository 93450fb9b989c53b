"""`stream-rec bench-core`: CPU per event of the worker's own work, no broker involved."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from stream_rec.commands import _flags as f
from stream_rec.commands.bench import BENCH_DATA
from stream_rec.config import Settings


def register(sub: Any, settings: Settings) -> None:
    """Add the ``bench-core`` subcommand."""
    parser = f.add_command(
        sub, "bench-core", "CPU time per event of the worker's own work, without Kafka",
        "Runs the bench workload through the worker's per-batch code (state, retrieval, "
        "scoring, re-ranking, encoding) in one process and reports CPU microseconds per event "
        "by part: stable numbers for comparing code changes, where `stream-rec bench` also "
        "measures the broker and the machine. Settings come from STREAM_REC_* as for the "
        "worker.")
    parser.add_argument("--events", metavar=f.N, type=f.count(1), default=6000,
                        help="events measured (default %(default)s)")
    parser.add_argument("--warmup-events", metavar=f.N, type=f.count(), default=2000,
                        help="events run first, unmeasured, so shoppers have grown state "
                             "(default %(default)s)")
    parser.add_argument("--batch", metavar=f.N, type=f.setting("batch_max_events"),
                        help=f"events per batch ({f.shown(settings, 'batch_max_events')})")
    f.add_data(parser, "dataset to replay", default=f"default {BENCH_DATA}")
    parser.add_argument("--catalog-items", metavar=f.N, type=f.count(100), action="append",
                        help="replay a synthetic catalog of N items with a model of that "
                             "size instead of --data (generated and trained on first use, "
                             "then cached); give it several times to measure each size in "
                             "its own process")
    parser.add_argument("--plot", metavar=f.FILE,
                        help="with several --catalog-items: draw cost against catalog size "
                             "into FILE (PNG)")
    parser.add_argument("--no-hot-swap", action="store_true",
                        help="skip loading a second copy of the model after the events "
                             "(the memory of a hot swap)")
    f.add_registry(parser, settings, "serve this registry's current model",
                   shown_default="default: the cached bench model, trained on first use")
    parser.add_argument("--no-model", action="store_true", help="measure the fallback lists")
    parser.add_argument("--train-epochs", metavar=f.N, type=f.count(1), default=1,
                        help="epochs of the bench model if it must be trained "
                             "(default %(default)s)")
    parser.add_argument("--concurrency", metavar=f.N, type=f.count(1), default=1000,
                        help="shoppers' sessions open at once in the workload "
                             "(default %(default)s)")
    parser.add_argument("--seed", metavar=f.N, type=f.count(), default=0,
                        help="seed of the workload (default %(default)s)")
    f.add_json(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Measure and print CPU per event by part (or, at several catalog sizes, a table)."""
    from stream_rec.errors import UserError
    from stream_rec.tools.bench.core_run import CoreOptions, run_bench_core

    sizes = args.catalog_items or []
    if sizes and args.data:
        raise UserError("--catalog-items replays a synthetic catalog: leave out --data")
    if len(sizes) > 1 and args.registry:
        raise UserError("--registry serves one model: give --catalog-items once with it")
    if args.plot and len(set(sizes)) < 2:
        raise UserError("--plot draws cost against catalog size: give --catalog-items at "
                        "least twice")
    options = CoreOptions(events=args.events, warmup_events=args.warmup_events,
                          batch=args.batch, data=args.data,
                          catalog_items=sizes[0] if sizes else None,
                          registry=Path(args.registry) if args.registry else None,
                          use_model=not args.no_model, train_epochs=args.train_epochs,
                          concurrency=args.concurrency, seed=args.seed,
                          hot_swap=not args.no_hot_swap)
    if len(set(sizes)) > 1:
        from stream_rec.tools.bench.catalog_sweep import format_sweep, run_sweep

        sweep = run_sweep(options, sizes)
        if args.plot and len(sweep["catalog_sweep"]) > 1:
            from stream_rec.tools.bench.plot import plot_catalog_cost

            plot_catalog_cost(sweep, args.plot)
        print(json.dumps(sweep) if args.json else format_sweep(sweep), flush=True)
        return 1 if sweep["failed"] else 0
    out = run_bench_core(options)
    if args.json:
        print(json.dumps(out), flush=True)
        return 0
    print(f"CPU per event over {out['events']} events in batches of {out['batch']} "
          f"(model {out['model_version'] or 'none: fallback lists'}, "
          f"{out['catalog_items']:,} items):", file=sys.stdout)
    for part, us in out["cpu_us_per_event"].items():
        print(f"  {part:16s} {us:8.1f} us")
    print(f"  {'total':16s} {out['cpu_us_per_event_total']:8.1f} us")
    print("by stage (wall): " + ", ".join(
        f"{k} {v} us" for k, v in out["stages_us"].items()))
    print(f"catalog read {out['catalog_read_s']} s, model load {out['model_load_s']} s, "
          f"model swap {out['model_swap_s']} s; resident MB {out['rss_mb']}; "
          f"hot swap {out['hot_swap']}")
    return 0
