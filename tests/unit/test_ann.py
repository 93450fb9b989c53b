"""Approximate retrieval through the artifact's graph: the filter, the load checks, the merge
with exact retrieval (a tiny real model, an index small enough that its search is exact)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stream_rec.core.catalog import parse_catalog_item
from stream_rec.model import load_served_model
from stream_rec.model.ann import ANN_INDEX_FILE, add_index, allowed_bitmap, load_index
from stream_rec.serving.candidates import ExactRetrieval, IndexRetrieval
from stream_rec.serving.item_table import ItemTable
from tests.unit.test_pools import (
    in_stock_catalog,
    random_vectors,
    retrieved_both_ways,
    served_model,
)

pytest.importorskip("faiss")
ITEMS = tuple(f"i{n}" for n in range(300))


def _indexed_model(folder: Path, seed: int = 1):
    served_model(folder, random_vectors(seed, len(ITEMS)), items=ITEMS)
    manifest = json.loads((folder / "manifest.json").read_text())
    written = add_index(folder, manifest, "hnsw-flat")  # float rows: its search is exact here
    assert ANN_INDEX_FILE in written["files"] and written["model"]["ann"]["n_items"] == 300
    return load_served_model(folder, ef_search=512)


def test_the_bitmap_allows_every_row_but_the_blocked_ones() -> None:
    bitmap = allowed_bitmap(np.array([0, 9, 17, 400]), 20)
    bits = np.unpackbits(bitmap, bitorder="little")[:20].astype(bool)
    assert [n for n in range(20) if not bits[n]] == [0, 9, 17]


def test_index_retrieval_finds_what_exact_retrieval_finds_and_skips_unavailable_items(
        tmp_path: Path) -> None:
    model = _indexed_model(tmp_path / "m")
    assert model.ann is not None and model.ann.n_items == len(ITEMS)
    table, queries, exact, found, out_of_stock = retrieved_both_ways(model, ITEMS)
    catalog = in_stock_catalog(ITEMS, set(ITEMS) - out_of_stock)
    assert found.shape == exact.shape
    for query, want, got in zip(queries, exact, found, strict=True):
        assert set(got.tolist()) == set(want.tolist())  # a graph this small is searched whole
        assert not {ITEMS[p] for p in got} & out_of_stock
        scores = model.item_vectors[got] @ query
        assert (np.diff(scores) <= 1e-6).all()  # best first, as exact retrieval orders them
    # Retrieval through the graph builds no second copy of the vocabulary's rows.
    fresh = ItemTable(model, catalog)
    IndexRetrieval().propose(queries, fresh, 50)
    assert fresh._all.buffer is None
    # Back in stock: the item may come back through the graph too.
    back = parse_catalog_item("i7", json.dumps({"category": "c"}).encode())
    table.upsert(back, catalog)
    again = IndexRetrieval().propose(model.item_vectors[7:8] * 3.0, table, 5)
    assert again[0][0] == table.position["i7"]


def test_a_model_without_an_index_or_without_faiss_retrieves_exactly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = served_model(tmp_path / "plain", random_vectors(2, len(ITEMS)), items=ITEMS)
    assert plain.ann is None
    table = ItemTable(plain, in_stock_catalog(ITEMS))
    queries = random_vectors(3, 4)
    np.testing.assert_array_equal(IndexRetrieval().propose(queries, table, 20),
                                  ExactRetrieval().propose(queries, table, 20))
    folder = tmp_path / "indexed"
    _indexed_model(folder)
    monkeypatch.setattr("stream_rec.model.ann.faiss_module", lambda: None)
    assert load_served_model(folder).ann is None  # said in the log, not fatal
    assert load_served_model(folder, retrieval_index=False).ann is None


def test_an_index_that_does_not_fit_the_vectors_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    model = _indexed_model(folder)
    manifest = model.artifact.manifest
    with pytest.raises(ValueError, match="holds 300 x 4 rows"):
        load_index(folder, manifest, 299, 4, 256)


@pytest.mark.parametrize("in_stock", [True, False])
def test_similar_items_through_the_graph_are_the_exact_ones(tmp_path: Path,
                                                            in_stock: bool) -> None:
    from stream_rec.serving.recommender import Recommender, RecommenderConfig
    from stream_rec.serving.request_lists import similar_items

    bodies = []
    for indexed in (True, False):
        model = _indexed_model(tmp_path / f"m{indexed}")
        if not indexed:
            model.ann = None
        rec = Recommender(RecommenderConfig(k=5, pool=20))
        for item in ITEMS:
            rec.upsert_item(parse_catalog_item(item, json.dumps(
                {"category": "c", "in_stock": item not in ("i11", "i12")}).encode()))
        rec.swap_model(model)
        bodies.append(similar_items(rec, "i10", 30, None, in_stock))
        assert rec.table is not None
        assert (rec.table._all.buffer is None) is indexed  # no full matrix beside a graph
    graph, exact = ([(i["item_id"], i["score"]) for i in body["items"]]
                    for body in bodies if body is not None)
    assert [i for i, _ in graph] == [i for i, _ in exact]
    np.testing.assert_allclose([s for _, s in graph], [s for _, s in exact], atol=1e-5)
    if in_stock:
        assert not {"i11", "i12"} & set(dict(graph))


def test_the_quantised_graph_loads_and_finds_nearly_all_of_the_exact_pool(
        tmp_path: Path) -> None:
    folder = tmp_path / "m"
    served_model(folder, random_vectors(6, len(ITEMS)), items=ITEMS)
    written = add_index(folder, json.loads((folder / "manifest.json").read_text()), "hnsw-sq8")
    assert written["model"]["ann"]["kind"] == "hnsw-sq8" and written["model"]["ann"]["M"] == 16
    model = load_served_model(folder, ef_search=512)
    table = ItemTable(model, in_stock_catalog(ITEMS, set(ITEMS) - {"i3"}))
    queries = random_vectors(7, 16) * 3.0
    exact = ExactRetrieval().propose(queries, table, 30)
    found = IndexRetrieval().propose(queries, table, 30)
    shared = [len(set(f.tolist()) & set(e.tolist())) for f, e in zip(found, exact, strict=True)]
    assert sum(shared) >= 0.9 * exact.size  # 8-bit rows: near ties may swap at the edge
    assert table.position["i3"] not in found
