"""`stream-rec evaluate`: next-item metrics of a model version over a dataset's test split."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from stream_rec.commands import _flags as f
from stream_rec.config import Settings, load_settings


def register(sub: Any, settings: Settings) -> None:
    """Add the ``evaluate`` subcommand."""
    parser = f.add_command(
        sub, "evaluate", "offline next-item metrics of a model on a dataset's test split",
        "Scores every next-item case of the test split through the ONNX model, as the worker "
        "would, optionally re-ranks the candidates, and reports relevance (P@K, MRR@K, "
        "NDCG@K), catalog coverage and, when items have categories, diversity (ILD@K).")
    f.add_model(parser, settings)
    f.add_data(parser, "the dataset whose test split is scored", required=True)
    parser.add_argument("--k", metavar=f.N, type=f.setting("eval_k"),
                        help=f"list length K ({f.shown(settings, 'eval_k')})")
    f.add_json(parser, "the metrics")
    parser.add_argument("--rerank", choices=("none", "dpp", "mmr"), default="none",
                        help="re-rank the candidates before cutting the list at K "
                             "(default %(default)s)")
    f.add_theta_lambda(parser)
    parser.add_argument("--pool", metavar=f.N, type=f.setting("candidate_pool"),
                        help="candidates re-ranked per case "
                             f"({f.shown(settings, 'candidate_pool')})")
    parser.add_argument(
        "--retrieval", choices=("all", "worker"), default="all",
        help="all: score every catalog item (the model's own ranking); worker: retrieve the "
             "pool as the worker does, exactly and through the worker's search (the "
             "artifact's graph; else the 8-bit scan of retrieval_scan int8; else a graph "
             "built for the run), score only the pool, and print both with the search's "
             "recall@pool (default %(default)s)")
    parser.add_argument("--ef-search", metavar=f.N, type=f.setting("retrieval_ef_search"),
                        help="--retrieval worker: the index search's beam width "
                             f"({f.shown(settings, 'retrieval_ef_search')})")
    f.add_threads(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Score the test split and print the metrics."""
    from pathlib import Path

    from stream_rec.datasets import load_dataset
    from stream_rec.errors import UserError
    from stream_rec.model.artifact import ArtifactError, load_artifact
    from stream_rec.model.registry import RegistryError, open_registry
    from stream_rec.offline.evaluate import prepare_pools, summarise
    from stream_rec.rerank import RerankPolicy

    settings = load_settings(registry_dir=args.registry)
    k = args.k or settings.eval_k
    pool = args.pool or settings.candidate_pool
    try:
        if Path(args.model).is_dir():
            artifact = load_artifact(args.model)
        else:
            artifact = open_registry(settings).load(args.model)
    except (ArtifactError, RegistryError) as exc:
        raise UserError(str(exc)) from None
    try:
        param = {"none": 0.0, "dpp": args.theta, "mmr": args.lambda_}[args.rerank]
        policy = (RerankPolicy.parse(args.rerank) if param is None
                  else RerankPolicy(args.rerank, param))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    dataset = load_dataset(args.data, settings)
    if args.retrieval == "worker":
        metrics = _through_retrieval(artifact, dataset, settings, args, policy, max(pool, k), k)
    else:
        pools = prepare_pools(artifact, dataset, pool=max(pool, k), k=k,
                              batch_size=settings.eval_batch_size, threads=args.threads)
        # The worker's similarity, so offline lists are the ones the worker would send.
        metrics = summarise(pools, policy, k, category_weight=settings.rerank_category_weight)
    metrics["model_version"] = artifact.version
    metrics["rerank"] = policy.to_dict()
    if args.json:
        print(json.dumps(metrics, sort_keys=True))
    else:
        print(f"model {artifact.version} on {args.data} ({metrics['n_cases']:,} cases, "
              f"re-ranking {policy}):", file=sys.stdout)
        for key, value in metrics.items():
            if key not in ("n_cases", "model_version", "rerank"):
                print(f"  {key}: {value}")
    return 0


def _through_retrieval(artifact: Any, dataset: Any, settings: Settings,
                       args: argparse.Namespace, policy: Any, pool: int, k: int
                       ) -> dict[str, Any]:
    """Metrics of the approximate-retrieval path, with the exact path's beside them
    (``exact_retrieval``) and the index's recall of the exact pool."""
    from stream_rec.offline.evaluate import summarise
    from stream_rec.offline.retrieval_path import retrieval_pools

    found = retrieval_pools(artifact, dataset, pool=pool, k=k,
                            batch_size=settings.eval_batch_size,
                            ef_search=args.ef_search or settings.retrieval_ef_search,
                            threads=args.threads, kind=settings.retrieval_index_kind,
                            scan=settings.retrieval_scan)
    weight = settings.rerank_category_weight
    metrics = summarise(found.index, policy, k, category_weight=weight)
    metrics["exact_retrieval"] = summarise(found.exact, policy, k, category_weight=weight)
    metrics[f"recall@{pool}"] = round(found.recall, 4)
    metrics["index"] = found.index_info
    return metrics
