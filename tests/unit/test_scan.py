"""Retrieval through the 8-bit scan (``model/scan.py``): the codes, the search against the
exact top k, the availability filter, and the worker's classes using it (a tiny real model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stream_rec.core.catalog import parse_catalog_item
from stream_rec.model.ann import allowed_bitmap
from stream_rec.model.scan import Int8Scan, quantise_rows
from stream_rec.serving.candidates import IndexRetrieval
from stream_rec.serving.item_table import ItemTable
from tests.unit.test_pools import (
    in_stock_catalog,
    random_vectors,
    retrieved_both_ways,
    served_model,
)

pytest.importorskip("onnxruntime")
ITEMS = tuple(f"i{n}" for n in range(300))


def _rows(seed: int, n: int, d: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def test_codes_give_back_each_row_within_half_a_step() -> None:
    rows = _rows(0, 50, 16) * np.linspace(0.01, 30, 50, dtype=np.float32)[:, None]
    rows[7] = 0.0
    codes, scales = quantise_rows(rows)
    assert codes.dtype == np.int8 and scales.dtype == np.float32
    assert np.abs(codes).max() <= 127
    assert np.all(np.abs(codes * scales[:, None] - rows) <= scales[:, None] / 2 + 1e-6)
    assert scales[7] == 1.0 and not codes[7].any()


@pytest.mark.parametrize("batch", [1, 3, 17])
def test_the_scan_returns_the_exact_top_k_with_exact_scores(batch: int) -> None:
    vectors = _rows(1, 4000, 32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = _rows(2, batch, 32) * 3.0
    scores, rows = Int8Scan(vectors).search(queries, 100)
    exact = queries @ vectors.T
    for n in range(batch):
        want = np.argsort(-exact[n])[:100]
        assert set(rows[n].tolist()) == set(want.tolist())
        np.testing.assert_allclose(scores[n], exact[n, rows[n]], rtol=1e-5, atol=1e-5)
        assert (np.diff(scores[n]) <= 0).all()  # best first


def test_without_a_margin_the_codes_alone_choose_and_miss_little() -> None:
    vectors = _rows(3, 4000, 32)
    queries = _rows(4, 8, 32)
    _, rows = Int8Scan(vectors, margin=0).search(queries, 100)
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :100]
    shared = sum(len(set(f.tolist()) & set(e.tolist())) for f, e in zip(rows, exact,
                                                                        strict=True))
    assert 0.9 * exact.size <= shared <= exact.size


def test_blocked_rows_are_never_returned_and_a_short_catalog_pads() -> None:
    vectors = _rows(5, 40, 8)
    blocked = np.arange(0, 40, 3)
    scan = Int8Scan(vectors)
    bitmap = allowed_bitmap(blocked, 40)
    scores, rows = scan.search(_rows(6, 4, 8), 30, bitmap)
    open_rows = 40 - len(blocked)
    assert (rows[:, :open_rows] >= 0).all() and not set(rows[:, :open_rows].ravel()) & set(
        blocked.tolist())
    assert (rows[:, open_rows:] == -1).all() and np.isneginf(scores[:, open_rows:]).all()
    # A new bitmap object (the stock changed) is read again, not the one kept from before.
    _, rows = scan.search(_rows(6, 4, 8), 5, allowed_bitmap(np.arange(1, 40), 40))
    assert (rows[:, 0] == 0).all() and (rows[:, 1:] == -1).all()
    _, rows = scan.search(_rows(6, 2, 8), 5, allowed_bitmap(np.arange(40), 40))
    assert (rows == -1).all()


def test_the_worker_retrieves_through_the_scan_what_it_retrieves_exactly(
        tmp_path: Path) -> None:
    from stream_rec.model import load_served_model

    served_model(tmp_path / "m", random_vectors(1, len(ITEMS)), items=ITEMS)
    assert load_served_model(tmp_path / "m").ann is None  # float32 unless asked
    model = load_served_model(tmp_path / "m", retrieval_scan="int8")
    assert isinstance(model.ann, Int8Scan) and "8-bit" in model.ann.describe()
    table, queries, exact, found, out_of_stock = retrieved_both_ways(model, ITEMS)
    for want, got in zip(exact, found, strict=True):
        assert set(got.tolist()) == set(want.tolist())
        assert not {ITEMS[p] for p in got} & out_of_stock
    # The scan reads the model's own rows: no transposed copy of the vocabulary is built.
    fresh = ItemTable(model, in_stock_catalog(ITEMS))
    IndexRetrieval().propose(queries, fresh, 50)
    assert fresh._all.buffer is None
    # Once the worker keeps the rows in its own memory, the scan's second look reads those.
    model.keep_in_memory()
    assert model.ann.vectors is model.item_vectors


def test_similar_items_through_the_scan_are_the_exact_ones(tmp_path: Path) -> None:
    from stream_rec.model import load_served_model
    from stream_rec.serving.recommender import Recommender, RecommenderConfig
    from stream_rec.serving.request_lists import similar_items

    served_model(tmp_path / "m", random_vectors(1, len(ITEMS)), items=ITEMS)
    bodies = []
    for scan in ("int8", "float32"):
        rec = Recommender(RecommenderConfig(k=5, pool=20))
        for item in ITEMS:
            rec.upsert_item(parse_catalog_item(item, json.dumps({"category": "c"}).encode()))
        rec.swap_model(load_served_model(tmp_path / "m", retrieval_scan=scan))
        bodies.append(similar_items(rec, "i10", 30, None, True))
    scanned, exact = ([(i["item_id"], i["score"]) for i in body["items"]]
                      for body in bodies if body is not None)
    assert [i for i, _ in scanned] == [i for i, _ in exact]
    np.testing.assert_allclose([s for _, s in scanned], [s for _, s in exact], atol=1e-5)


def test_a_catalog_in_several_column_slices_gives_the_same_answer_as_in_one() -> None:
    vectors = _rows(7, 1000, 16)
    queries = _rows(8, 70, 16)  # more than one slice of rows as well
    blocked = np.arange(0, 1000, 9)
    bitmap = allowed_bitmap(blocked, 1000)
    whole = Int8Scan(vectors).search(queries, 60, bitmap)
    sliced = Int8Scan(vectors, column_chunk=128).search(queries, 60, bitmap)
    assert len(Int8Scan(vectors, column_chunk=128).parts) == 8
    np.testing.assert_array_equal(sliced[1], whole[1])
    np.testing.assert_allclose(sliced[0], whole[0], rtol=1e-6)
    assert not set(sliced[1].ravel()) & set(blocked.tolist())


def test_an_onnxruntime_without_the_fused_product_serves_with_the_float_product(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
        ) -> None:
    from stream_rec.model import load_served_model

    def refuse(*_: object) -> None:
        raise RuntimeError("Could not find an implementation for MatMulIntegerToFloat")

    served_model(tmp_path / "m", random_vectors(1, len(ITEMS)), items=ITEMS)
    monkeypatch.setattr("stream_rec.model.scan._product_session", refuse)
    model = load_served_model(tmp_path / "m", retrieval_scan="int8")
    assert model.ann is None  # served, retrieving exactly
    assert "float32 product" in caplog.text
