"""The recommender with items the model never saw: once shoppers' sessions have placed a cold
item among known ones, it is retrieved and scored like them (``Recommender.learner``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stream_rec.core.catalog import parse_catalog_item
from stream_rec.model import ServedModel
from stream_rec.rerank import RerankPolicy
from stream_rec.serving.batch import BatchConfig, BatchHandler, handle_batch
from stream_rec.serving.dead_letter import Message
from stream_rec.serving.lists import REASON_SIMILAR, RecList
from stream_rec.serving.recommender import Recommender, RecommenderConfig
from tests.unit.test_pools import served_model

NOW_MS = 1_750_000_000_000
KNOWN = ("k1", "k2", "k3", "k4")
COLD = ("new-a", "new-b")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ServedModel:
    """Known items on the four axes: a shopper's query is the sum of their items' vectors."""
    folder: Path = tmp_path_factory.mktemp("stream-items") / "v1"
    return served_model(folder, np.eye(4, dtype=np.float32), items=KNOWN)


def _recommender(model: ServedModel, **config: Any) -> tuple[Recommender, BatchHandler]:
    settings = {"k": 3, "pool": 2, "trending_candidates": 0, "new_item_candidates": 0,
                "policy": RerankPolicy.parse("none"), "stream_item_min_observations": 1,
                **config}
    rec = Recommender(RecommenderConfig(**settings))
    for item in (*KNOWN, *COLD):
        rec.upsert_item(parse_catalog_item(item, b'{"category": "c"}'))
    rec.swap_model(model)
    return rec, BatchHandler(rec, BatchConfig())


def _events(handler: BatchHandler, *sessions: tuple[str, ...]) -> list[RecList]:
    """Each session is a new shopper's views, one second apart; all sent as one batch."""
    messages = []
    offset = max((offset for _, offset in handler.processed.values()), default=-1) + 1
    for session in sessions:
        user = f"u{offset + len(messages)}"
        for n, item in enumerate(session):
            value = json.dumps({"event_id": f"{user}-{n}", "user_id": user, "item_id": item,
                                "type": "view", "ts": NOW_MS + 1000 * n})
            messages.append(Message(user.encode(), value.encode(), "events", 0,
                                    offset + len(messages), NOW_MS + 1000 * n))
    store: dict[bytes, bytes] = {}
    result = handle_batch(handler, messages, lambda key, _i: store.get(key), NOW_MS + 10_000)
    return [out.rec for out in result.lists]


def _shopper(handler: BatchHandler, *items: str) -> RecList:
    """A fresh shopper's list after viewing ``items``."""
    return _events(handler, items)[-1]


def test_a_cold_item_seen_with_known_items_is_retrieved_for_shoppers_like_them(
        model: ServedModel) -> None:
    rec, handler = _recommender(model)
    # new-a goes with k1 (before and after it), new-b with k3.
    _events(handler, ("k1", "new-a"), ("new-a", "k1"), ("k3", "new-b"))
    assert rec.table is not None and len(rec.table.stream) == 2
    made = _shopper(handler, "k2", "k1")
    by_id = {item.item_id: item for item in made.items}
    assert "new-a" in by_id and "new-b" not in by_id
    assert by_id["new-a"].reason == REASON_SIMILAR
    # Scored as the model scores an item with new-a's learnt vector (k1's): the shopper's
    # query (k2 + k1) . k1 = 1, as for k1 itself, on one scale with the known items.
    assert by_id["new-a"].score == pytest.approx(1.0, abs=1e-6)
    assert by_id["k1"].score == pytest.approx(1.0, abs=1e-6)


def test_without_the_feature_the_cold_item_is_never_proposed(model: ServedModel) -> None:
    rec, handler = _recommender(model, stream_item_candidates=0)
    _events(handler, ("k1", "new-a"), ("new-a", "k1"))
    assert rec.learner is None and rec.table is not None and len(rec.table.stream) == 0
    made = _shopper(handler, "k2", "k1")
    assert "new-a" not in {item.item_id for item in made.items}


def test_a_cold_item_counts_after_min_observations(model: ServedModel) -> None:
    rec, handler = _recommender(model, stream_item_min_observations=2)
    _events(handler, ("k1", "new-a"))
    assert "new-a" not in {i.item_id for i in _shopper(handler, "k1").items}
    _events(handler, ("new-a", "k1"))
    assert "new-a" in {i.item_id for i in _shopper(handler, "k1").items}


def test_a_model_that_knows_the_item_takes_over(model: ServedModel, tmp_path: Path) -> None:
    rec, handler = _recommender(model)
    _events(handler, ("k1", "new-a"), ("k3", "new-b"))
    assert rec.learner is not None and "new-a" in rec.learner.memory
    # v2 knows new-a (on the k4 axis); new-b stays cold and is placed in v2's space.
    vectors = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 3]]
    rec.swap_model(served_model(tmp_path / "v2", vectors, version="v2",
                                items=(*KNOWN, "new-a")))
    assert rec.table is not None
    assert "new-a" not in rec.learner.memory and "new-b" in rec.learner.memory
    assert rec.table.stream.positions.tolist() == [rec.table.position["new-b"]]
    made = _shopper(handler, "k4")
    assert made.model_version == "v2"
    assert {i.item_id: i.score for i in made.items}["new-a"] == pytest.approx(1.0, abs=1e-6)


def test_a_batch_of_shoppers_gets_their_own_cold_items(model: ServedModel) -> None:
    rec, handler = _recommender(model)
    _events(handler, ("k1", "new-a"), ("k3", "new-b"))
    first, second = _events(handler, ("k1",), ("k3",))
    assert "new-a" in {i.item_id for i in first.items}
    assert "new-b" in {i.item_id for i in second.items}
