"""`stream-rec bench-api`: the worker's HTTP API under load while it takes events, JSON out."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stream_rec.commands import _flags as f
from stream_rec.commands.bench import add_setup
from stream_rec.config import Settings

if TYPE_CHECKING:
    from stream_rec.tools.bench.api_run import ApiBenchOptions

# Spelled here so that `--help` need not import the benchmark (a unit test keeps them equal).
ENDPOINTS = ("stored", "rerank_dpp", "rerank_filtered", "new_shopper", "new_shopper_context",
             "similar", "similar_diverse")

BENCH_API_EPILOG = """\
endpoints (each at every --concurrency):
  stored               GET /users/ID/recommendations/
  rerank_dpp           GET /users/ID/recommendations/?n=20&policy=dpp:0.3
  rerank_filtered      GET /users/ID/recommendations/?n=20&category=C&exclude=A,B,C
  new_shopper          GET /users/never-seen-N/recommendations/
  new_shopper_context  GET /users/never-seen-N/recommendations/?context=ITEM
  similar              GET /items/ITEM/similar/?n=10
  similar_diverse      GET /items/ITEM/similar/?n=10&diverse=0.3

examples:
  stream-rec bench-api --json
  stream-rec bench-api --broker 127.0.0.1:19092 --requests 500 --concurrency 1,8
  stream-rec bench-api --endpoints rerank_dpp --request-rate 50 --concurrency 4
Worker settings come from STREAM_REC_* as for `stream-rec worker`."""


def _endpoints(raw: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    unknown = [n for n in names if n not in ENDPOINTS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"{raw!r}: expected a comma-separated subset of {','.join(ENDPOINTS)}")
    return names


def _levels(raw: str) -> tuple[int, ...]:
    from stream_rec.tools.bench.api import parse_concurrency

    try:
        return parse_concurrency(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{raw!r}: expected whole numbers >= 1 separated by ','") from None


def register(sub: Any, settings: Settings) -> None:
    """Add the ``bench-api`` subcommand."""
    parser = f.add_command(
        sub, "bench-api", "benchmark the worker's HTTP API while it takes events",
        "Starts one real worker (as `stream-rec bench` does), streams dataset events into it "
        "at --rate for the whole run, waits until shoppers have lists, then sends each "
        "endpoint --requests times from each number of --concurrency keep-alive clients, "
        "with shopper and item ids drawn from those seen. Prints per-request latency "
        "percentiles, requests/s, the events/s offered and handled meanwhile, and the "
        "worker's CPU per request. Everything binds to 127.0.0.1; progress goes to stderr.",
        epilog=BENCH_API_EPILOG)
    parser.add_argument("--rate", metavar=f.RATE, type=f.positive, default=200.0,
                        help="events per second streamed into the worker for the whole run "
                             "(default %(default)g)")
    parser.add_argument("--requests", metavar=f.N, type=f.count(1), default=2000,
                        help="requests per endpoint and concurrency (default %(default)s)")
    parser.add_argument("--concurrency", metavar=f.N, type=_levels, default=(1, 4, 16),
                        help="keep-alive clients sending at once, each number in turn, "
                             "separated by ',' (default 1,4,16)")
    parser.add_argument("--request-rate", metavar=f.RATE, type=f.positive,
                        help="send each cell's requests at this many a second, open loop "
                             "(latency counts from when a request was due); default: closed "
                             "loop, each client sends when its last request is answered")
    parser.add_argument("--cell-timeout", metavar=f.S, type=f.positive, default=60.0,
                        help="stop one endpoint at one concurrency after this many seconds "
                             "even if requests are left (default %(default)g)")
    parser.add_argument("--endpoints", metavar="TARGETS", type=_endpoints, default=ENDPOINTS,
                        help="comma-separated subset of the endpoints below (default: all)")
    parser.add_argument("--warmup-requests", metavar=f.N, type=f.count(), default=50,
                        help="unrecorded requests per endpoint before its first measurement "
                             "(default %(default)s)")
    parser.add_argument("--min-shoppers", metavar=f.N, type=f.count(1), default=500,
                        help="shoppers with a list before the first request "
                             "(default %(default)s)")
    f.add_json(parser)
    add_setup(parser, settings, "dataset whose events are streamed")
    parser.add_argument("--seed", metavar=f.N, type=f.count(), default=0,
                        help="seed of the events and of the ids requested "
                             "(default %(default)s)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work folder (the worker's log) and the run's topics")
    parser.add_argument("--keep-broker", action="store_true",
                        help="leave a local broker this run started running")
    parser.set_defaults(func=run)


def plan_from_args(args: argparse.Namespace) -> ApiBenchOptions:
    """The ``ApiBenchOptions`` that parsed flags ask for."""
    from stream_rec.tools.bench.api import ApiPlan
    from stream_rec.tools.bench.api_run import ApiBenchOptions
    from stream_rec.tools.bench.workload import DEFAULT_DATA

    plan = ApiPlan(endpoints=tuple(args.endpoints), concurrency=tuple(args.concurrency),
                   requests=args.requests, cell_timeout_s=args.cell_timeout,
                   warmup_requests=args.warmup_requests, request_rate=args.request_rate,
                   rate=args.rate,
                   min_shoppers=args.min_shoppers, seed=args.seed)
    return ApiBenchOptions(plan=plan, data=args.data or DEFAULT_DATA, broker=args.broker,
                           registry=Path(args.registry) if args.registry else None,
                           use_model=not args.no_model, train_epochs=args.train_epochs,
                           keep=args.keep, keep_broker=args.keep_broker)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print its result."""
    from stream_rec.tools.bench.api import format_table
    from stream_rec.tools.bench.api_run import run as run_bench

    result = run_bench(plan_from_args(args))
    print(json.dumps(result) if args.json else format_table(result), flush=True)
    return 0
