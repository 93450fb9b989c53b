"""The model a benchmark serves: a short training run, cached outside the repository.

Targets are about a catalog of realistic size (diginetica: 43,097 items), not about accuracy,
so one epoch is enough. The registry is kept in ``~/.cache/stream-rec/bench-model/<dataset>``
and reused by later runs; a lock keeps two runs from training at once. A cached model trained
by other training or export code than this checkout's (``training_code_digest``) is trained
again, so that a benchmark never measures what an older exporter wrote. Without the training
extra (no TensorFlow) the bench measures the worker's fallback lists and says so.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stream_rec.datasets import parse_spec
from stream_rec.errors import UserError
from stream_rec.model.registry import open_registry

log = logging.getLogger(__name__)
CACHE_DIR = Path("~/.cache/stream-rec/bench-model").expanduser()
STDERR_FD = 2


def cache_registry(data_spec: str, epochs: int, tag: str = "") -> Path:
    """The cached registry folder for a dataset and epoch count (and ``tag``: what else
    sets the model apart, e.g. its width)."""
    name = Path(parse_spec(data_spec).location).name or "data"
    return CACHE_DIR / f"{re.sub(r'[^A-Za-z0-9._-]', '_', name + tag)}-{epochs}ep"


def can_train() -> bool:
    """True when `stream-rec train` and TensorFlow are installed here."""
    return (importlib.util.find_spec("training.pipeline") is not None
            and importlib.util.find_spec("tensorflow") is not None)


def current_version(registry_dir: Path) -> str | None:
    """The registry's current version, promoting the newest one if none is current."""
    registry = open_registry(registry_dir)
    if registry.current() is None and registry.versions():
        registry.promote(registry.versions()[-1])
    return registry.current()


def training_record_path(registry_dir: Path) -> Path:
    """Where ``ensure_bench_model`` notes how long training took and its memory."""
    return registry_dir.parent / f"{registry_dir.name}.training.json"


def training_code_digest() -> str:
    """A digest of the training package's source (what trains and exports a model)."""
    spec = importlib.util.find_spec("training")
    if spec is None or not spec.submodule_search_locations:
        return ""
    digest = hashlib.sha256()
    for path in sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def cached_model_fresh(registry_dir: Path) -> bool:
    """A current model trained by this checkout's training code (or unknown code, when this
    checkout cannot train: then the cached model is the best there is)."""
    if not current_version(registry_dir):
        return False
    record = training_record(registry_dir) or {}
    return not can_train() or record.get("training_code") == training_code_digest()


def training_record(registry_dir: Path) -> dict[str, Any] | None:
    """The training record of a cached registry (None for one trained elsewhere or earlier)."""
    try:
        record: dict[str, Any] = json.loads(training_record_path(registry_dir).read_text())
    except (OSError, ValueError):
        return None
    return record


def ensure_bench_model(data_spec: str, epochs: int = 1,
                       env: Mapping[str, str] | None = None, tag: str = "") -> Path | None:
    """A registry with a current model trained on ``data_spec``; None when none can be made.

    Training runs `stream-rec train` as a child (TensorFlow stays out of this process), with
    ``env`` added to its environment (training settings), into the registry named by the
    dataset, ``epochs`` and ``tag``; its progress goes to stderr so that
    `bench --json` keeps stdout to the one JSON object. Its wall time and peak resident memory
    are noted beside the registry (``training_record``).
    """
    registry_dir = cache_registry(data_spec, epochs, tag)
    registry_dir.mkdir(parents=True, exist_ok=True)
    with open(registry_dir.parent / f".{registry_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if cached_model_fresh(registry_dir):
            return registry_dir
        if not can_train():
            log.warning("no cached bench model and no training extra installed: measuring the "
                        "fallback lists (install stream-rec[train] for the real model)")
            return None
        log.info("training the bench model (%d epoch(s) on %s) into %s; cached for later runs",
                 epochs, data_spec, registry_dir)
        argv = [sys.executable, "-m", "stream_rec.cli", "train", "--data", data_spec,
                "--registry", str(registry_dir), "--epochs", str(epochs), "--no-evaluate"]
        returncode, record = _train(argv, {**os.environ, **(env or {})})
        if returncode != 0:
            raise UserError(f"training the bench model failed (exit {returncode}); "
                            f"run `{' '.join(argv[2:])}` to see why")
        versions = open_registry(registry_dir).versions()
        if not versions:
            raise UserError(f"`stream-rec train` left no model in {registry_dir}")
        open_registry(registry_dir).promote(versions[-1])  # the one just trained
        training_record_path(registry_dir).write_text(json.dumps(
            {**record, "data": data_spec, "epochs": epochs, "env": dict(env or {}),
             "training_code": training_code_digest()}) + "\n")
        return registry_dir


def _train(argv: list[str], env: dict[str, str]) -> tuple[int, dict[str, float]]:
    """Run the training child; (exit status, its wall seconds and peak resident MB).

    ``os.wait4`` gives the resource use of that one child (``getrusage`` of all children
    would mix in any other child this process ran before).
    """
    started = time.monotonic()
    # The child writes to file descriptor 2 (stdout included, which stays ours for the JSON);
    # sys.stderr need not have a descriptor (pytest's capture replaces it).
    proc = subprocess.Popen(argv, stdout=STDERR_FD, stderr=STDERR_FD, env=env)
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return proc.returncode, {"wall_s": round(time.monotonic() - started, 1),
                             "peak_rss_mb": round(usage.ru_maxrss / 1024.0, 1)}
