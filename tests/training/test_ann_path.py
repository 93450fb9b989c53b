"""The trainer ships an approximate-retrieval index; the worker's retrieval and `evaluate
--retrieval worker` use it (a real trained model with the content branch)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from stream_rec.core.catalog import parse_catalog_item
from stream_rec.model import load_served_model
from stream_rec.model.ann import ANN_INDEX_FILE, add_index
from stream_rec.serving.candidates import ExactRetrieval, IndexRetrieval
from stream_rec.serving.item_table import ItemTable
from tests.training.synthetic import make_shop, write_events_folder
from tests.training.test_cli import _cli

pytest.importorskip("faiss")


def test_catalog_only_items_are_retrieved_beside_the_graph(shop, trained, tmp_path):
    _, source = trained
    folder = tmp_path / "v1"
    shutil.copytree(source, folder)
    add_index(folder, json.loads((folder / "manifest.json").read_text()), "hnsw-flat")
    model = load_served_model(folder, ef_search=1024)
    assert model.ann is not None
    catalog = {i: parse_catalog_item(i, json.dumps(a).encode()) for i, a in shop.items.items()}
    table = ItemTable(model, catalog)
    new = {f"new-{n}": {"category": f"c{n % 10}", "shape": f"s{n % 9}"} for n in range(60)}
    for item_id, attributes in new.items():
        catalog[item_id] = parse_catalog_item(item_id, json.dumps(
            {**attributes, "in_stock": item_id != "new-3"}).encode())
        table.upsert(catalog[item_id], catalog)
    vocab_gone = str(model.item_ids[5])
    table.upsert(parse_catalog_item(vocab_gone, json.dumps({"in_stock": False}).encode()),
                 catalog)
    histories = [[(str(model.item_ids[n]), "view")] for n in range(0, 40, 4)]
    queries = model.query_vectors(histories, catalog)
    exact = ExactRetrieval().propose(queries, table, 80)
    found = IndexRetrieval().propose(queries, table, 80)
    catalog_only = set(range(table.n_vocab, len(table.ids)))
    assert any(set(row.tolist()) & catalog_only for row in found)  # the merge is exercised
    columns, _ = table.retrieval_matrix()
    for query, want, got in zip(queries, exact, found, strict=True):
        # The same candidates, up to items that tie (same attributes, same row).
        np.testing.assert_allclose(np.sort(query @ columns[:, got]),
                                   np.sort(query @ columns[:, want]), rtol=1e-5, atol=1e-6)
        assert len(set(got.tolist()) ^ set(want.tolist())) <= 6
        assert table.position["new-3"] not in got and table.position[vocab_gone] not in got


def test_the_trainer_ships_an_index_and_evaluate_reads_the_worker_path(tmp_path):
    data = write_events_folder(make_shop(n_items=60, n_categories=6, n_train=300, n_test=40),
                               tmp_path / "shop")
    registry = tmp_path / "registry"
    trained = _cli("train", "--data", f"events:{data}", "--registry", str(registry),
                   "--epochs", "2", env={"STREAM_REC_RETRIEVAL_INDEX_MIN_ITEMS": "1",
                                         # float rows, so the comparisons below are exact
                                         "STREAM_REC_RETRIEVAL_INDEX_KIND": "hnsw-flat"})
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "approximate-retrieval index" in trained.stderr
    version = next(p.name for p in registry.iterdir() if (p / "manifest.json").is_file())
    manifest = json.loads((registry / version / "manifest.json").read_text())
    assert ANN_INDEX_FILE in manifest["files"]
    assert manifest["model"]["ann"]["n_items"] == manifest["model"]["n_items"]
    check = manifest["model"]["ann"]["check"]  # the trainer's own recall check
    assert check["recall@200"] == 1.0 and check["cases"] == 40 * 5
    out = _cli("evaluate", "--model", version, "--registry", str(registry), "--data",
               f"events:{data}", "--k", "10", "--pool", "30", "--json", "--threads", "1",
               "--retrieval", "worker")
    assert manifest["model"]["ann"]["kind"] == "hnsw-flat"
    assert out.returncode == 0, out.stderr[-2000:]
    metrics = json.loads(out.stdout)
    assert metrics["recall@30"] == 1.0  # 60 items: the graph search is exact
    assert "built_for_this_evaluation" not in metrics["index"]
    exact = metrics["exact_retrieval"]
    for key in ("P@10", "MRR@10", "n_cases"):
        assert metrics[key] == exact[key]
    # The worker's pool is the model's top 30: the same lists as scoring every item, here.
    every = _cli("evaluate", "--model", version, "--registry", str(registry), "--data",
                 f"events:{data}", "--k", "10", "--pool", "30", "--json", "--threads", "1")
    assert every.returncode == 0, every.stderr[-2000:]
    assert np.isclose(json.loads(every.stdout)["P@10"], exact["P@10"])


def test_an_index_that_misses_too_much_is_not_shipped(shop, trained, tmp_path, monkeypatch):
    from stream_rec.config import load_settings
    from training import pipeline

    _, source = trained
    folder = tmp_path / "v1"
    shutil.copytree(source, folder)
    manifest = add_index(folder, json.loads((folder / "manifest.json").read_text()))
    monkeypatch.setattr(pipeline, "MIN_INDEX_RECALL", 1.01)  # no index can reach it
    said: list[str] = []
    checked = pipeline.check_index(folder, manifest, shop, load_settings(), said.append)
    assert ANN_INDEX_FILE not in checked["files"] and not (folder / ANN_INDEX_FILE).exists()
    assert checked["model"]["ann"]["dropped"] is True
    assert any("left out" in line for line in said)
    assert load_served_model(folder).ann is None  # the folder verifies, and serves exactly
