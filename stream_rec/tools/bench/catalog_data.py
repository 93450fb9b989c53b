"""The synthetic catalog of N items a benchmark serves, its model, and the events it replays.

``--catalog-items N`` makes the bench read costs at a catalog size no real dataset here has.
The dataset (``synthetic_catalog``) and its model (a one-epoch `stream-rec train`, as for the
bench's other models) are cached beside the bench model, in
``~/.cache/stream-rec/bench-model/catalog-<N>-<digest>`` (the digest names the generator's
config, so a changed config makes a new folder) and ``...-d<dim>-<epochs>ep`` (the model's
width, ``STREAM_REC_EMBEDDING_DIM``, as the training reads it); a lock keeps two runs from
generating the same one at once.

The model trains without a validation hold-out: the most recent sessions would then be left
out of training, and the items only they mention out of the model, which is meant to hold
every item of the catalog (and validating against a million items each epoch is slow).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from stream_rec.config import env_name, load_settings
from stream_rec.datasets.event_files import read_event_log, read_item_table
from stream_rec.errors import UserError
from stream_rec.tools.bench import model as bench_model
from stream_rec.tools.bench.synthetic_catalog import (
    SyntheticConfig,
    make_synthetic,
    write_synthetic,
)
from stream_rec.tools.bench.workload import ShopperSession, Workload

CONFIG_FILE = "synthetic.json"
TRAIN_ENV = {env_name("train_validation_fraction"): "0"}


def _stderr(line: str) -> None:
    print(f"bench: {line}", file=sys.stderr, flush=True)


def _config_text(config: SyntheticConfig) -> str:
    return json.dumps(asdict(config), sort_keys=True, indent=2) + "\n"


def catalog_folder(config: SyntheticConfig) -> Path:
    """The cached dataset folder for ``config`` (it may not exist yet)."""
    digest = hashlib.sha256(_config_text(config).encode()).hexdigest()[:8]
    return bench_model.CACHE_DIR / f"catalog-{config.n_items}-{digest}"


def catalog_spec(config: SyntheticConfig) -> str:
    """The ``--data`` spec of the cached dataset."""
    return f"events:{catalog_folder(config)}"


def ensure_catalog_data(config: SyntheticConfig) -> Path:
    """The dataset folder for ``config``, generated on first use (minutes at 10**6 items)."""
    folder = catalog_folder(config)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if (folder / CONFIG_FILE).read_text(encoding="utf-8").startswith(
                    _config_text(config)):
                return folder
        except OSError:
            pass
        _stderr(f"generating a synthetic catalog of {config.n_items:,} items and its "
                f"sessions into {folder}; cached for later runs")
        started = time.monotonic()
        shop = make_synthetic(config)
        _stderr(f"generated {len(shop.items):,} events in {time.monotonic() - started:.0f} s; "
                "writing them")
        # Written beside the folder and renamed into place: a reader never sees half of it.
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        try:
            counts = write_synthetic(shop, staging)
            (staging / CONFIG_FILE).write_text(
                _config_text(config) + json.dumps(counts) + "\n", encoding="utf-8")
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        _stderr(f"wrote {counts['items']:,} items, {counts['train_events']:,} training and "
                f"{counts['test_events']:,} test events in {time.monotonic() - started:.0f} s")
        return folder


def ensure_catalog_model(config: SyntheticConfig, epochs: int) -> Path | None:
    """A registry with a model trained on the dataset (None without the training extra).

    Training is refused up front when its export would not fit in memory (it would fail
    only after the whole training run, and could take other processes down with it).
    """
    spec = catalog_spec(config)
    dim = load_settings().embedding_dim
    tag = f"-d{dim}"  # STREAM_REC_EMBEDDING_DIM reaches the training: one registry per width
    registry = bench_model.cache_registry(spec, epochs, tag)
    if not (registry.exists() and bench_model.cached_model_fresh(registry)):
        check_export_memory(config.n_items, dim)
    return bench_model.ensure_bench_model(spec, epochs, env=TRAIN_ENV, tag=tag)


# Peak resident memory of `stream-rec train`, in copies of the item table (items x dim
# float32), from two measured points (1 epoch, dim 100): 1.96 GB at 43,000 items and 3.8 GB
# at 200,000, ~30 rows' worth per item. (Before the stand-in ONNX export and the bounded
# evaluation runs: 3.1 and 12.0 GB, ~150 copies.)
EXPORT_TABLE_COPIES = 30


def check_export_memory(n_items: int, dim: int) -> None:
    """Raise UserError when training a model of this size is expected to run out of memory."""
    need = EXPORT_TABLE_COPIES * n_items * dim * 4
    available = available_memory()
    if available is not None and need > available:
        raise UserError(
            f"training a model of {n_items:,} items x {dim} dims is expected to need about "
            f"{need / 2**30:.0f} GB at its peak (~{EXPORT_TABLE_COPIES} times the "
            f"{n_items * dim * 4 / 2**20:.0f} MB item table, measured at 43k and 200k items), "
            f"more than the {available / 2**30:.0f} GB available here: not started. "
            "Serve a model trained elsewhere with --registry DIR, or lower "
            f"{env_name('embedding_dim')}.")


def available_memory() -> int | None:
    """MemAvailable from /proc/meminfo, in bytes (None where there is none)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def catalog_workload(folder: Path) -> Workload:
    """What a bench replays on the synthetic catalog: every item, and the test sessions.

    Reading only the test split keeps the bench's own process small at 10**6 items (the
    training split is tens of times larger); the model has not seen these sessions.
    """
    items = read_item_table(folder / "items.csv")
    sessions = tuple(ShopperSession(s.user_id, s.session_id,
                                    tuple((e.item_id, e.event_type) for e in s.events))
                     for s in read_event_log(folder / "events_test.csv") if s.events)
    return Workload(folder.name, sessions, tuple(items), items)
