"""`stream-rec bench-rerank`: time the re-rankers on lists shaped like the worker's."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from stream_rec.config import load_settings


def register(subparsers: Any) -> None:
    """Add the ``bench-rerank`` subcommand."""
    p = subparsers.add_parser(
        "bench-rerank",
        help="time fast greedy DPP vs the naive greedy, MMR and the batched entry point",
        description=(
            "Times re-ranking K of M candidates per list: fast greedy DPP, a greedy that "
            "recomputes log-determinants each step, MMR, and DPP through the batched entry "
            "point. Medians in microseconds per list, end to end from raw scores and vectors."
        ),
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--dim", type=int, default=100, help="item vector dimension (default 100)")
    p.add_argument("--pool", type=int, default=None, help="candidates per list (default: setting)")
    p.add_argument("--k", type=int, default=None, help="items per list (default: setting)")
    p.add_argument("--lists", type=int, default=300, help="lists timed one by one")
    p.add_argument("--naive-lists", type=int, default=20, help="lists for the naive greedy")
    p.add_argument("--batch", type=int, default=256, help="lists per batched call")
    p.add_argument("--theta", type=float, default=None, help="DPP theta (default: setting)")
    p.add_argument("--lambda", dest="lam", type=float, default=None, help="MMR lambda")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; progress on stderr, the result on stdout."""
    from stream_rec.rerank import RerankPolicy
    from stream_rec.tools.bench.rerank import BenchConfig, run_bench

    settings = load_settings()
    policy = RerankPolicy.parse(settings.rerank_policy)
    theta = (
        args.theta
        if args.theta is not None
        else (policy.param if policy.method == "dpp" else RerankPolicy.parse("dpp").param)
    )
    cfg = BenchConfig(
        pool=args.pool or settings.candidate_pool,
        k=args.k or settings.list_length,
        dim=args.dim,
        lists=args.lists,
        naive_lists=args.naive_lists,
        batch=args.batch,
        theta=theta,
        lam=args.lam if args.lam is not None else RerankPolicy.parse("mmr").param,
        category_weight=settings.rerank_category_weight,
        seed=args.seed,
    )
    result = run_bench(cfg, progress=lambda msg: print(f"bench-rerank: {msg}", file=sys.stderr))
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"re-ranking {cfg.k} of {cfg.pool} candidates, dim {cfg.dim} (median us per list)")
    for key in (
        "dpp_us_per_list",
        "naive_dpp_us_per_list",
        "mmr_us_per_list",
        "batched_dpp_us_per_list",
    ):
        print(f"  {key:26s} {result[key]:>10.1f}   (cpu {result['cpu_us_per_list'][key[:-12]]})")
    print(
        f"  fast DPP is {result['naive_speedup']}x the naive greedy; "
        f"same lists: {result['naive_agreement']}"
    )
    return 0
