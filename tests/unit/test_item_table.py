"""The serving item table: growth by appending, availability as a mask, the zero row."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stream_rec.core.catalog import CatalogItem, parse_catalog_item
from stream_rec.rerank import stable_item_keys
from stream_rec.serving.candidates import ExactRetrieval
from stream_rec.serving.item_table import ItemTable
from tests.unit.test_pools import MODEL_ITEMS, random_vectors, served_model


def _item(item_id: str, category: str, in_stock: bool = True) -> CatalogItem:
    return parse_catalog_item(item_id, json.dumps({"category": category,
                                                   "in_stock": in_stock}).encode())


def test_many_catalog_only_items_keep_every_array_in_line(tmp_path: Path) -> None:
    model = served_model(tmp_path / "m", random_vectors(1))
    catalog = {i: _item(i, "c0") for i in MODEL_ITEMS}
    table = ItemTable(model, catalog)
    new = [f"new-{n}" for n in range(2500)]  # the buffers grow twice
    for n, item_id in enumerate(new):
        catalog[item_id] = _item(item_id, f"c{n % 7}", in_stock=n % 5 != 0)
        table.upsert(catalog[item_id], catalog)
    size = len(MODEL_ITEMS) + len(new)
    assert len(table.ids) == size
    # Grown by a quarter (at least 1,024 rows) at a time, not doubled.
    assert all(len(b) <= size + max(size // 4, 1024) for b in table._buffers.values())
    for array in (table.model_index, table.attributes, table.keys, table.category,
                  table.unavailable):
        assert len(array) == size
    positions = np.array([table.position[i] for i in new])
    np.testing.assert_array_equal(table.keys[positions], stable_item_keys(new))
    np.testing.assert_array_equal(table.unavailable[positions],
                                  [n % 5 == 0 for n in range(len(new))])
    codes = [table.category_codes[f"c{n % 7}"] for n in range(len(new))]
    np.testing.assert_array_equal(table.category[positions], codes)
    assert (table.model_index[positions] == model.artifact.item_index(["never-seen"])[0]).all()
    # The newest first, out-of-stock ones left out.
    assert table.new_items(3) == [table.position[i] for i in ("new-2499", "new-2498", "new-2497")]


def test_retrieval_never_returns_an_unavailable_item_and_takes_it_back(tmp_path: Path) -> None:
    vectors = random_vectors(2)
    model = served_model(tmp_path / "m", vectors)
    catalog = {i: _item(i, "c0") for i in MODEL_ITEMS}
    table = ItemTable(model, catalog)
    query = vectors[3:4] * 5.0
    retrieval = ExactRetrieval()
    everything = retrieval.propose(query, table, len(MODEL_ITEMS))[0]
    assert everything[0] == 3 and sorted(everything) == list(range(len(MODEL_ITEMS)))
    table.upsert(_item("i3", "c0", in_stock=False), catalog)
    table.delist("i7")
    open_now = retrieval.propose(query, table, len(MODEL_ITEMS))[0]
    assert sorted(open_now) == sorted(set(range(len(MODEL_ITEMS))) - {3, 7})
    assert list(open_now) == [p for p in everything if p not in (3, 7)]  # same order
    table.upsert(_item("i3", "c0"), catalog)
    assert retrieval.propose(query, table, 1)[0][0] == 3
    matrix, blocked = table.retrieval_matrix()
    assert matrix.shape == (vectors.shape[1], len(MODEL_ITEMS)) and list(blocked) == [7]
    np.testing.assert_allclose(matrix, vectors.T)  # the vocabulary, no copy per change


def test_diversity_vectors_are_the_models_and_zero_for_catalog_only_items(tmp_path: Path
                                                                           ) -> None:
    vectors = random_vectors(3)
    model = served_model(tmp_path / "m", vectors)
    catalog = {i: _item(i, "c0") for i in MODEL_ITEMS} | {"extra": _item("extra", "c1")}
    table = ItemTable(model, catalog)
    positions = np.array([[0, table.position["extra"], -1, 9]])
    got = np.asarray(table.vectors(positions))
    np.testing.assert_allclose(got[0, [0, 3]], vectors[[0, 9]])
    assert not got[0, 1].any() and not got[0, 2].any()
    # The model's own vectors, mapped from its file: no copy of the table in the process.
    assert not model.item_vectors.flags.writeable and not model.item_vectors.flags.owndata


def test_tables_of_one_model_share_its_vocabulary_map_but_not_their_own_items(
        tmp_path: Path) -> None:
    """Each table extends the model's id -> row map without changing it: an item one table
    appended is unknown to another table of the same model and to the model's features."""
    model = served_model(tmp_path / "m", random_vectors(1))
    catalog = {i: _item(i, "c0") for i in MODEL_ITEMS}
    first, second = ItemTable(model, catalog), ItemTable(model, catalog)
    first.upsert(_item("only-first", "c1"), catalog)
    second.upsert(_item("only-second", "c1"), catalog)
    n = len(MODEL_ITEMS)
    assert first.position["only-first"] == n and second.position["only-second"] == n
    assert "only-second" not in first.position and first.position.get("only-second") is None
    assert first.position.get("only-second", -1) == -1
    assert [first.position[i] for i in MODEL_ITEMS] == list(range(n))
    assert len(first.position) == len(second.position) == n + 1
    # The model still sees only its vocabulary: a table's item is no model row.
    assert model.index_of(["only-first", MODEL_ITEMS[3]]).tolist() == [-1, 3]
    assert (model.row_of("only-first"), model.row_of(MODEL_ITEMS[3])) == (-1, 3)
    with pytest.raises(KeyError):
        first.position["never-listed"]
    with pytest.raises(ValueError):
        first.position[MODEL_ITEMS[0]] = 99  # a vocabulary item keeps its row


def test_a_model_loaded_with_the_catalogs_ids_holds_no_copy_of_them(tmp_path: Path) -> None:
    from stream_rec.model import load_served_model
    from stream_rec.serving.catalog_view import CatalogView

    served_model(tmp_path / "m", random_vectors(1))
    view = CatalogView()
    for item_id in MODEL_ITEMS[:7]:  # some of the vocabulary is not listed (yet)
        view.upsert(_item("".join(item_id), "c0"))  # a string of its own, equal to the id
    model = load_served_model(tmp_path / "m", same_ids=view.shared_id)
    ids = model.artifact.item_ids
    assert ids == list(MODEL_ITEMS)
    assert all(ids[n] is view.items[i].item_id for n, i in enumerate(MODEL_ITEMS[:7]))
    assert model.index_of(list(MODEL_ITEMS)).tolist() == list(range(len(MODEL_ITEMS)))
    assert [model.row_of(i) for i in MODEL_ITEMS] == list(range(len(MODEL_ITEMS)))


def test_a_served_model_moves_its_mapped_arrays_into_memory_unchanged(tmp_path: Path) -> None:
    """Loaded, the vectors and attributes are the artifact files' pages; ``keep_in_memory``
    (called once the model serves) copies them into the process, read-only, same values."""
    vectors = random_vectors(5)
    model = served_model(tmp_path / "m", vectors)
    table = ItemTable(model, {i: _item(i, "c0") for i in MODEL_ITEMS})
    positions = np.array([[4, -1, 0]])
    before = np.asarray(table.vectors(positions))
    mapped = model.item_vectors
    assert not mapped.flags.owndata and not mapped.flags.writeable
    model.keep_in_memory()
    assert model.item_vectors is model.artifact.item_embeddings
    assert model.item_vectors.flags.owndata and not model.item_vectors.flags.writeable
    assert model.artifact.item_attributes.flags.owndata
    np.testing.assert_array_equal(model.item_vectors, mapped)
    np.testing.assert_array_equal(np.asarray(table.vectors(positions)), before)
    owned = model.item_vectors
    model.keep_in_memory()  # nothing left to copy
    assert model.item_vectors is owned


def test_the_vocabularys_rows_are_what_the_models_features_say(tmp_path: Path) -> None:
    """The table fills the vocabulary's model indices and attributes without a lookup per id:
    the same values the model's own feature code gives, in 32 bits."""
    items = tuple(f"x{n}" for n in range(300))  # row numbers past the interpreter's small ints
    model = served_model(tmp_path / "a", random_vectors(1, len(items)), items=items)
    catalog = {i: _item(i, f"c{n % 3}") for n, i in enumerate(items)}
    table = ItemTable(model, catalog)
    ids = list(items)
    np.testing.assert_array_equal(table.model_index[:300], model.artifact.item_index(ids))
    np.testing.assert_array_equal(table.attributes[:300],
                                  model.features.attributes_of(ids, catalog))
    assert table.model_index.dtype == table.attributes.dtype == np.int32
    # A second model's id -> row map uses the same int objects for its rows.
    other = served_model(tmp_path / "b", random_vectors(2, len(items)), version="v2",
                         items=items[::-1])
    mine, theirs = model.artifact.position_map(), other.artifact.position_map()
    assert mine["x299"] == 299 and theirs["x0"] == 299 and mine["x299"] is theirs["x0"]


def test_a_large_vocabulary_maps_every_id_to_its_row_across_the_mapping_slices() -> None:
    from stream_rec.model.artifact import _ID_SLICE, ModelArtifact, row_numbers

    n = 2 * _ID_SLICE + 7  # three slices, the last one short
    row_numbers(n + 100)  # the shared rows may outnumber a vocabulary's ids
    ids = [f"item-{k}" for k in range(n)]
    artifact = ModelArtifact(Path("unused"), {}, ids, np.zeros((n, 2), np.float32),
                             np.zeros((n, 0), np.int64), [], {}, {})
    mapped = artifact.position_map()
    assert len(mapped) == n
    assert all(mapped[item] == row for row, item in enumerate(ids))
    assert artifact.positions(["item-0", ids[-1], "unknown"]).tolist()[:2] == [0, n - 1]
