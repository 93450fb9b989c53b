"""`stream-rec bench-retrieval`: exact retrieval against approximate indexes, same queries."""

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
    """Add the ``bench-retrieval`` subcommand."""
    parser = f.add_command(
        sub, "bench-retrieval", "exact retrieval against approximate nearest-neighbour indexes",
        "Builds the model's query vectors for real session prefixes of the dataset and "
        "retrieves the top K items for each exactly (as the worker does) and with each "
        "installed approximate index (faiss HNSW and IVF, usearch HNSW: pip install "
        "'stream-rec[ann]'); prints build time, CPU per query on one thread and recall@K "
        "against exact.")
    f.add_data(parser, "dataset whose sessions give the queries", default=f"default {BENCH_DATA}")
    f.add_registry(parser, settings, "the model registry whose current model is measured",
                   shown_default="default: the cached bench model, trained on first use")
    parser.add_argument("--queries", metavar=f.N, type=f.count(1), default=3000,
                        help="session prefixes to query with (default %(default)s)")
    parser.add_argument("--k", metavar=f.N, type=f.count(1), default=200,
                        help="items retrieved per query (default %(default)s, the worker's "
                             "candidate_pool)")
    parser.add_argument("--batch", metavar=f.N, type=f.count(1), default=256,
                        help="queries per search call (default %(default)s; the worker's "
                             "batches are as small as 1-4 shoppers at low rates)")
    parser.add_argument("--seed", metavar=f.N, type=f.count(), default=0,
                        help="seed of the prefixes drawn (default %(default)s)")
    parser.add_argument("--shipped-only", action="store_true",
                        help="measure only the approximate-retrieval index the model's "
                             "artifact ships (at several efSearch), building none (at a "
                             "million items each build takes minutes)")
    f.add_json(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Measure and print one row per index."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    from stream_rec.core.events import TYPE_CODE
    from stream_rec.errors import UserError
    from stream_rec.model import load_served_model
    from stream_rec.model.registry import open_registry
    from stream_rec.serving.scoring import ModelScorer
    from stream_rec.tools.bench.model import current_version, ensure_bench_model
    from stream_rec.tools.bench.retrieval import candidates, compare, shipped_candidates
    from stream_rec.tools.bench.workload import DEFAULT_DATA, load_workload

    threadpool_limits(1)  # one thread, as the worker's retrieval (blas_threads)
    settings = load_settings()
    data = args.data or DEFAULT_DATA
    registry = Path(args.registry) if args.registry else ensure_bench_model(data, 1)
    version = None if registry is None else current_version(registry)
    if registry is None or version is None:
        raise UserError("no model to measure: pass --registry, or install the training extra "
                        "so the bench model can be trained")
    model = load_served_model(open_registry(registry).path(str(version)), threads=1)
    workload = load_workload(data, settings)
    rng = np.random.default_rng(args.seed)
    histories = []
    for session in workload.sessions[: args.queries]:
        cut = int(rng.integers(1, len(session.actions) + 1))
        histories.append([(item, TYPE_CODE.get(kind, 0))
                          for item, kind in session.actions[:cut]][-settings.history_length:])
    scorer = ModelScorer(model)
    queries = np.vstack([np.asarray(scorer.queries(histories[i:i + 256], {}).embedding,
                                    dtype=np.float32) for i in range(0, len(histories), 256)])
    vectors = np.ascontiguousarray(model.item_vectors, dtype=np.float32)
    indexes, notes = ([], []) if args.shipped_only else candidates()
    if model.ann is not None:
        indexes = shipped_candidates(model.ann) + indexes
    elif args.shipped_only:
        notes.append("the model's artifact ships no approximate-retrieval index")
    print(f"bench-retrieval: {len(vectors)} items x {vectors.shape[1]}, {len(queries)} queries, "
          f"k={args.k}, batches of {args.batch}", file=sys.stderr, flush=True)
    rows = compare(vectors, queries, args.k, indexes, batch=args.batch)
    out = {"items": len(vectors), "dim": int(vectors.shape[1]), "queries": len(queries),
           "k": args.k, "batch": args.batch, "model_version": version, "data": data,
           "results": rows, "notes": notes}
    if args.json:
        print(json.dumps(out), flush=True)
        return 0
    for row in rows:
        params = ", ".join(f"{k}={v}" for k, v in row["params"].items())
        print(f"{row['library']:14s} {params:34s} build {row['build_s']:6.1f} s  "
              f"{row['us_per_query']:8.1f} us/query  recall@{args.k} {row['recall_at_k']:.4f}")
    for note in notes:
        print(note)
    return 0
