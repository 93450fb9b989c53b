"""How long re-ranking one list takes: fast greedy DPP, the naive DPP greedy, MMR, batched DPP.

Synthetic pools shaped like the worker's (200 scored candidates, 100-dimensional unit item
vectors, a few dozen categories, 20 items out). Every timing is end to end from the model's
raw arrays to the chosen positions (canonical ordering, standardising, the similarity kernel
and the greedy), per list, in microseconds; the summary is the median. Wall-clock time is the
headline (it is what a shopper waits); CPU time of the timing thread is reported beside it
because on a shared machine wall-clock also counts other processes' turns.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stream_rec.rerank.batch import rerank, rerank_batch
from stream_rec.rerank.dpp import dpp_shrinkage, log_det_weight
from stream_rec.rerank.naive import naive_dpp_greedy
from stream_rec.rerank.policy import DEFAULT_MMR_LAMBDA, RerankPolicy
from stream_rec.rerank.similarity import (
    DEFAULT_CATEGORY_WEIGHT,
    similarity_kernel,
    standardise_relevance,
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BenchConfig:
    """What to time. Sizes are counts of items or lists."""

    pool: int = 200
    k: int = 20
    dim: int = 100
    categories: int = 40
    lists: int = 300
    naive_lists: int = 20
    batch: int = 256
    batch_repeats: int = 5
    theta: float = 0.5
    lam: float = DEFAULT_MMR_LAMBDA
    category_weight: float = DEFAULT_CATEGORY_WEIGHT
    seed: int = 0


@dataclass(frozen=True)
class Pools:
    """B synthetic candidate pools: scores, unit vectors, keys and categories."""

    relevance: NDArray[np.float32]
    vectors: NDArray[np.float32]
    keys: NDArray[np.int64]
    categories: NDArray[np.int64]


def synthetic_pools(n_lists: int, cfg: BenchConfig, seed: int) -> Pools:
    """Pools whose vectors cluster by category, as a trained model's embeddings do."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(cfg.categories, cfg.dim))
    cats = rng.integers(0, cfg.categories, size=(n_lists, cfg.pool))
    vecs = centres[cats] + rng.normal(size=(n_lists, cfg.pool, cfg.dim))
    vecs /= np.linalg.norm(vecs, axis=2, keepdims=True)
    rel = np.sort(rng.gumbel(size=(n_lists, cfg.pool)) * 2.0, axis=1)[:, ::-1]
    keys = rng.permuted(np.tile(np.arange(cfg.pool, dtype=np.int64), (n_lists, 1)), axis=1)
    return Pools(np.ascontiguousarray(rel, dtype=np.float32), vecs.astype(np.float32), keys, cats)


def naive_rerank(
    relevance: NDArray[np.float32],
    vectors: NDArray[np.float32],
    keys: NDArray[np.int64],
    k: int,
    theta: float,
    categories: NDArray[np.int64],
    category_weight: float,
) -> NDArray[np.int64]:
    """One list through the same preparation as :func:`rerank`, then the naive greedy."""
    rel = np.asarray(relevance, dtype=np.float64)
    order = np.lexsort((keys, -rel))
    allowed = np.ones(rel.shape[0], dtype=bool)
    z = standardise_relevance(rel[order][None], allowed[None])[0]
    shrink = dpp_shrinkage(k)
    kernel = similarity_kernel(
        vectors[order][None], categories[order][None], category_weight, shrink=shrink
    )
    picked = naive_dpp_greedy(kernel.matrix()[0], z, allowed, k, log_det_weight(theta, shrink))
    return order[picked[picked >= 0]]


def _time_lists(run_one: Callable[[int], Any], n: int) -> tuple[list[float], list[float]]:
    """Per-call wall and thread-CPU times, in microseconds."""
    wall, cpu = [], []
    for i in range(n):
        w0, c0 = time.perf_counter(), time.thread_time()
        run_one(i)
        cpu.append((time.thread_time() - c0) * 1e6)
        wall.append((time.perf_counter() - w0) * 1e6)
    return wall, cpu


def run_bench(cfg: BenchConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Time all four ways of re-ranking; returns the JSON-ready summary."""
    say = progress or (lambda _msg: None)
    pools = synthetic_pools(max(cfg.lists, cfg.naive_lists), cfg, cfg.seed)
    dpp = RerankPolicy("dpp", cfg.theta)
    mmr = RerankPolicy("mmr", cfg.lam)

    def single(policy: RerankPolicy) -> Callable[[int], Any]:
        def one(i: int) -> Any:
            return rerank(
                pools.relevance[i],
                pools.vectors[i],
                pools.keys[i],
                cfg.k,
                policy,
                pools.categories[i],
                category_weight=cfg.category_weight,
            )

        return one

    for i in range(min(20, cfg.lists)):  # warm caches and numpy's allocator
        single(dpp)(i)
        single(mmr)(i)
    say(f"fast greedy DPP: {cfg.lists} lists of {cfg.k} from {cfg.pool}")
    dpp_wall, dpp_cpu = _time_lists(single(dpp), cfg.lists)
    say(f"MMR: {cfg.lists} lists")
    mmr_wall, mmr_cpu = _time_lists(single(mmr), cfg.lists)

    say(f"naive DPP greedy (log-determinants recomputed each step): {cfg.naive_lists} lists")
    naive_out: list[NDArray[np.int64]] = []

    def naive_one(i: int) -> None:
        naive_out.append(
            naive_rerank(
                pools.relevance[i],
                pools.vectors[i],
                pools.keys[i],
                cfg.k,
                cfg.theta,
                pools.categories[i],
                cfg.category_weight,
            )
        )

    naive_wall, naive_cpu = _time_lists(naive_one, cfg.naive_lists)
    agree = sum(np.array_equal(got, single(dpp)(i)) for i, got in enumerate(naive_out))

    say(f"batched DPP: {cfg.batch_repeats} calls of {cfg.batch} lists")
    batch = synthetic_pools(cfg.batch, cfg, cfg.seed + 1)

    def batched(_i: int) -> Any:
        return rerank_batch(
            batch.relevance,
            batch.vectors,
            batch.keys,
            cfg.k,
            dpp,
            batch.categories,
            category_weight=cfg.category_weight,
        )

    batched(0)
    b_wall, b_cpu = _time_lists(batched, cfg.batch_repeats)

    def med(xs: list[float], per: int = 1) -> float:
        return round(float(np.median(xs)) / per, 1)

    return {
        "dpp_us_per_list": med(dpp_wall),
        "naive_dpp_us_per_list": med(naive_wall),
        "mmr_us_per_list": med(mmr_wall),
        "batched_dpp_us_per_list": med(b_wall, cfg.batch),
        "cpu_us_per_list": {
            "dpp": med(dpp_cpu),
            "naive_dpp": med(naive_cpu),
            "mmr": med(mmr_cpu),
            "batched_dpp": med(b_cpu, cfg.batch),
        },
        "dpp_p90_us_per_list": round(float(np.percentile(dpp_wall, 90)), 1),
        "naive_speedup": round(float(np.median(naive_wall)) / max(med(dpp_wall), 1e-9), 1),
        "naive_agreement": f"{agree}/{cfg.naive_lists}",
        "pool": cfg.pool,
        "k": cfg.k,
        "dim": cfg.dim,
        "categories": cfg.categories,
        "lists": cfg.lists,
        "naive_lists": cfg.naive_lists,
        "batch": cfg.batch,
        "dpp_policy": str(dpp),
        "mmr_policy": str(mmr),
        "category_weight": cfg.category_weight,
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
    }
