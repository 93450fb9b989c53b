"""Model lifecycle in a worker: load, verify, smoke-score, warm, then swap in atomically.

Every worker tails ``model-updates`` itself (an announcement must reach all of them). Loading
happens in a thread, off the event loop, so events keep flowing on the old model; the swap is
one assignment between two batches. A version that fails any check is refused with a logged
reason and a metric, and the previous model keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import numpy as np
from aiokafka import ConsumerRecord

from stream_rec.config import Settings
from stream_rec.heap import settle
from stream_rec.model import (
    ArtifactError,
    FileRegistry,
    RegistryError,
    ServedModel,
    load_served_model,
)
from stream_rec.model.registry import VERSION_RE
from stream_rec.worker.runtime import WorkerRuntime

log = logging.getLogger(__name__)


class ModelRefused(Exception):
    """This model version must not be served; the message says why."""


def load_checked(settings: Settings, version: str | None) -> ServedModel | None:
    """Load ``version`` (default: the registry's current one) and prove it can score.

    Returns None when the registry has no current model yet.
    """
    registry = FileRegistry(settings.registry_dir)
    try:
        if version is None:
            version = registry.current()
            if version is None:
                return None
        model = load_served_model(registry.path(registry.resolve(version)),
                                  threads=settings.onnx_threads)
    except (ArtifactError, RegistryError, OSError, ValueError, KeyError) as exc:
        raise ModelRefused(f"version {version}: {exc}") from exc
    smoke_test(model)
    return model


def smoke_test(model: ServedModel, warm_rounds: int = 3) -> None:
    """Score a small batch the way the worker will; also warms onnxruntime's caches."""
    n_items = len(model.item_ids)
    if n_items == 0 or model.item_vectors.shape[0] != n_items:
        raise ModelRefused(f"version {model.version}: item vectors do not match the vocabulary")
    histories, candidates = model.sample_batch()
    try:
        for _ in range(warm_rounds):
            queries = model.query_vectors(histories)
            scores = model.score(histories, candidates, {})
    except Exception as exc:  # onnxruntime raises its own types for signature mismatches
        raise ModelRefused(f"version {model.version} cannot score: {exc}") from exc
    if queries.shape != (2, model.item_vectors.shape[1]):
        raise ModelRefused(f"version {model.version}: query vectors have shape {queries.shape}, "
                           f"expected (2, {model.item_vectors.shape[1]})")
    if scores.shape != (2, len(candidates[0])) or not np.isfinite(scores).all():
        raise ModelRefused(f"version {model.version}: scores have shape {scores.shape} or are "
                           "not finite")


async def swap_to(runtime: WorkerRuntime, version: str | None) -> bool:
    """Load in a thread, then swap; True when a model was swapped in."""
    metrics = runtime.metrics
    try:
        model = await asyncio.to_thread(load_checked, runtime.settings, version)
    except ModelRefused as exc:
        metrics.model_rejected += 1
        log.error("refused model %s; still serving %s", exc, metrics.model_version or "no model")
        return False
    if model is None:
        log.info("no model in registry %s yet: serving fallback lists",
                 runtime.settings.registry_dir)
        return False
    runtime.recommender.swap_model(model)
    metrics.model_swaps += 1
    metrics.model_version = model.version
    log.info("now serving model version %s", model.version)
    if runtime.settings.gc_freeze and runtime.ready:  # at startup the agent settles once
        settle(f"swap to model {model.version}")
    return True


def announced_version(record: ConsumerRecord) -> str:
    """The version named by a ``model-updates`` message (raises ModelRefused if unreadable)."""
    try:
        message: Any = json.loads(record.value)
        version = message["version"]
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelRefused(f"unreadable model announcement at offset {record.offset}") from exc
    if not isinstance(version, str) or not VERSION_RE.match(version):
        raise ModelRefused(f"announcement names no valid version: {version!r}")
    return version
