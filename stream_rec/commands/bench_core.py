"""`stream-rec bench-core`: CPU per event of the worker's own work, no broker involved."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from stream_rec.commands import _flags as f
from stream_rec.commands.bench import BENCH_DATA
from stream_rec.config import Settings, load_settings


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
    """Measure and print CPU per event by part."""
    from threadpoolctl import threadpool_limits

    from stream_rec.core.catalog import parse_catalog_item
    from stream_rec.core.trending import Trending
    from stream_rec.errors import UserError
    from stream_rec.model import load_served_model
    from stream_rec.model.registry import open_registry
    from stream_rec.offline.progress import Progress
    from stream_rec.serving.recommender import Recommender
    from stream_rec.tools.bench.core_cpu import run_core
    from stream_rec.tools.bench.model import current_version, ensure_bench_model
    from stream_rec.tools.bench.workload import (
        DEFAULT_DATA,
        ShopperStream,
        catalog_messages,
        load_workload,
    )
    from stream_rec.worker.heap import settle
    from stream_rec.worker.runtime import batch_config, recommender_config

    settings = load_settings()
    threadpool_limits(settings.blas_threads)  # as the worker sets them
    data = args.data or DEFAULT_DATA
    workload = load_workload(data, settings)
    recommender = Recommender(recommender_config(settings),
                              trending=Trending(settings.trending_half_life_s * 1000.0))
    for key, value in catalog_messages(workload):  # what the bench puts on the catalog topic
        recommender.upsert_item(parse_catalog_item(key.decode(), value))
    registry = None if args.no_model else (Path(args.registry) if args.registry else
                                           ensure_bench_model(data, args.train_epochs))
    version = None if registry is None else current_version(registry)
    if registry is not None and version is None:
        raise UserError(f"{registry} holds no model version to serve")
    if registry is not None and version is not None:
        recommender.swap_model(load_served_model(open_registry(registry).path(version),
                                                 threads=settings.onnx_threads))
    batch = args.batch or settings.batch_max_events
    events = ShopperStream(workload, "core", concurrency=args.concurrency, seed=args.seed
                           ).take(args.warmup_events + args.events, "core")
    if settings.gc_freeze:
        settle("loading")  # as the worker does once its catalog and model are in
    bar = Progress(len(events), "bench-core")
    result = run_core(recommender, events, batch=batch, warmup=args.warmup_events,
                      config=batch_config(settings),
                      progress=lambda done, _total: bar.update(done - bar.done))
    bar.close()
    out = {**result.to_dict(), "model_version": version, "catalog_items": len(workload.catalog),
           "data": data}
    if args.json:
        print(json.dumps(out), flush=True)
        return 0
    print(f"CPU per event over {result.events} events in batches of {batch} "
          f"(model {version or 'none: fallback lists'}):", file=sys.stdout)
    for part, us in result.cpu_us.items():
        print(f"  {part:16s} {us:8.1f} us")
    print(f"  {'total':16s} {out['cpu_us_per_event_total']:8.1f} us")
    print("by stage (wall): " + ", ".join(
        f"{k} {v} us" for k, v in result.stages_us.items()))
    return 0
