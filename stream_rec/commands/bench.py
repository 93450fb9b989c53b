"""`stream-rec bench`: the pipeline vs bare Faust and aiokafka on a real broker, JSON out."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

BENCH_EPILOG = """\
examples:
  stream-rec bench --events 20000 --rate 1000 --json
  stream-rec bench --events 0 --state-users 1000000 --json
  stream-rec bench --soak 10m --rate 500 --json
Worker settings come from STREAM_REC_* as for `stream-rec worker`, e.g.
STREAM_REC_BATCH_MAX_EVENTS=512 stream-rec bench ..."""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "bench", help="benchmark the pipeline against bare Faust and aiokafka passthroughs",
        description="Runs one real worker and two passthrough baselines on the same broker and "
        "partitions with the same events; prints throughput, latency at a fixed rate, memory "
        "and per-stage times. Progress goes to stderr.",
        epilog=BENCH_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000,
                        help="events per throughput phase (default 20000; 0 skips Kafka runs)")
    parser.add_argument("--rate", type=float, default=1000.0,
                        help="offered rate of the latency phase and the soak, events/s "
                             "(default 1000)")
    parser.add_argument("--latency-events", type=int,
                        help="events sent at --rate for latency (default: --events)")
    parser.add_argument("--warmup-events", type=int, default=500,
                        help="events each target gets before measuring (default 500)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--state-users", type=int, metavar="U",
                        help="also measure user state bytes and RocksDB footprint for U users")
    parser.add_argument("--soak", metavar="DURATION",
                        help="soak the pipeline for DURATION (e.g. 10m, 90s) at --rate")
    parser.add_argument("--sample", type=float, default=10.0,
                        help="soak sampling interval in seconds (default 10)")
    parser.add_argument("--broker", help="Kafka bootstrap servers (default: $STREAM_REC_BROKER, "
                                         "else the local broker, started if needed)")
    parser.add_argument("--data", default=None, metavar="SPEC",
                        help="dataset to replay (default sessions:../shared/data/diginetica)")
    parser.add_argument("--registry", type=Path, metavar="DIR",
                        help="serve this model registry (default: the cached bench model)")
    parser.add_argument("--no-model", action="store_true",
                        help="serve no model (measures the fallback lists)")
    parser.add_argument("--train-epochs", type=int, default=1,
                        help="epochs of the bench model if it must be trained (default 1)")
    parser.add_argument("--targets", default="pipeline,faust_passthrough,aiokafka_passthrough",
                        help="comma-separated subset of the three targets to measure")
    parser.add_argument("--concurrency", type=int, default=1000,
                        help="shoppers with an open session at once (default 1000)")
    parser.add_argument("--profile", type=Path, metavar="PATH",
                        help="py-spy the worker during the throughput phase into PATH "
                             "(.svg flame graph, .json speedscope, else raw stacks)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true",
                        help="keep the work folder (logs) and the run's topics")
    parser.add_argument("--keep-broker", action="store_true",
                        help="leave a local broker this run started running")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stream_rec.core.durations import parse_duration_ms
    from stream_rec.tools.bench.benchmark import BenchPlan
    from stream_rec.tools.bench.report import format_text
    from stream_rec.tools.bench.runner import BenchOptions
    from stream_rec.tools.bench.runner import run as run_bench
    from stream_rec.tools.bench.soak import SoakPlan
    from stream_rec.tools.bench.workload import DEFAULT_DATA

    data = args.data or DEFAULT_DATA
    plan = BenchPlan(events=args.events, rate=args.rate, latency_events=args.latency_events,
                     warmup_events=args.warmup_events, concurrency=args.concurrency, data=data,
                     seed=args.seed, targets=tuple(t.strip() for t in args.targets.split(",")),
                     profile=args.profile)
    soak = None
    if args.soak:
        soak = SoakPlan(duration_s=parse_duration_ms(args.soak) / 1000.0, rate=args.rate,
                        sample_s=args.sample, warmup_events=args.warmup_events,
                        concurrency=args.concurrency, data=data, seed=args.seed)
    options = BenchOptions(plan=plan, soak=soak, state_users=args.state_users,
                           broker=args.broker, registry=args.registry,
                           use_model=not args.no_model, train_epochs=args.train_epochs,
                           keep=args.keep, keep_broker=args.keep_broker)
    result = run_bench(options)
    print(json.dumps(result) if args.json else format_text(result), flush=True)
    return 0
