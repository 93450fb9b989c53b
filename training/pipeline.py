"""Train -> export (with parity check) -> evaluate -> register (-> publish).

``build_candidate`` leaves a verified artifact in a staging folder inside the registry root
(same file system, so adding it is a rename-cheap copy); ``register`` adds or publishes it.
``train_and_register`` is both, for ``stream-rec train``.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stream_rec.config import Settings
from stream_rec.datasets import Dataset
from stream_rec.model.ann import ANN_INDEX_FILE, add_index, faiss_module
from stream_rec.model.artifact import ModelArtifact, load_artifact, verify_folder, write_manifest
from stream_rec.model.registry import ModelRegistry
from stream_rec.offline.evaluate import evaluate, metrics_for
from stream_rec.offline.retrieval_path import retrieval_pools
from training.export import export_artifact, new_version
from training.train import TrainConfig, train_model

BUILD_PREFIX = "stream-rec-build-"
# The trainer's check of a new approximate-retrieval index: test cases sampled, and the recall
# of the exact pool below which the index is not shipped.
INDEX_CHECK_CASES = 2_000
MIN_INDEX_RECALL = 0.95


@dataclass
class Candidate:
    """A trained, exported and evaluated model in its staging folder, not in the registry yet."""

    version: str
    staging: Path
    metrics: dict[str, Any]
    wall_time_s: float

    def discard(self) -> None:
        """Remove the staging folder (and the temporary folder made for it)."""
        shutil.rmtree(self.staging, ignore_errors=True)
        if self.staging.parent.name.startswith(BUILD_PREFIX):
            shutil.rmtree(self.staging.parent, ignore_errors=True)


@dataclass
class Trained:
    """A model added to the registry: its version, folder, metrics and training time."""

    version: str
    path: Path
    metrics: dict[str, Any]
    wall_time_s: float


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def data_range(dataset: Dataset) -> dict[str, Any]:
    """What a model was trained on, for its manifest: dataset name, time span and sizes."""
    span = dataset.time_range_ms()
    return {"dataset": dataset.name, "from_ms": span[0] if span else None,
            "to_ms": span[1] if span else None, "synthetic_time": dataset.synthetic_time,
            **dataset.summary()}


def build_candidate(dataset: Dataset, data_spec: str, registry: ModelRegistry,
                    settings: Settings, config: TrainConfig,
                    warm: ModelArtifact | None = None, evaluate_test: bool = True,
                    progress: Callable[[str], None] = _stderr) -> Candidate:
    """Train on ``dataset.train``, export to a staging folder, evaluate on the test split."""
    result = train_model(dataset, config, warm=warm, progress=progress)
    progress(f"trained in {result.wall_time_s:.0f} s")
    version = _free_version(registry)
    # Built in a temporary folder of its own: the registry copies it in whole, or not at all.
    staging = Path(tempfile.mkdtemp(prefix=BUILD_PREFIX)) / version
    manifest = export_artifact(result, staging, {
        "version": version,
        "training": {"data": data_spec, "data_range": data_range(dataset),
                     "warm_start_from": warm.version if warm is not None else None}})
    candidate = Candidate(version, staging, {}, result.wall_time_s)
    try:
        n_items = len(result.vocab.item_ids)
        if 0 < settings.retrieval_index_min_items <= n_items:
            if faiss_module() is None:
                progress(f"{n_items:,} items: no approximate-retrieval index (faiss is not "
                         "installed: pip install 'stream-rec[ann]'); workers retrieve exactly")
            else:
                progress(f"building the approximate-retrieval index over {n_items:,} items ...")
                manifest = add_index(staging, manifest, settings.retrieval_index_kind, progress)
                progress(f"  built in {manifest['model']['ann']['build_s']} s")
                if dataset.test_cases():
                    manifest = check_index(staging, manifest, dataset, settings, progress)
        if evaluate_test and dataset.test_cases():
            progress("evaluating on the test split through onnxruntime ...")
            candidate.metrics = evaluate(load_artifact(staging), dataset, k=settings.eval_k,
                                         batch_size=settings.eval_batch_size, threads=2,
                                         progress=progress)
            write_manifest(staging, {**manifest, "metrics": candidate.metrics},
                           files=list(manifest["files"]))
        verify_folder(staging)
    except BaseException:
        candidate.discard()
        raise
    return candidate


def check_index(staging: Path, manifest: dict[str, Any], dataset: Dataset,
                settings: Settings, progress: Callable[[str], None]) -> dict[str, Any]:
    """Recall of the new index against exact retrieval on a sample of the test split, noted
    in the manifest (``model.ann.check``); an index below ``MIN_INDEX_RECALL`` is dropped, so
    workers retrieve exactly rather than miss candidates."""
    cases = dataset.test_cases()
    step = max(1, len(cases) // INDEX_CHECK_CASES)
    found = retrieval_pools(load_artifact(staging), dataset, pool=settings.candidate_pool,
                            k=settings.eval_k, batch_size=settings.eval_batch_size,
                            ef_search=settings.retrieval_ef_search, threads=2,
                            cases=cases[::step][:INDEX_CHECK_CASES], progress=progress)
    k = settings.eval_k
    exact, approx = metrics_for(found.exact, k=k), metrics_for(found.index, k=k)
    check = {"cases": exact["n_cases"], "ef_search": settings.retrieval_ef_search,
             f"recall@{settings.candidate_pool}": round(found.recall, 4),
             **{f"{name} exact / index": [exact[name], approx[name]]
                for name in (f"P@{k}", f"MRR@{k}")}}
    progress(f"  index check on {check['cases']:,} test cases: recall@"
             f"{settings.candidate_pool} {found.recall:.4f}, P@{k} {exact[f'P@{k}']:.2f} exact "
             f"/ {approx[f'P@{k}']:.2f} through the index")
    model = dict(manifest["model"])
    files = list(manifest["files"])
    if found.recall < MIN_INDEX_RECALL:
        progress(f"  recall below {MIN_INDEX_RECALL}: the index is left out; workers will "
                 "retrieve exactly")
        (staging / ANN_INDEX_FILE).unlink()
        files.remove(ANN_INDEX_FILE)
        model["ann"] = {**model["ann"], "dropped": True}
    model["ann"] = {**model["ann"], "check": check}
    return write_manifest(staging, {**manifest, "model": model}, files=files)


def register(candidate: Candidate, registry: ModelRegistry, settings: Settings,
             publish: bool, announce: bool = True) -> Path:
    """Add the candidate as a version (``publish``: also make it current and announce it)."""
    try:
        if publish:
            registry.publish(candidate.staging, settings, announce=announce)
        else:
            registry.add(candidate.staging)
    finally:
        candidate.discard()
    return registry.path(candidate.version)


def train_and_register(dataset: Dataset, data_spec: str, registry: ModelRegistry,
                       settings: Settings, config: TrainConfig,
                       warm: ModelArtifact | None = None, publish: bool = False,
                       evaluate_test: bool = True,
                       progress: Callable[[str], None] = _stderr) -> Trained:
    """Train, export, evaluate and add a model to the registry, publishing it if asked."""
    candidate = build_candidate(dataset, data_spec, registry, settings, config, warm,
                                evaluate_test, progress)
    path = register(candidate, registry, settings, publish)
    return Trained(candidate.version, path, candidate.metrics, candidate.wall_time_s)


def _free_version(registry: ModelRegistry) -> str:
    base = new_version()
    taken = set(registry.versions())
    version, n = base, 1
    while version in taken:
        n += 1
        version = f"{base}-{n}"
    return version
