"""`stream-rec bench-core` end to end: data, catalog, model, the measured events, memory.

The steps run in the order a worker's start runs them, each measured on its own
(``startup_cost``): the catalog read, the model load and swap, then the events through the
worker's per-batch code (``core_cpu``), then a hot swap to a second copy of the model.
"""

from __future__ import annotations

import gc
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from stream_rec.config import Settings, load_settings
from stream_rec.errors import UserError
from stream_rec.serving.recommender import Recommender
from stream_rec.tools.bench.catalog_churn import catalog_churn
from stream_rec.tools.bench.model import current_version, ensure_bench_model, training_record
from stream_rec.tools.bench.startup_cost import (
    artifact_mb,
    hot_swap,
    load_model,
    memory_now,
    read_catalog,
    reset_peak_memory,
    swap_in,
)
from stream_rec.tools.bench.synthetic_catalog import SyntheticConfig
from stream_rec.tools.bench.workload import DEFAULT_DATA, Workload


@dataclass(frozen=True)
class CoreOptions:
    """What `stream-rec bench-core` measures; see its ``--help``. Counts are events."""

    events: int = 6000
    warmup_events: int = 2000
    batch: int | None = None  # None: the batch_max_events setting
    data: str | None = None  # None: DEFAULT_DATA, unless catalog_items
    catalog_items: int | None = None  # a synthetic catalog of this many items instead of data
    registry: Path | None = None  # None: the cached bench model, trained if needed
    use_model: bool = True
    train_epochs: int = 1
    concurrency: int = 1000
    seed: int = 0
    hot_swap: bool = True  # also load a second copy of the model and swap to it


def _source(options: CoreOptions, settings: Settings) -> tuple[str, Workload, Path | None]:
    """(data spec, workload, registry to serve or None) for the options."""
    from stream_rec.tools.bench.catalog_data import (
        catalog_spec,
        catalog_workload,
        ensure_catalog_data,
        ensure_catalog_model,
    )
    from stream_rec.tools.bench.workload import load_workload

    registry = options.registry
    if options.catalog_items is not None:
        config = SyntheticConfig(n_items=options.catalog_items)
        folder = ensure_catalog_data(config)
        if registry is None and options.use_model:
            registry = ensure_catalog_model(config, options.train_epochs)
        return catalog_spec(config), catalog_workload(folder), registry if \
            options.use_model else None
    data = options.data or DEFAULT_DATA
    if registry is None and options.use_model:
        registry = ensure_bench_model(data, options.train_epochs)
    return data, load_workload(data, settings), registry if options.use_model else None


def run_bench_core(options: CoreOptions) -> dict[str, Any]:
    """Measure, and return the one JSON-able result object."""
    from threadpoolctl import threadpool_limits

    from stream_rec.core.trending import Trending
    from stream_rec.offline.progress import Progress
    from stream_rec.tools.bench.core_cpu import run_core
    from stream_rec.tools.bench.workload import ShopperStream, catalog_messages
    from stream_rec.worker.heap import settle
    from stream_rec.worker.runtime import batch_config, recommender_config

    settings = load_settings()
    threadpool_limits(settings.blas_threads)  # as the worker sets them
    data, workload, registry = _source(options, settings)
    if registry is not None:
        # Imported before the memory is first read, as a worker imports them at its start:
        # the model's memory is then the model's alone.
        import onnxruntime  # noqa: F401

        import stream_rec.worker.models  # noqa: F401
    version = None if registry is None else current_version(registry)
    if registry is not None and version is None:
        raise UserError(f"{registry} holds no model version to serve")
    messages = list(catalog_messages(workload))  # what the bench puts on the catalog topic
    catalog_items = len(workload.catalog)
    workload = replace(workload, attributes={})  # the replay needs only the sessions
    recommender = Recommender(recommender_config(settings),
                              trending=Trending(settings.trending_half_life_s * 1000.0))
    start = _load(recommender, messages, settings, registry, version)
    del messages
    events = ShopperStream(workload, "core", concurrency=options.concurrency,
                           seed=options.seed).take(options.warmup_events + options.events,
                                                   "core")
    if settings.gc_freeze:
        settle("loading")  # as the worker does once its catalog and model are in
    reset_peak_memory()
    bar = Progress(len(events), "bench-core")
    batch = options.batch or settings.batch_max_events
    result = run_core(recommender, events, batch=batch, warmup=options.warmup_events,
                      config=batch_config(settings),
                      progress=lambda done, _total: bar.update(done - bar.done))
    bar.close()
    after_run = memory_now()
    one_batch = events[:batch]  # served again after each catalog change
    churn = catalog_churn(recommender, lambda: run_core(
        recommender, one_batch, batch=batch, warmup=0, config=batch_config(settings)))
    swap = None
    if options.hot_swap and registry is not None and version is not None:
        some = events[: 2 * batch]  # two batches: what the worker serves meanwhile
        swap = hot_swap(recommender, settings, registry, version,
                        lambda: run_core(recommender, some, batch=batch, warmup=0,
                                         config=batch_config(settings)))
    out: dict[str, Any] = {
        **result.to_dict(), "model_version": version, "catalog_items": catalog_items,
        "data": data,
        **start.seconds,
        "rss_mb": {**start.rss_mb, "after_run": round(after_run.rss_mb, 1),
                   "peak_run": round(after_run.peak_mb, 1)},
        "hot_swap": swap,
        "catalog_churn": churn,
    }
    if registry is not None and version is not None:
        out.update(_model_facts(registry, version))
    return out


@dataclass
class _Loaded:
    """How long the catalog and the model took to load, and the memory each added (MB)."""

    seconds: dict[str, float | None]
    rss_mb: dict[str, float]


def _load(recommender: Recommender, messages: list[tuple[bytes, bytes]], settings: Settings,
          registry: Path | None, version: str | None) -> _Loaded:
    """Read the catalog into ``recommender``, then load and swap in the model, if any."""
    gc.collect()
    start = memory_now()
    catalog_s = read_catalog(recommender, messages, freeze=settings.gc_freeze)
    gc.collect()
    # Read while the messages are still alive, so the catalog cannot have reused their memory.
    with_catalog = memory_now()
    model_s = swap_s = None
    if registry is not None and version is not None:
        model, model_s = load_model(settings, registry, version, recommender)
        swap_s = swap_in(recommender, model)
    with_model = memory_now()
    return _Loaded(
        {"catalog_read_s": round(catalog_s, 2),
         "model_load_s": None if model_s is None else round(model_s, 2),
         "model_swap_s": None if swap_s is None else round(swap_s, 2)},
        {"start": round(start.rss_mb, 1),
         "catalog": round(with_catalog.rss_mb - start.rss_mb, 1),
         "model": round(with_model.rss_mb - with_catalog.rss_mb, 1)})


def _model_facts(registry: Path, version: str) -> dict[str, Any]:
    """The served artifact's size on disk, and how long training it took (when known)."""
    from stream_rec.model.artifact import MANIFEST
    from stream_rec.model.registry import open_registry

    folder = open_registry(registry).path(version)
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    fit_s = manifest.get("training", {}).get("wall_time_s")
    # The record covers the whole `stream-rec train` (reading, fitting, export and parity
    # check); the manifest's time covers the fitting only.
    return {"embedding_dim": manifest.get("model", {}).get("embedding_dim"),
            "artifact_mb": artifact_mb(folder),
            "training": {**(training_record(registry) or {}), "fit_s": fit_s}}
