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
import os
import re
from collections.abc import Callable
from typing import Any

import numpy as np
from aiokafka import ConsumerRecord

from stream_rec.config import Settings
from stream_rec.model import (
    ArtifactError,
    RegistryError,
    ServedModel,
    load_served_model,
    open_registry,
)
from stream_rec.model.artifact import MANIFEST, sha256_of
from stream_rec.model.registry import is_version_name
from stream_rec.serving.item_table import ItemTable
from stream_rec.worker.heap import settle
from stream_rec.worker.runtime import WorkerRuntime

log = logging.getLogger(__name__)
SHA256_RE = re.compile(r"[0-9a-f]{64}")


class ModelRefused(Exception):
    """This model version must not be served; the message says why."""


# Why a worker serves fallback lists, as /health/ and stream_rec_model_unservable_info say it.
NO_MODEL = "no_model"  # the registry has no current version yet
REFUSED = "refused"  # the version to serve failed a check (the log and /health/ say which)


def load_checked(settings: Settings, version: str | None,
                 same_ids: Callable[[str], str] | None = None) -> ServedModel | None:
    """Load ``version`` (default: the registry's current one) and prove it can score;
    ``same_ids``: the catalog's strings for the vocabulary (``load_artifact``).

    Returns None when the registry has no current model yet. Any failure on the way (a
    missing or changed file, a graph onnxruntime cannot read, a cut that fails, a smoke batch
    that cannot score) raises ModelRefused: a bad artifact must never stop the worker.
    """
    try:
        registry = open_registry(settings)
        if version is None:
            version = registry.current()
            if version is None:
                return None
        elif version not in registry.versions():  # an exact version name, never an alias
            raise RegistryError(f"registry {settings.registry_dir} has no version {version!r}")
        model = load_served_model(registry.path(version), threads=settings.onnx_threads,
                                  retrieval_index=settings.retrieval_index,
                                  ef_search=settings.retrieval_ef_search, same_ids=same_ids,
                                  retrieval_scan=settings.retrieval_scan)
        if model.version != version:
            raise ArtifactError(f"folder {version} holds a manifest of version {model.version}")
        smoke_test(model)
    except ModelRefused:
        raise
    except Exception as exc:  # noqa: BLE001 - onnxruntime and numpy raise types of their own
        raise ModelRefused(f"version {version}: {type(exc).__name__}: {exc}") from exc
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
        model = await asyncio.to_thread(load_checked, runtime.settings, version,
                                        runtime.recommender.catalog.shared_id)
    except ModelRefused as exc:
        metrics.model_rejected += 1
        metrics.model_refusal = str(exc)
        if not metrics.model_version:  # nothing else to serve: fallback lists, and say why
            metrics.model_unservable = REFUSED
        log.error("refused model %s; still serving %s", exc, metrics.model_version or
                  "no model (fallback lists)")
        return False
    if model is None:
        if not metrics.model_version:
            metrics.model_unservable = NO_MODEL
        log.info("no model in registry %s yet: serving fallback lists",
                 runtime.settings.registry_dir)
        return False
    # The item table (a Python pass over the catalog, seconds at a million items) is built
    # off the event loop, the catalog held still meanwhile.
    with runtime.catalog_held():
        table = await asyncio.to_thread(runtime.recommender.item_table_for, model)
        runtime.recommender.swap_model(model, table)
    # The old model is let go now, so its arrays and this copy never coincide.
    await asyncio.to_thread(model.keep_in_memory)
    metrics.model_swaps += 1
    metrics.model_version = model.version
    metrics.model_unservable = metrics.model_refusal = ""
    log.info("now serving model version %s (retrieval: %s)", model.version,
             "exact" if model.ann is None else model.ann.describe())
    if runtime.settings.gc_freeze and runtime.ready:  # at startup the agent settles once
        settle(f"swap to model {model.version}")
    return True


def announced_version(record: ConsumerRecord, settings: Settings | None = None) -> str:
    """The version a ``model-updates`` message names, once it proves to be the folder meant.

    Only an exact version name is accepted: ``latest`` or ``current`` would pick a folder by
    the registry's state at load time, not the announcer's choice. When the message carries
    ``manifest_sha256`` (``stream-rec model`` and the trainer send it), it must match the
    version folder's ``manifest.json``, so a folder replaced after the announcement is not
    served as the one announced. A message without it (an older or hand-written announcer) is
    accepted with a warning: every file of the version is still checked against the folder's
    own manifest when it loads. Raises ModelRefused otherwise; ``settings`` defaults to the
    running worker's.
    """
    try:
        message: Any = json.loads(record.value)
        version = message["version"]
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelRefused(f"unreadable model announcement at offset {record.offset}") from exc
    if not is_version_name(version):
        raise ModelRefused(f"announcement names no exact version: {version!r}")
    expected = message.get("manifest_sha256")
    if expected is None:
        log.warning("announcement of model %s carries no manifest_sha256: checking the folder "
                    "against its own manifest only", version)
        return str(version)
    if not isinstance(expected, str) or not SHA256_RE.fullmatch(expected):
        raise ModelRefused(f"announcement of {version} has no valid manifest_sha256: "
                           f"{expected!r}")
    registry = open_registry(settings or _worker_settings())
    try:
        actual = sha256_of(registry.path(version) / MANIFEST)
    except (OSError, RegistryError) as exc:
        raise ModelRefused(f"announced version {version} has no readable manifest: {exc}"
                           ) from exc
    if actual != expected:
        raise ModelRefused(f"announced version {version}: its manifest's sha256 {actual} is not "
                           f"the announced {expected}")
    return str(version)


def _worker_settings() -> Settings:
    from stream_rec.app import settings  # the running worker's; imported late, app imports us

    return settings


def arm_versions(runtime: WorkerRuntime) -> list[str]:
    """The model versions running experiments' arms ask for, other than the one served."""
    wanted = {v for e in runtime.handler.experiments.values() if e.running for v in e.models}
    return sorted(wanted - {runtime.metrics.model_version})


async def serve_arm_models(runtime: WorkerRuntime) -> None:
    """Load the model versions experiment arms ask for (each checked like any model), serve
    them beside the main one, and record what each costs in memory. A version that is
    refused is left out: its arm's shoppers get the main model, and their lists say so."""
    wanted = arm_versions(runtime)
    served = runtime.recommender.arm_models
    if wanted == sorted(served):
        return
    models: list[ServedModel] = []
    tables: dict[str, ItemTable] = {}
    costs = dict(runtime.metrics.arm_model_bytes)
    for version in wanted:
        if version in served:
            models.append(served[version][1].model)
            continue
        before = resident_bytes()
        try:
            model = await asyncio.to_thread(load_checked, runtime.settings, version,
                                            runtime.recommender.catalog.shared_id)
        except ModelRefused as exc:
            runtime.metrics.model_rejected += 1
            log.error("experiment arm model refused: %s; its shoppers get the main model", exc)
            continue
        if model is None:
            continue
        # An arm's model adds to the main one rather than replacing it: nothing is gained by
        # keeping its arrays mapped, and its memory cost should count them.
        await asyncio.to_thread(model.keep_in_memory)
        models.append(model)
        costs[version] = max(0, resident_bytes() - before)
    with runtime.catalog_held():
        for model in models:
            if model.version not in served:
                tables[model.version] = await asyncio.to_thread(
                    runtime.recommender.item_table_for, model)
        runtime.recommender.set_arm_models(models, tables)
    runtime.metrics.arm_model_bytes = {m.version: costs.get(m.version, 0) for m in models}
    for model in models:
        log.info("serving model %s to its experiment arm beside %s (about %.1f MB more "
                 "resident memory)", model.version, runtime.metrics.model_version or "fallback",
                 runtime.metrics.arm_model_bytes[model.version] / 1e6)


def resident_bytes() -> int:
    """This process's resident memory (Linux; 0 where /proc is not there)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
