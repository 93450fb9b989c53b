"""Model inputs from raw histories and candidates (the code the worker and evaluate share)."""

from __future__ import annotations

import numpy as np
import pytest

from stream_rec.core.catalog import CatalogItem
from stream_rec.model import FeatureBuilder, load_artifact
from tests.unit.fake_artifact import make_artifact


@pytest.fixture
def builder(tmp_path):
    return FeatureBuilder(load_artifact(make_artifact(tmp_path / "art", max_history=3)))


def test_histories_are_left_padded_and_truncated(builder):
    out = builder.history_inputs([[("a", "view")],
                                  [("a", "view"), ("b", "click"), ("c", 3), ("zz", "purchase")]])
    np.testing.assert_array_equal(out["history_items"], [[0, 0, 2], [3, 4, 1]])
    np.testing.assert_array_equal(out["history_events"], [[0, 0, 1], [2, 4, 4]])
    assert out["history_attributes"].shape == (2, 3, 2)
    np.testing.assert_array_equal(out["history_attributes"][0], [[0, 0], [0, 0], [2, 2]])


def test_empty_history_is_one_padding_slot(builder):
    out = builder.history_inputs([[]])
    np.testing.assert_array_equal(out["history_items"], [[0]])


def test_unknown_candidate_gets_attributes_from_the_catalog(builder):
    catalog = {"new": {"category": "hats", "price": "55.5"},
               "odd": {"category": "socks", "price": "n/a"}}
    out = builder.candidate_inputs(["b", "new", "odd", "ghost"], catalog)
    np.testing.assert_array_equal(out["candidate_items"], [[3, 1, 1, 1]])
    # hats = 3; price 55.5 is in bucket 1 of [10, 100] -> index 3; unknown values -> 1
    np.testing.assert_array_equal(out["candidate_attributes"][0],
                                  [[3, 3], [3, 3], [1, 1], [1, 1]])


def test_catalog_items_from_the_worker_are_understood(builder):
    catalog = {"new": CatalogItem("new", category="shoes", price=500.0)}
    out = builder.candidate_inputs(["new"], catalog)
    np.testing.assert_array_equal(out["candidate_attributes"][0], [[2, 4]])


def test_per_row_candidates_and_ragged_rows(builder):
    out = builder.inputs([[("a", "view")], [("b", "view")]], [["a", "b"], ["c", "a"]])
    assert out["candidate_items"].shape == (2, 2)
    with pytest.raises(ValueError, match="same length"):
        builder.candidate_inputs([["a"], ["a", "b"]])


def test_without_attributes_no_attribute_inputs(tmp_path):
    builder = FeatureBuilder(load_artifact(make_artifact(tmp_path / "a", with_attributes=False)))
    out = builder.inputs([[("a", "click")]], ["a", "x"])
    assert set(out) == {"history_items", "history_events", "candidate_items"}
