"""The model a benchmark serves: a short training run, cached outside the repository.

Targets are about a catalog of realistic size (diginetica: 43,097 items), not about accuracy,
so one epoch is enough. The registry is kept in ``~/.cache/stream-rec/bench-model/<dataset>``
and reused by later runs; a lock keeps two runs from training at once. Without the training
extra (no TensorFlow) the bench measures the worker's fallback lists and says so.
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import re
import subprocess
import sys
from pathlib import Path

from stream_rec.datasets import parse_spec
from stream_rec.errors import UserError
from stream_rec.model.registry import open_registry

log = logging.getLogger(__name__)
CACHE_DIR = Path("~/.cache/stream-rec/bench-model").expanduser()


def cache_registry(data_spec: str, epochs: int) -> Path:
    """The cached registry folder for a dataset and epoch count."""
    name = Path(parse_spec(data_spec).location).name or "data"
    return CACHE_DIR / f"{re.sub(r'[^A-Za-z0-9._-]', '_', name)}-{epochs}ep"


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


def ensure_bench_model(data_spec: str, epochs: int = 1) -> Path | None:
    """A registry with a current model trained on ``data_spec``; None when none can be made.

    Training runs `stream-rec train` as a child (TensorFlow stays out of this process); its
    progress goes to stderr so that `bench --json` keeps stdout to the one JSON object.
    """
    registry_dir = cache_registry(data_spec, epochs)
    registry_dir.mkdir(parents=True, exist_ok=True)
    with open(registry_dir.parent / f".{registry_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if current_version(registry_dir):
            return registry_dir
        if not can_train():
            log.warning("no cached bench model and no training extra installed: measuring the "
                        "fallback lists (install stream-rec[train] for the real model)")
            return None
        log.info("training the bench model (%d epoch(s) on %s) into %s; cached for later runs",
                 epochs, data_spec, registry_dir)
        argv = [sys.executable, "-m", "stream_rec.cli", "train", "--data", data_spec,
                "--registry", str(registry_dir), "--epochs", str(epochs), "--no-evaluate"]
        result = subprocess.run(argv, stdout=sys.stderr, stderr=sys.stderr,
                                check=False)
        if result.returncode != 0:
            raise UserError(f"training the bench model failed (exit {result.returncode}); "
                            f"run `{' '.join(argv[2:])}` to see why")
        if current_version(registry_dir) is None:
            raise UserError(f"`stream-rec train` left no model in {registry_dir}")
        return registry_dir
