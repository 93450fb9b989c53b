"""`stream-rec tradeoff`: sweep DPP's theta and MMR's lambda, measure relevance vs diversity."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from stream_rec.commands import _flags as f
from stream_rec.config import Settings


def register(subparsers: Any, settings: Settings) -> None:
    """Add the ``tradeoff`` subcommand."""
    p = f.add_command(
        subparsers, "tradeoff", "relevance vs diversity of DPP and MMR over their parameters",
        "Scores the test split once through the ONNX model, then re-ranks the top "
        "candidates with DPP for N values of theta and MMR for N values of lambda, and "
        "reports evaluate's metrics for each, plus the no-re-ranking point: the data behind "
        "the choice of STREAM_REC_RERANK_POLICY.")
    f.add_model(p, settings)
    f.add_data(p, "the dataset whose test split is scored", required=True)
    p.add_argument("--points", metavar=f.N, type=f.count(1), default=10,
                   help="parameter values per method (default %(default)s)")
    p.add_argument("--k", metavar=f.N, type=f.setting("eval_k"),
                   help=f"list length K ({f.shown(settings, 'eval_k')})")
    p.add_argument("--pool", metavar=f.N, type=f.setting("candidate_pool"),
                   help="candidates re-ranked per case "
                        f"({f.shown(settings, 'candidate_pool')})")
    p.add_argument("--plot", metavar=f.FILE, help="write the trade-off plot to this .png file")
    f.add_json(p, "the points and their summary")
    f.add_threads(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Score once, sweep, print (and plot)."""
    from pathlib import Path

    from stream_rec.config import load_settings
    from stream_rec.datasets import load_dataset
    from stream_rec.errors import UserError
    from stream_rec.model.artifact import ArtifactError, load_artifact
    from stream_rec.model.registry import RegistryError, open_registry
    from stream_rec.offline.evaluate import metrics_for, prepare_pools
    from stream_rec.offline.tradeoff import plot_tradeoff, run_sweep, summarise, sweep_policies

    def say(msg: str) -> None:
        print(f"tradeoff: {msg}", file=sys.stderr, flush=True)

    settings = load_settings(registry_dir=args.registry)
    k = args.k or settings.eval_k
    pool = max(args.pool or settings.candidate_pool, k)
    try:
        if Path(args.model).is_dir():
            artifact = load_artifact(args.model)
        else:
            artifact = open_registry(settings).load(args.model)
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
