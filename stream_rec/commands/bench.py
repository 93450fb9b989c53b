"""`stream-rec bench`: the pipeline vs bare Faust and aiokafka on a real broker, JSON out."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from stream_rec.commands import _flags as f
from stream_rec.config import Settings, env_name
from stream_rec.errors import UserError

# The bench's own names, spelled here so that `--help` need not import the benchmark.
TARGETS = ("pipeline", "faust_passthrough", "aiokafka_passthrough")
BENCH_DATA = "sessions:../shared/data/diginetica"

BENCH_EPILOG = """\
examples:
  stream-rec bench --events 20000 --rate 1000 --json
  stream-rec bench --events 0 --state-users 1000000 --json
  stream-rec bench --soak 10m --rate 500 --json
  stream-rec bench --catalog-items 1000000 --targets pipeline --events 5000 --json
Worker settings come from STREAM_REC_* as for `stream-rec worker`, e.g.
STREAM_REC_BATCH_MAX_EVENTS=512 stream-rec bench ..."""


def register(sub: Any, settings: Settings) -> None:
    """Add the ``bench`` subcommand."""
    parser = f.add_command(
        sub, "bench", "benchmark the pipeline against bare Faust and aiokafka passthroughs",
        "Runs one real worker and two passthrough baselines on the same broker and "
        "partitions with the same events; prints throughput, latency at a fixed rate, memory "
        "and per-stage times. Progress goes to stderr.",
        epilog=BENCH_EPILOG)
    parser.add_argument("--events", metavar=f.N, type=f.count(), default=20_000,
                        help="events per throughput phase; 0 skips the Kafka runs "
                             "(default %(default)s)")
    parser.add_argument("--rate", metavar=f.RATE, type=f.positive, default=1000.0,
                        help="offered rate of the latency phase and the soak, events per "
                             "second (default %(default)g)")
    parser.add_argument("--latency-events", metavar=f.N, type=f.count(),
                        help="events sent at --rate for latency; 0 skips the latency phase "
                             "(default: --events)")
    parser.add_argument("--latency-curve", metavar=f.RATES,
                        help="after the throughput phase, the pipeline's p50/p95/p99 at each "
                             "offered rate (events/s, separated by ','), or 'auto': at 25, 50, "
                             "75 and 90 %% of the capacity measured in the same run")
    parser.add_argument("--plot", metavar=f.FILE,
                        help="with --latency-curve: draw it into FILE (PNG)")
    parser.add_argument("--hot-swap", action="store_true",
                        help="last, make the worker swap to a copy of its model (promoted "
                             "and announced in a registry of the run's own) while events "
                             "flow at --rate: its peak memory, the swap's time and the "
                             "latency meanwhile (key hot_swap)")
    parser.add_argument("--warmup-events", metavar=f.N, type=f.count(), default=500,
                        help="events each target gets before measuring (default %(default)s)")
    f.add_json(parser)
    parser.add_argument("--state-users", metavar=f.N, type=f.count(1),
                        help="also measure user state bytes and RocksDB footprint for N users")
    parser.add_argument("--soak", metavar=f.DURATION,
                        help="soak the pipeline for this long (e.g. 10m, 90s) at --rate")
    parser.add_argument("--sample", metavar=f.S, type=f.positive, default=10.0,
                        help="soak sampling interval in seconds (default %(default)g)")
    add_setup(parser, settings, "dataset to replay")
    parser.add_argument("--catalog-items", metavar=f.N, type=f.count(100),
                        help="replay a synthetic catalog of N items with a model of that "
                             "size instead of --data (generated and trained on first use, "
                             "then cached)")
    parser.add_argument("--targets", metavar="TARGETS", default=",".join(TARGETS),
                        help="comma-separated subset of the three targets to measure "
                             "(default %(default)s)")
    parser.add_argument("--concurrency", metavar=f.N, type=f.count(1), default=1000,
                        help="shoppers with an open session at once (default %(default)s)")
    parser.add_argument("--profile", metavar=f.FILE,
                        help="py-spy the worker during the throughput phase into FILE "
                             "(.svg flame graph, .json speedscope, else raw stacks)")
    parser.add_argument("--seed", metavar=f.N, type=f.count(), default=0,
                        help="seed of the workload (default %(default)s)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work folder (logs) and the run's topics")
    parser.add_argument("--keep-broker", action="store_true",
                        help="leave a local broker this run started running")
    parser.set_defaults(func=run)


def add_setup(parser: argparse.ArgumentParser, settings: Settings, data_help: str) -> None:
    """The flags every Kafka benchmark shares: broker, dataset, model registry."""
    f.add_broker(parser, settings, shown_default=f"default: {env_name('broker')} when set, "
                 "else the local broker, started if needed")
    f.add_data(parser, data_help, default=f"default {BENCH_DATA}")
    f.add_registry(parser, settings, "serve this model registry's current model",
                   shown_default="default: the cached bench model, trained on first use")
    parser.add_argument("--no-model", action="store_true",
                        help="serve no model (measures the fallback lists)")
    parser.add_argument("--train-epochs", metavar=f.N, type=f.count(1), default=1,
                        help="epochs of the bench model if it must be trained "
                             "(default %(default)s)")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print its result."""
    from stream_rec.core.durations import parse_duration_ms
    from stream_rec.tools.bench.benchmark import BenchPlan
    from stream_rec.tools.bench.report import format_text
    from stream_rec.tools.bench.runner import BenchOptions
    from stream_rec.tools.bench.runner import run as run_bench
    from stream_rec.tools.bench.soak import SoakPlan
    from stream_rec.tools.bench.workload import DEFAULT_DATA

    targets = tuple(t.strip() for t in args.targets.split(","))
    if unknown := sorted(set(targets) - set(TARGETS)):
        raise UserError(f"--targets: unknown {', '.join(unknown)}; choose from "
                        f"{', '.join(TARGETS)}")
    if args.hot_swap and "pipeline" not in targets:
        raise UserError("--hot-swap swaps the pipeline's model: add pipeline to --targets")
    if args.catalog_items and args.data:
        raise UserError("--catalog-items replays a synthetic catalog: leave out --data")
    if args.catalog_items:
        from stream_rec.tools.bench.catalog_data import catalog_spec
        from stream_rec.tools.bench.synthetic_catalog import SyntheticConfig

        data = catalog_spec(SyntheticConfig(n_items=args.catalog_items))
    else:
        data = args.data or DEFAULT_DATA
    curve: tuple[float, ...] | str | None = None
    if args.latency_curve:
        if args.latency_curve.strip() == "auto":
            curve = "auto"
        else:
            try:
                curve = tuple(float(r) for r in args.latency_curve.split(","))
            except ValueError:
                curve = ()
            if not curve or not all(0 < r < 1e6 for r in curve):
                raise UserError(f"--latency-curve: {args.latency_curve!r} is not 'auto' or "
                                "rates > 0 separated by ','")
    plan = BenchPlan(events=args.events, rate=args.rate, latency_events=args.latency_events,
                     warmup_events=args.warmup_events, concurrency=args.concurrency, data=data,
                     seed=args.seed, targets=targets,
                     profile=Path(args.profile) if args.profile else None,
                     latency_curve=curve, hot_swap=args.hot_swap)
    soak = None
    if args.soak:
        soak = SoakPlan(duration_s=parse_duration_ms(args.soak) / 1000.0, rate=args.rate,
                        sample_s=args.sample, warmup_events=args.warmup_events,
                        concurrency=args.concurrency, data=data, seed=args.seed)
    registry = Path(args.registry) if args.registry else None
    options = BenchOptions(plan=plan, soak=soak, state_users=args.state_users,
                           broker=args.broker, registry=registry,
                           use_model=not args.no_model, train_epochs=args.train_epochs,
                           keep=args.keep, keep_broker=args.keep_broker,
                           catalog_items=args.catalog_items)
    if args.plot and not curve:
        raise UserError("--plot draws the latency curve: add --latency-curve")
    result = run_bench(options)
    if args.plot:
        from stream_rec.tools.bench.plot import plot_latency_curve

        plot_latency_curve(result, args.plot)
    print(json.dumps(result) if args.json else format_text(result), flush=True)
    return 0
