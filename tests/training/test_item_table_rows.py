"""Catalog-only items in retrieval: their columns are built from their attributes, kept as
the catalog changes and as the matrix grows (a real trained model with the content branch)."""

from __future__ import annotations

import json

import numpy as np

from stream_rec.core.catalog import parse_catalog_item
from stream_rec.model import load_served_model
from stream_rec.serving.item_table import ItemTable


def _catalog_item(item_id: str, attributes: dict[str, str], in_stock: bool = True):
    return parse_catalog_item(item_id, json.dumps({**attributes,
                                                   "in_stock": in_stock}).encode())


def test_catalog_only_columns_follow_the_catalog(shop, trained):
    _, folder = trained
    model = load_served_model(folder)
    catalog = {i: _catalog_item(i, a) for i, a in shop.items.items()}
    table = ItemTable(model, catalog)
    # The vocabulary's rows (filled without a lookup per id) are the model's own features.
    vocab = model.artifact.item_ids
    np.testing.assert_array_equal(table.attributes[: len(vocab)],
                                  model.features.attributes_of(vocab, catalog))
    np.testing.assert_array_equal(table.model_index[: len(vocab)],
                                  model.artifact.item_index(vocab))
    matrix, _ = table.retrieval_matrix()
    first = matrix.shape[1]
    # More new items than the matrix has room for: it grows, earlier columns stay right.
    new = {f"new-{n}": {"category": f"c{n % 10}", "shape": f"s{n % 9}"} for n in range(1500)}
    for item_id, attributes in new.items():
        catalog[item_id] = _catalog_item(item_id, attributes, in_stock=item_id != "new-7")
        table.upsert(catalog[item_id], catalog)
    matrix, blocked = table.retrieval_matrix()
    positions = np.array([table.position[i] for i in new])
    assert matrix.shape[1] == len(table.ids) == first + len(new)
    want = model.catalog_rows(table.attributes[positions])
    assert want is not None
    np.testing.assert_allclose(matrix[:, positions].T, want, atol=1e-6)
    assert table.position["new-7"] in set(blocked)
    # An item's new attributes give it a new column at the next lookup.
    catalog["new-3"] = _catalog_item("new-3", {"category": "c9", "shape": "s1"})
    table.upsert(catalog["new-3"], catalog)
    matrix, _ = table.retrieval_matrix()
    pos = table.position["new-3"]
    np.testing.assert_allclose(matrix[:, pos], model.catalog_rows(table.attributes[[pos]])[0],
                               atol=1e-6)
    norms = table.retrieval_norms()
    np.testing.assert_allclose(norms, np.linalg.norm(matrix, axis=0), rtol=1e-5)
