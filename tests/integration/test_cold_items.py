"""An item the served model never saw, through a real worker, broker and ONNX model: once
shoppers have viewed it next to a known item, it is retrieved for shoppers who view that item,
as a similar item, before any retraining (``stream_rec/serving/stream_learner.py``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from stream_rec.model import FileRegistry
from stream_rec.serving.lists import REASON_NEW, REASON_SIMILAR
from stream_rec.tools.worker_process import WorkerProcess
from tests.integration.test_worker_model import _list_for, _lists_until, _send
from tests.integration.test_worker_pipeline import _catalog
from tests.integration.worker_fixtures import TopicReader, isolated_settings, produce

pytestmark = pytest.mark.integration
COLD = "first-seen-in-the-stream"
CATEGORY = "only-this-one"


def _reasons(worker: WorkerProcess, user: str) -> dict[str, str]:
    """Item -> reason over the candidates kept with the shopper's latest list, of the cold
    item's category (so however the model ranks it among the pool)."""
    page = worker.get_json(f"/users/{user}/recommendations/?n=200&category={CATEGORY}")
    return {i["item_id"]: i["reason"] for i in page["items"]}


def test_a_cold_item_is_found_by_the_items_shoppers_view_it_with(
        broker: str, new_topic: Any, tmp_path: Path, data_dir: Path,
        trained_registry: Path) -> None:
    registry = tmp_path / "registry"
    shutil.copytree(trained_registry, registry)
    settings = isolated_settings(broker, new_topic, tmp_path, registry_dir=str(registry),
                                 list_length=60, pool_kept=400)
    known = json.loads((registry / FileRegistry(registry).resolve(None) /
                        "item_ids.json").read_text())
    anchor = known[0]
    # Described like no other item, so that only the stream can place it.
    produce(broker, settings.items_topic,
            [*_catalog(data_dir), (COLD.encode(), json.dumps({"category": CATEGORY}).encode())])
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    recs = TopicReader(broker, settings.recommendations_topic)
    try:
        # Before: it reaches lists only as the newest item the model has never seen.
        _lists_until(settings, recs, "before", [anchor], lambda r: True)
        assert _reasons(worker, "before").get(COLD) in (None, REASON_NEW)
        # Shoppers view it right after the anchor item (and one the other way round).
        for n in range(3):
            [*_, last] = _send(settings, f"teacher-{n}", [anchor, COLD], "view")
            _list_for(recs, last)
        [*_, last] = _send(settings, "teacher-back", [COLD, anchor], "view")
        _list_for(recs, last)
        # After: a shopper who views the anchor item gets it as a similar item.
        _lists_until(settings, recs, "after", [anchor],
                     lambda r: _reasons(worker, "after").get(COLD) == REASON_SIMILAR)
    finally:
        worker.stop()
        recs.close()
