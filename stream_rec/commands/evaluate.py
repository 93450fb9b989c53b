"""`stream-rec evaluate`: next-item metrics of a model version over a dataset's test split."""

from __future__ import annotations

import argparse
import json
import os
import sys

from stream_rec.config import load_settings


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("evaluate", help="offline next-item metrics through the ONNX model")
    parser.add_argument("--model", default="latest", metavar="DIR_OR_VERSION",
                        help="artifact folder, or a registry version, 'current' or 'latest'")
    parser.add_argument("--registry", metavar="DIR", help="model registry folder")
    parser.add_argument("--data", required=True, metavar="SPEC",
                        help="sessions:PATH, categories:PATH, events:PATH or kafka:TOPIC")
    parser.add_argument("--k", type=int, help="list length K (default: setting eval_k)")
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument("--rerank", choices=("none", "dpp", "mmr"), default="none")
    parser.add_argument("--theta", type=float, help="DPP diversity weight, 0..1")
    parser.add_argument("--lambda", dest="lambda_", type=float,
                        help="MMR relevance weight, 0..1")
    parser.add_argument("--pool", type=int, default=200, help="candidates re-ranked per case")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="onnxruntime threads")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from stream_rec.datasets import load_dataset
    from stream_rec.errors import UserError
    from stream_rec.model.artifact import ArtifactError, load_artifact
    from stream_rec.model.registry import FileRegistry, RegistryError
    from stream_rec.offline.evaluate import prepare_pools, summarise
    from stream_rec.rerank import RerankPolicy

    settings = load_settings(registry_dir=args.registry)
    k = args.k or settings.eval_k
    try:
        if Path(args.model).is_dir():
            artifact = load_artifact(args.model)
        else:
            artifact = FileRegistry(settings.registry_dir).load(args.model)
    except (ArtifactError, RegistryError) as exc:
        raise UserError(str(exc)) from None
    try:
        param = {"none": 0.0, "dpp": args.theta, "mmr": args.lambda_}[args.rerank]
        policy = (RerankPolicy.parse(args.rerank) if param is None
                  else RerankPolicy(args.rerank, param))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    dataset = load_dataset(args.data, settings)
    pools = prepare_pools(artifact, dataset, pool=max(args.pool, k), k=k,
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
