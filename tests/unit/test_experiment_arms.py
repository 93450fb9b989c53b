"""Model arms: a Recommender serves extra model versions, beside its main model, to the
requests whose experiment arm names them (``Recommender.set_arm_models``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stream_rec.core.catalog import parse_catalog_item
from stream_rec.core.events import Event
from stream_rec.core.experiments import ExperimentTag
from stream_rec.core.state import UserState, apply_event
from stream_rec.model import ServedModel, load_served_model, write_manifest
from stream_rec.rerank import RerankPolicy
from stream_rec.serving.lists import RecList, RecRequest
from stream_rec.serving.recommender import Recommender, RecommenderConfig
from tests.unit.fake_artifact import make_artifact

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

ITEMS = tuple(f"i{n}" for n in range(10))
DIM = 4


def _tiny_scoring_graph(path: Path, vectors: np.ndarray) -> None:
    """A real recommender signature: the shopper's vector is the sum of their (non-padding)
    history items' vectors; a candidate's score is its vector's dot product with it."""
    from onnx import TensorProto, helper, numpy_helper

    # Model indices: 0 padding, 1 unknown item, 2.. the vocabulary (artifact.FIRST_ITEM_INDEX).
    table = np.concatenate([np.zeros((2, DIM), np.float32), vectors]).astype(np.float32)
    nodes = [
        helper.make_node("Gather", ["table", "history_items"], ["history_vectors"], axis=0),
        helper.make_node("Greater", ["history_events", "zero"], ["real"]),
        helper.make_node("Cast", ["real"], ["real_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["real_f", "axis2"], ["mask"]),
        helper.make_node("Mul", ["history_vectors", "mask"], ["kept"]),
        helper.make_node("ReduceSum", ["kept", "axis1"], ["user_embedding"], keepdims=0),
        helper.make_node("Gather", ["table", "candidate_items"], ["candidate_vectors"], axis=0),
        helper.make_node("Unsqueeze", ["user_embedding", "axis2"], ["user_column"]),
        helper.make_node("MatMul", ["candidate_vectors", "user_column"], ["score_column"]),
        helper.make_node("Squeeze", ["score_column", "axis2"], ["scores"]),
    ]
    ints = [helper.make_tensor_value_info(name, TensorProto.INT64, ["B", None])
            for name in ("history_items", "history_events", "candidate_items")]
    graph = helper.make_graph(
        nodes, "tiny-recommender", ints,
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["B", None]),
         helper.make_tensor_value_info("user_embedding", TensorProto.FLOAT, ["B", DIM])],
        initializer=[numpy_helper.from_array(table, "table"),
                     numpy_helper.from_array(np.array(0, np.int64), "zero"),
                     numpy_helper.from_array(np.array([1], np.int64), "axis1"),
                     numpy_helper.from_array(np.array([2], np.int64), "axis2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _model(folder: Path, version: str, seed: int) -> ServedModel:
    """A small real model: fake_artifact's folder with this module's items and graph."""
    make_artifact(folder, version=version, with_attributes=False)
    vectors = np.random.default_rng(seed).normal(size=(len(ITEMS), DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    (folder / "item_ids.json").write_text(json.dumps(list(ITEMS)))
    np.save(folder / "item_embeddings.npy", vectors)
    np.save(folder / "item_attributes.npy", np.zeros((len(ITEMS), 0), np.int64))
    _tiny_scoring_graph(folder / "model.onnx", vectors)
    manifest = json.loads((folder / "manifest.json").read_text())
    write_manifest(folder, manifest, files=manifest["files"])  # checksums of the new files
    return load_served_model(folder)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[ServedModel, ServedModel]:
    root = tmp_path_factory.mktemp("arm-models")
    return _model(root / "v1", "v1", seed=1), _model(root / "v2", "v2", seed=2)


def _recommender(models: tuple[ServedModel, ServedModel]) -> Recommender:
    rec = Recommender(RecommenderConfig(k=len(ITEMS) + 2, pool=20, trending_candidates=5,
                                        new_item_candidates=5))
    for n, item in enumerate(ITEMS):
        rec.upsert_item(parse_catalog_item(item, b'{"category": "c%d"}' % (n % 3)))
    main, arm = models
    rec.swap_model(main)
    rec.set_arm_models([arm])
    return rec


def _state(*items: str) -> UserState:
    state = UserState()
    for n, item in enumerate(items):
        state = apply_event(state, Event(f"e{n}", "u", item, "view", 1_700_000_000_000 + n),
                            None)
    return state


def _request(user: str, model: str | None, *history: str) -> RecRequest:
    tag = None if model is None else ExperimentTag("exp-1", f"arm-{model}", 1)
    return RecRequest(user, f"ev-{user}", _state(*history), 0.0,
                      RerankPolicy.parse("none"), tag, model)


def _ids(rec: RecList) -> list[str]:
    return [i.item_id for i in rec.items]


def test_the_models_score_differently(models: tuple[ServedModel, ServedModel]) -> None:
    """The premise: the two versions are different models (so which one scored shows)."""
    v1, v2 = models
    assert (v1.version, v2.version) == ("v1", "v2")
    history, candidates = [[("i0", 1), ("i3", 1)]], [list(ITEMS)]
    one, two = v1.score(history, candidates), v2.score(history, candidates)
    assert one.shape == two.shape == (1, len(ITEMS))
    assert not np.allclose(one, two)


def test_requests_get_the_model_their_arm_names_in_request_order(
        models: tuple[ServedModel, ServedModel]) -> None:
    rec = _recommender(models)
    requests = [_request("a", None, "i1"), _request("b", "v2", "i2"),
                _request("c", "v1", "i3"), _request("d", "v2", "i4", "i5"),
                _request("e", None, "i6")]
    out = rec.recommend(requests)
    assert [r.user_id for r in out] == ["a", "b", "c", "d", "e"]
    assert [r.model_version for r in out] == ["v1", "v2", "v1", "v2", "v1"]
    assert not any(r.fallback for r in out)
    assert [r.experiment for r in out] == [q.experiment for q in requests]
    # Each list is the one its own model makes for the request alone.
    alone = [rec.recommend([q])[0] for q in requests]
    assert [_ids(r) for r in out] == [_ids(r) for r in alone]
    # The models order the same request differently (k covers every item: same set).
    [by_v1], [by_v2] = rec.recommend([_request("x", None, "i0", "i3")]), rec.recommend(
        [_request("x", "v2", "i0", "i3")])
    assert by_v1.model_version == "v1" and by_v2.model_version == "v2"
    assert _ids(by_v1) != _ids(by_v2)


def test_a_version_not_loaded_gets_the_main_model(
        models: tuple[ServedModel, ServedModel]) -> None:
    rec = _recommender(models)
    out = rec.recommend([_request("a", "v9", "i1"), _request("b", "v2", "i1"),
                         _request("c", "v9", "i2")])
    assert [r.model_version for r in out] == ["v1", "v2", "v1"]
    # With no arm model asked for at all, the batch is the main model's.
    assert {r.model_version for r in rec.recommend([_request("a", "v9", "i1")])} == {"v1"}
    # Arm models dropped: every request gets the main model.
    rec.set_arm_models([])
    assert [r.model_version for r in rec.recommend([_request("b", "v2", "i1")])] == ["v1"]


def test_set_arm_models_keeps_a_served_versions_item_table(
        models: tuple[ServedModel, ServedModel]) -> None:
    rec = _recommender(models)
    before = rec.arm_models["v2"]
    rec.set_arm_models([models[1]])
    assert rec.arm_models["v2"] is before


def test_catalog_changes_reach_the_arm_models_table(
        models: tuple[ServedModel, ServedModel]) -> None:
    rec = _recommender(models)
    batch = [_request("a", None, "i1", "i2"), _request("b", "v2", "i1", "i2")]
    before = rec.recommend(batch)
    assert all("i7" in _ids(r) for r in before)  # k covers the catalog: every item shows
    rec.delist_item("i7")
    after = rec.recommend(batch)
    assert [r.model_version for r in after] == ["v1", "v2"]
    for made in after:
        assert "i7" not in _ids(made), made.model_version
        assert set(_ids(made)) == set(ITEMS) - {"i7"}
    # A catalog-only item (neither model knows it) reaches both tables.
    rec.upsert_item(parse_catalog_item("fresh", b'{"category": "c1"}'))
    fresh = rec.recommend(batch)
    assert all("fresh" in _ids(r) for r in fresh)
    # Delisted again: gone from both.
    rec.delist_item("fresh")
    assert all("fresh" not in _ids(r) for r in rec.recommend(batch))
    # Back in the catalog: in both again.
    rec.upsert_item(parse_catalog_item("i7", b'{"category": "c1"}'))
    assert all("i7" in _ids(r) for r in rec.recommend(batch))
    # Out of stock: in neither.
    rec.upsert_item(parse_catalog_item("i7", b'{"category": "c1", "in_stock": false}'))
    assert all("i7" not in _ids(r) for r in rec.recommend(batch))


def test_a_model_loaded_after_a_change_builds_its_table_from_the_catalog_as_it_is(
        models: tuple[ServedModel, ServedModel]) -> None:
    rec = _recommender(models)
    rec.set_arm_models([])
    rec.upsert_item(parse_catalog_item("fresh", b'{"category": "c1"}'))
    rec.upsert_item(parse_catalog_item("i4", b'{"category": "c1", "in_stock": false}'))
    rec.set_arm_models([models[1]])
    [late] = rec.recommend([_request("b", "v2", "i1", "i2")])
    assert late.model_version == "v2"
    assert "fresh" in _ids(late) and "i4" not in _ids(late)


@pytest.mark.parametrize("loaded", ["arm", "main"])
def test_an_item_delisted_before_a_model_is_loaded_never_appears(
        models: tuple[ServedModel, ServedModel], loaded: str) -> None:
    rec = _recommender(models)
    rec.set_arm_models([])
    rec.delist_item("i7")
    if loaded == "arm":
        rec.set_arm_models([models[1]])
    else:
        rec.swap_model(models[0])
    made = rec.recommend([_request("a", None, "i1", "i2"), _request("b", "v2", "i1", "i2")])
    assert {r.model_version for r in made} == ({"v1", "v2"} if loaded == "arm" else {"v1"})
    for rec_list in made:
        assert "i7" not in _ids(rec_list), rec_list.model_version
