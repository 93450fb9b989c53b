"""Write a storefront as an ``events:`` dataset folder that every reader takes unchanged.

``events_train.csv`` / ``events_test.csv`` (``timestamp,user_id,session_id,item_id,event``,
ISO 8601 times, event words view/cart/purchase) and ``items.csv`` (``item_id,category,brand,
price``). ``storefront.json`` records the config, so a folder made from another config is
rewritten rather than reused.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from stream_rec.tools.storefront.history import (
    LoggedEvent,
    Storefront,
    StorefrontConfig,
    event_history,
    make_storefront,
    split_history,
)

CONFIG_FILE = "storefront.json"


def write_storefront(storefront: Storefront, folder: Path) -> Path:
    """Write the dataset into ``folder`` (replacing it whole, so a reader never sees half)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        train, test = split_history(storefront, event_history(storefront))
        _write_events(staging / "events_train.csv", train)
        _write_events(staging / "events_test.csv", test)
        with open(staging / "items.csv", "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(["item_id", "category", "brand", "price"])
            for item in storefront.catalog.items:
                writer.writerow([item.item_id, item.category, item.brand, f"{item.price:.2f}"])
        (staging / CONFIG_FILE).write_text(_config_text(storefront.config), encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def ensure_storefront(folder: Path, config: StorefrontConfig | None = None) -> Path:
    """The dataset folder for ``config``, written only when it is missing or from another config."""
    config = config or StorefrontConfig()
    try:
        if (Path(folder) / CONFIG_FILE).read_text(encoding="utf-8") == _config_text(config):
            return Path(folder)
    except OSError:
        pass
    return write_storefront(make_storefront(config), folder)


def _config_text(config: StorefrontConfig) -> str:
    return json.dumps(asdict(config), sort_keys=True, indent=2) + "\n"


def _write_events(path: Path, events: list[LoggedEvent]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["timestamp", "user_id", "session_id", "item_id", "event"])
        for e in events:
            stamp = datetime.fromtimestamp(e.ts_ms / 1000, UTC).isoformat(timespec="seconds")
            writer.writerow([stamp.replace("+00:00", "Z"), e.user_id, e.session_id, e.item_id,
                             e.event])
