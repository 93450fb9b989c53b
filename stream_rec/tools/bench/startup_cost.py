"""What a catalog's size costs a worker before and beside its per-event work: time to read the
catalog and to load a model, and resident memory, measured in this process.

The worker does the same steps, spread over its start: it applies every catalog message
(``parse_catalog_item`` then ``Recommender.upsert_item``), loads and smoke-tests the registry's
model (``worker.models.load_checked``) and swaps it in (``Recommender.swap_model``, which
builds the model's item table over the catalog). Here each step runs alone, timed by the wall
clock, without Kafka (a real worker also fetches and decodes the catalog's messages, then
loads the model, as here). A hot swap loads a second copy of the model while the
first still serves, as an announced new version is, and the peak resident memory of that
moment is the figure a worker must fit into.

Resident memory is this process's (``/proc/self/status``): Python, numpy and onnxruntime
like a worker's, without Faust, aiokafka and RocksDB.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from stream_rec.config import Settings
from stream_rec.core.catalog import parse_catalog_item
from stream_rec.errors import UserError
from stream_rec.model import ServedModel
from stream_rec.serving.recommender import Recommender
from stream_rec.tools.bench.probes import Memory, read_memory, reset_peak

MB = 2**20


def memory_now() -> Memory:
    """This process's resident memory now and its peak (MB)."""
    return read_memory(os.getpid())


def reset_peak_memory() -> bool:
    """Start this process's peak (VmHWM) again; see ``probes.reset_peak``."""
    return reset_peak(os.getpid())


def read_catalog(recommender: Recommender, messages: Iterable[tuple[bytes, bytes]],
                 freeze: bool = True) -> float:
    """Apply every catalog message as the worker's catalog feed does (``freeze``: freezing
    the heap as it grows, as the worker does with ``gc_freeze``); wall seconds."""
    from stream_rec.worker.heap import GrowthFreezer

    growth = GrowthFreezer() if freeze else None
    started = time.perf_counter()
    for key, value in messages:
        recommender.upsert_item(parse_catalog_item(key.decode(), value))
        if growth is not None:
            growth.grew()
    return time.perf_counter() - started


def load_model(settings: Settings, registry: Path, version: str,
               recommender: Recommender | None = None) -> tuple[ServedModel, float]:
    """The model, loaded and smoke-tested as a worker loads it (sharing the id strings of
    ``recommender``'s catalog, as a worker does); and the wall seconds it took."""
    from stream_rec.worker.models import ModelRefused, load_checked

    started = time.perf_counter()
    same_ids = None if recommender is None else recommender.catalog.shared_id
    try:
        model = load_checked(settings.with_overrides(registry_dir=str(registry)), version,
                             same_ids)
    except ModelRefused as exc:
        raise UserError(f"the worker would refuse this model: {exc}") from exc
    if model is None:
        raise UserError(f"{registry} holds no model version to serve")
    return model, time.perf_counter() - started


def swap_in(recommender: Recommender, model: ServedModel) -> float:
    """Serve ``model`` (its item table is built over the catalog now); wall seconds."""
    started = time.perf_counter()
    recommender.swap_model(model)
    model.keep_in_memory()  # as the worker does once the old model is let go
    return time.perf_counter() - started


def hot_swap(recommender: Recommender, settings: Settings, registry: Path, version: str,
             serve: Callable[[], object]) -> dict[str, float]:
    """Load the model again while the current one serves, swap it in, and let the old one
    go, as a worker does for a new version; seconds and the peak resident MB meanwhile.

    ``serve()`` runs a few batches: once with the new model loaded beside the serving one
    (the worker keeps serving while it loads), once after the swap (the new item table's
    caches are built by its first batches), so the peak counts a batch's own memory too.
    """
    reset_peak_memory()
    before = memory_now().rss_mb
    model, load_s = load_model(settings, registry, version, recommender)
    serve()
    swap_s = swap_in(recommender, model)  # the old model is let go here
    serve()
    peak = memory_now().peak_mb
    return {"load_s": round(load_s, 2), "swap_s": round(swap_s, 2),
            "rss_before_mb": round(before, 1), "peak_rss_mb": round(peak, 1),
            "peak_over_before_mb": round(peak - before, 1)}


def artifact_mb(folder: Path) -> dict[str, float]:
    """Size on disk of each file of a model artifact, and their total (MB)."""
    sizes = {p.name: round(p.stat().st_size / MB, 1) for p in sorted(folder.iterdir())
             if p.is_file()}
    return {**sizes, "total": round(sum(sizes.values()), 1)}
