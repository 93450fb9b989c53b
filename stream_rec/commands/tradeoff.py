"""`stream-rec tradeoff`: sweep DPP's theta and MMR's lambda, measure relevance vs diversity."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``tradeoff`` subcommand."""
    p = subparsers.add_parser(
        "tradeoff",
        help="relevance (P@K) vs diversity (ILD@K) for DPP and MMR over their parameters",
        description=(
            "Scores the test split once through the ONNX model, then re-ranks the top "
            "candidates with DPP for N values of theta and MMR for N values of lambda, and "
            "reports evaluate's metrics for each, plus the no-re-ranking point."
        ),
    )
    p.add_argument(
        "--model",
        default="latest",
        metavar="DIR_OR_VERSION",
        help="artifact folder, or a registry version, 'current' or 'latest'",
    )
    p.add_argument("--registry", metavar="DIR", help="model registry folder")
    p.add_argument(
        "--data",
        required=True,
        metavar="SPEC",
        help="categories:PATH, events:PATH, sessions:PATH or kafka:TOPIC",
    )
    p.add_argument("--points", type=int, default=10, help="parameter values per method")
    p.add_argument("--k", type=int, help="list length K (default: setting eval_k)")
    p.add_argument(
        "--pool",
        type=int,
        default=None,
        help="candidates re-ranked per case (default: setting candidate_pool)",
    )
    p.add_argument("--plot", metavar="FILE.png", help="write the trade-off plot here")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="onnxruntime threads")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Score once, sweep, print (and plot)."""
    from pathlib import Path

    from stream_rec.config import load_settings
    from stream_rec.datasets import load_dataset
    from stream_rec.errors import UserError
    from stream_rec.model.artifact import ArtifactError, load_artifact
    from stream_rec.model.registry import FileRegistry, RegistryError
    from stream_rec.offline.evaluate import metrics_for, prepare_pools
    from stream_rec.offline.tradeoff import plot_tradeoff, run_sweep, summarise, sweep_policies

    def say(msg: str) -> None:
        print(f"tradeoff: {msg}", file=sys.stderr, flush=True)

    if args.points < 1:
        raise UserError("--points must be at least 1")
    settings = load_settings(registry_dir=args.registry)
    k = args.k or settings.eval_k
    pool = max(args.pool or settings.candidate_pool, k)
    try:
        if Path(args.model).is_dir():
            artifact = load_artifact(args.model)
        else:
            artifact = FileRegistry(settings.registry_dir).load(args.model)
    except (ArtifactError, RegistryError) as exc:
        raise UserError(str(exc)) from None
    dataset = load_dataset(args.data, settings)
    say(f"scoring the test split of {args.data} with model {artifact.version} (once)")
    pools = prepare_pools(
        artifact,
        dataset,
        pool=pool,
        k=k,
        batch_size=settings.eval_batch_size,
        threads=args.threads,
        progress=say,
    )
    policies = sweep_policies(args.points)
    weight = settings.rerank_category_weight  # the worker's similarity, not a fixed one
    points = run_sweep(
        lambda policy: metrics_for(pools, policy, k, category_weight=weight),
        policies,
        progress=say,
    )
    summary = summarise(points, k)
    if args.plot:
        plot_tradeoff(
            points,
            args.plot,
            k,
            title=f"{args.data.split('/')[-1]}: relevance vs diversity, top {k} of {pool}",
        )
        say(f"plot written to {args.plot}")
    result = {
        "points": points,
        "summary": summary,
        "model_version": artifact.version,
        "data": args.data,
        "k": k,
        "pool": pool,
        "category_weight": weight,
    }
    if args.json:
        print(json.dumps(result))
        return 0
    p_key, d_key = f"P@{k}", f"ILD@{k}"
    print(f"model {artifact.version} on {args.data}: top {k} of {pool}")
    print(f"  {'method':6s} {'param':>6s} {p_key:>8s} {d_key:>8s}")
    for p in points:
        ild = p.get(d_key, float("nan"))
        print(f"  {p['method']:6s} {p['param']:6.2f} {p[p_key]:8.2f} {ild:8.4f}")
    if "thetas_meeting_bar" in summary:
        print(
            f"  thetas meeting the bar (ILD +25 %, P -3 % at most): {summary['thetas_meeting_bar']}"
        )
        print(
            f"  DPP at least as diverse as MMR at matched {p_key}: "
            f"{summary['dpp_at_least_as_diverse_as_mmr_at_matched_P']}"
        )
    return 0
