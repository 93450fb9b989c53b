"""`stream-rec bench-rerank`: time the re-rankers on lists shaped like the worker's."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from stream_rec.commands import _flags as f
from stream_rec.config import Settings, env_name, load_settings
from stream_rec.rerank.policy import DEFAULT_DPP_THETA


def register(subparsers: Any, settings: Settings) -> None:
    """Add the ``bench-rerank`` subcommand."""
    p = f.add_command(
        subparsers, "bench-rerank", "time the re-rankers (DPP, MMR, a naive greedy) per list",
        "Times re-ranking K of M candidates per list: fast greedy DPP, a greedy that "
        "recomputes log-determinants each step, MMR, and DPP through the batched entry "
        "point. Medians in microseconds per list, end to end from raw scores and vectors.")
    f.add_json(p)
    p.add_argument("--dim", metavar=f.N, type=f.count(1), default=100,
                   help="item vector dimension (default %(default)s)")
    p.add_argument("--pool", metavar=f.N, type=f.setting("candidate_pool"),
                   help=f"candidates per list ({f.shown(settings, 'candidate_pool')})")
    p.add_argument("--k", metavar=f.N, type=f.setting("list_length"),
                   help=f"items per list ({f.shown(settings, 'list_length')})")
    p.add_argument("--lists", metavar=f.N, type=f.count(1), default=300,
                   help="lists timed one by one (default %(default)s)")
    p.add_argument("--naive-lists", metavar=f.N, type=f.count(1), default=20,
                   help="lists for the naive greedy (default %(default)s)")
    p.add_argument("--batch", metavar=f.N, type=f.count(1), default=256,
                   help="lists per batched call (default %(default)s)")
    f.add_theta_lambda(p, theta_default=f"default: the theta of {env_name('rerank_policy')} "
                       f"when it names dpp, else {DEFAULT_DPP_THETA:g}")
    p.add_argument("--seed", metavar=f.N, type=f.count(), default=0,
                   help="seed of the random lists (default %(default)s)")
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
        lam=args.lambda_ if args.lambda_ is not None else RerankPolicy.parse("mmr").param,
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
