"""The fusion model learns, exports to ONNX faithfully, and serves new items and shoppers."""

from __future__ import annotations

import numpy as np
import pytest

from stream_rec.model import ArtifactError, load_artifact, load_served_model
from stream_rec.model.scorer import OnnxScorer, history_spans, length_buckets, merge_buckets
from stream_rec.offline.evaluate import metrics_for, prepare_pools
from tests.training.conftest import SMALL
from tests.training.synthetic import make_shop, successor_table

tf = pytest.importorskip("tensorflow")


def test_learns_the_generated_structure(shop, trained):
    _, folder = trained
    pools = prepare_pools(load_artifact(folder), shop, pool=50, k=10, threads=1,
                          progress=lambda line: None)
    warm = ~pools.cold_target
    out = metrics_for(pools, None, k=10, only=warm)
    chance = 100 * 10 / 240
    # followers are 90% of next items; the successor is learnable, a random jump is not
    assert out["P@10"] > 60 > 5 * chance
    assert out["MRR@10"] > 40


def test_content_branch_ranks_items_never_seen_in_training(shop, trained):
    _, folder = trained
    model = load_served_model(folder)
    new_items = [f"i{n}" for n in range(200, 240)]
    assert (model.index_of(new_items) < 0).all()
    cases = [c for c in shop.test_cases() if c.target.item_id in new_items]
    assert len(cases) > 50
    histories = [[(e.item_id, e.event_type) for e in c.history] for c in cases]
    scores = model.score(histories, [new_items] * len(cases), shop.items)
    target = np.array([new_items.index(c.target.item_id) for c in cases])
    rank = (scores > scores[np.arange(len(cases)), target][:, None]).sum(axis=1) + 1
    # 40 new items, 4 per category: attributes alone find the successor's category
    assert (rank <= 4).mean() > 3 * 4 / 40


def test_new_item_is_scored_through_its_attributes(shop, trained):
    _, folder = trained
    model = load_served_model(folder)
    succ = successor_table(240, 10, n_known=200)
    history = [("i3", "view"), ("i13", "click")]
    same = {"category": "c3", "shape": "s0"}  # i13 is in category 3, like its successor
    other = {"category": "c7", "shape": "s0"}
    catalog = {"new-a": same, "new-b": other}
    scores = model.score([history], [["new-a", "new-b", f"i{succ[13]}"]], catalog)[0]
    assert model.index_of(["new-a", "new-b"]).tolist() == [-1, -1]
    assert scores[0] > scores[1]  # same category as the shopper's items wins
    assert scores[2] > scores[0]  # the known successor beats both
    moved = model.score([history], [["new-a"]], {"new-a": other})[0, 0]
    assert moved == pytest.approx(scores[1], abs=1e-5)  # the score follows the attributes


def test_new_shopper_needs_no_retraining(trained):
    _, folder = trained
    model = load_served_model(folder)
    queries = model.query_vectors([[("i5", "view")], [("i5", "view")], []])
    assert queries.shape == (3, model.item_vectors.shape[1])
    np.testing.assert_allclose(queries[0], queries[1])
    assert np.isfinite(queries).all()


def test_retrieval_ranks_the_vocabulary_by_the_models_own_scores(shop, trained):
    """With the content branch, query . item vector is the fused score, so retrieval finds
    the items the content branch favours as well (not only the collaborative ones)."""
    _, folder = trained
    model = load_served_model(folder)
    assert model.artifact.manifest["model"]["retrieval"] == "fused"
    histories = [[(e.item_id, e.event_type) for e in s.events[:3]] for s in shop.test[:8]]
    vocab = [str(i) for i in model.item_ids]
    scores = model.score(histories, [vocab] * len(histories), shop.items)
    by_vectors = model.query_vectors(histories, shop.items) @ model.item_vectors.T
    np.testing.assert_allclose(by_vectors, scores, rtol=1e-4, atol=1e-4)
    norms = np.linalg.norm(model.item_vectors, axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)  # unit rows: cosine similarity as before


def test_an_unseen_items_retrieval_row_scores_as_the_model_does(shop, trained):
    """Built in the worker from its catalog attributes, an item the model never saw gets the
    row whose dot product with the query is the model's score of it."""
    _, folder = trained
    model = load_served_model(folder)
    catalog = {"new-a": {"category": "c3", "shape": "s0"}, "new-b": {"category": "c7"}}
    rows = model.catalog_rows(model.features.attributes_of(list(catalog), catalog))
    assert rows is not None and rows.shape == (2, model.item_vectors.shape[1])
    histories = [[(e.item_id, e.event_type) for e in s.events[:3]] for s in shop.test[:6]]
    scores = model.score(histories, [list(catalog)] * len(histories), catalog)
    np.testing.assert_allclose(model.query_vectors(histories, catalog) @ rows.T, scores,
                               rtol=1e-4, atol=1e-4)


def test_the_collaborative_part_is_read_off_a_fused_model(trained):
    """Cold items' learnt vectors replace the unknown item's collaborative half: the probe
    must find that half (gates 1: they are inside the fused query) and the unknown item's
    vector the artifact ships."""
    from stream_rec.serving.collab_part import probe_collab_part

    _, folder = trained
    model = load_served_model(folder)
    part = probe_collab_part(model)
    assert part is not None and part.width == model.item_vectors.shape[1] // 2
    np.testing.assert_allclose(part.gates[1:], 1.0, atol=1e-3)
    assert model.artifact.content_tables is not None
    unknown = model.artifact.content_tables[1]
    np.testing.assert_allclose(part.unknown, unknown * part.row_norm, atol=1e-3)


def test_onnx_matches_tensorflow_on_real_inputs(shop, trained):
    from training.model import build_model

    result, folder = trained
    model = load_served_model(folder)
    histories = [[(e.item_id, e.event_type) for e in s.events[:4]] for s in shop.test[:16]]
    candidates = [f"i{n}" for n in range(0, 240, 3)] + ["brand-new"]
    inputs = model.features.inputs(histories, candidates, {**shop.items,
                                                            "brand-new": {"category": "c1"}})
    onnx_scores, onnx_users = model.scorer.run(inputs)
    keras_out = build_model(result.core)({k: tf.constant(v) for k, v in inputs.items()})
    assert np.max(np.abs(onnx_scores - keras_out["scores"].numpy())) <= 1e-4
    assert np.max(np.abs(onnx_users - keras_out["user_embedding"].numpy())) <= 1e-4


def test_graph_cut_at_the_candidates_scores_like_the_whole_graph(shop, trained):
    _, folder = trained
    model = load_served_model(folder)
    assert model.scorer.split  # the exported graph has the cut, and it passed the load check
    # Histories of many lengths (and one empty), so the shopper half runs in several groups.
    events = [(e.item_id, e.event_type) for s in shop.test[:40] for e in s.events]
    histories = [events[row * 3:row * 3 + n] for row, n in
                 enumerate([1, 2, 3, 5, 8, 13, 20, 2, 1, 7, 16, 4])]
    histories.append([])  # a shopper with no history yet
    assert len(merge_buckets(length_buckets(history_spans(
        model.features.history_inputs(histories, shop.items)["history_events"])))) >= 2
    candidates = [[f"i{(n * 7 + row) % 240}" for n in range(30)] + ["brand-new"]
                  for row in range(len(histories))]
    inputs = model.features.inputs(histories, candidates, {**shop.items,
                                                           "brand-new": {"category": "c2"}})
    whole, users = OnnxScorer(folder / "model.onnx", split=False).run(inputs)
    tower = model.scorer.shopper_tower(inputs)
    parts = model.scorer.candidate_scores(
        tower, {name: value for name, value in inputs.items() if name.startswith("candidate_")})
    np.testing.assert_allclose(tower.embedding, users, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(parts, whole, rtol=1e-5, atol=1e-6)
    # The served model's own entry points go through the halves once they are checked.
    served_scores, served_users = model.scorer.run(inputs)
    np.testing.assert_allclose(served_scores, whole, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.query_vectors(histories, shop.items), users,
                               rtol=1e-5, atol=1e-6)
    # Histories padded wider than their longest span (one group, narrower than the inputs):
    # the leading padding is cut, and the vectors are the same.
    short = {name: value[:3] for name, value in inputs.items()}
    padded = {name: (np.concatenate([np.zeros_like(value[:, :5]), value], axis=1)
                     if name.startswith("history_") else value)
              for name, value in short.items()}
    assert len(merge_buckets(length_buckets(history_spans(padded["history_events"])))) == 1
    np.testing.assert_allclose(model.scorer.shopper_tower(padded).embedding, users[:3],
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("weights_out_of_the_graph", [True, False])
def test_sessions_share_the_large_weights_and_score_as_before(shop, trained, monkeypatch,
                                                              weights_out_of_the_graph):
    """The shared weights are taken out of the graph the sessions parse (or, where
    onnxruntime refuses that, left in it): the scores are the unshared graph's either way."""
    import stream_rec.model.scorer as scorer_module

    if not weights_out_of_the_graph:
        def refused(*_args):
            raise RuntimeError("no external initialisers here")

        monkeypatch.setattr(scorer_module, "_session_without_shared_bytes", refused)

    _, folder = trained
    histories = [[(e.item_id, e.event_type) for e in s.events] for s in shop.test[:12]]
    candidates = [[f"i{(n * 5 + row) % 240}" for n in range(25)] for row in range(12)]
    inputs = load_served_model(folder).features.inputs(histories, candidates, shop.items)
    alone, users = OnnxScorer(folder / "model.onnx", split=False).run(inputs)
    # The test model's tables are small: share every weight, so the item table is among them.
    monkeypatch.setattr(scorer_module, "SHARE_BYTES", 1)
    shared = OnnxScorer(folder / "model.onnx")
    assert any("item_tower" in name for name in shared._shared)
    assert shared.agrees_when_split(inputs) and shared.split
    scores, shared_users = shared.run(inputs)
    np.testing.assert_allclose(scores, alone, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(shared_users, users, rtol=1e-5, atol=1e-6)
    # Neither half keeps a serialised copy of its graph (and its tables) beside the session.
    assert shared._halves is not None
    assert all(getattr(half, "_model_bytes", None) is None for half in shared._halves[:2])


def test_a_graph_without_candidate_inputs_is_not_cut(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from stream_rec.model.scorer import split_at_candidates

    x = helper.make_tensor_value_info("history_items", TensorProto.FLOAT, [None, 3])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, 3])
            for n in ("scores", "user_embedding")]
    graph = helper.make_graph([helper.make_node("Identity", ["history_items"], ["scores"]),
                               helper.make_node("Identity", ["history_items"],
                                                ["user_embedding"])], "g", [x], outs)
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph), str(path))
    assert split_at_candidates(path) is None


def test_parity_check_fails_loudly(trained):
    from training.export import ExportError, check_parity
    from training.model import build_model

    result, folder = trained
    with pytest.raises(ExportError, match="parity"):
        check_parity(build_model(result.core), result.core, folder / "model.onnx",
                     tolerance=-1.0)


def test_user_embedding_ranks_like_the_collaborative_branch(tmp_path):
    from training.export import export_artifact
    from training.train import TrainConfig, train_model

    shop = make_shop(n_items=100, n_train=300, n_test=20)
    config = TrainConfig(**{**SMALL, "epochs": 1, "use_content": False})
    result = train_model(shop, config, progress=lambda line: None)
    export_artifact(result, tmp_path / "v", {"version": "v"})
    model = load_served_model(tmp_path / "v")
    assert model.features.with_attributes is False
    history = [[("i1", "click"), ("i2", "purchase")]]
    retrieval = model.query_vectors(history) @ model.item_vectors.T
    fused = model.score(history, [list(model.item_ids)])
    ratio = fused / retrieval  # the purchase gate scales, it never reorders
    np.testing.assert_allclose(ratio, ratio[0, 0], rtol=1e-3)


def test_star_node_and_highway_export_and_serve(tmp_path):
    """SGNN-HN's parts pass the export checks (ONNX parity, retrieval rows), the worker's cut
    of the graph, and change what the model computes."""
    from training.export import export_artifact
    from training.train import TrainConfig, train_model

    shop = make_shop(n_items=100, n_train=300, n_test=20)
    config = TrainConfig(**{**SMALL, "epochs": 1, "graph_star": True, "graph_highway": True})
    result = train_model(shop, config, progress=lambda line: None)
    names = {w.path for w in result.core.weights}
    assert any("star_query" in n for n in names) and any("highway_gate" in n for n in names)
    export_artifact(result, tmp_path / "v", {"version": "v"})
    model = load_served_model(tmp_path / "v")
    assert model.scorer.split
    histories = [[(e.item_id, e.event_type) for e in s.events[:4]] for s in shop.test[:8]]
    vocab = [str(i) for i in model.item_ids]
    scores = model.score(histories, [vocab] * len(histories), shop.items)
    np.testing.assert_allclose(model.query_vectors(histories, shop.items) @ model.item_vectors.T,
                               scores, rtol=1e-4, atol=1e-4)


def test_artifact_layout_and_tampering(trained):
    _, folder = trained
    art = load_artifact(folder)
    manifest = art.manifest
    assert set(manifest["files"]) >= {"model.onnx", "item_ids.json", "item_embeddings.npy",
                                      "item_attributes.npy", "attributes.json", "weights.npz"}
    assert manifest["signature"]["inputs"]["candidate_attributes"]["shape"][-1] == "attributes"
    assert np.allclose(np.linalg.norm(art.item_embeddings, axis=1), 1.0, atol=1e-5)
    assert art.item_attributes.shape == (len(art.item_ids), 2)
    copy = folder.parent / "tampered"
    import shutil

    shutil.copytree(folder, copy)
    data = bytearray((copy / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="model.onnx"):
        load_served_model(copy)


def test_warm_start_keeps_shared_items(shop, trained):
    from training.train import TrainConfig, train_model
    from training.warm_start import warm_start

    _, folder = trained
    previous = load_artifact(folder)
    smaller = make_shop(n_items=120, n_train=200, n_test=10, seed=3)
    result = train_model(smaller, TrainConfig(**{**SMALL, "epochs": 1}),
                         progress=lambda line: None)
    message = warm_start(result.core, result.vocab, previous)
    assert "shared items" in message
    table = result.core.items.table.numpy()
    for item in ("i5", "i77"):
        new_row = result.vocab.position[item] + 2
        # the collaborative half of the retrieval row (the content half follows it)
        old = previous.item_embeddings[previous.item_ids.index(item)][: table.shape[1]]
        old = old / np.linalg.norm(old)
        got = table[new_row] / np.linalg.norm(table[new_row])
        np.testing.assert_allclose(got, old, atol=1e-5)


def test_the_real_item_table_is_put_into_the_exported_graph(trained):
    """The graph is converted with a stand-in table of three rows (export_onnx); the file
    holds the model's own table, once."""
    import onnx
    from onnx import numpy_helper

    result, folder = trained
    table = result.core.items.table.numpy()
    graph = onnx.load(str(folder / "model.onnx")).graph
    tables = [numpy_helper.to_array(i) for i in graph.initializer
              if tuple(i.dims) == table.shape]
    assert len(tables) == 1 and np.array_equal(tables[0], table)
    assert not [i for i in graph.initializer if tuple(i.dims) == (3, table.shape[1])
                and np.array_equal(numpy_helper.to_array(i), table[:3])]


def test_evaluation_runs_of_a_few_cases_give_the_same_pools(shop, trained, monkeypatch):
    """A large catalog gets fewer cases per onnxruntime run (SCORES_PER_RUN): same pools."""
    from stream_rec.offline import evaluate

    _, folder = trained
    artifact = load_artifact(folder)
    whole = prepare_pools(artifact, shop, pool=30, k=10, threads=1, progress=lambda line: None)
    monkeypatch.setattr(evaluate, "SCORES_PER_RUN", 5 * len(whole.universe))  # 8 cases a run
    small = prepare_pools(artifact, shop, pool=30, k=10, threads=1, progress=lambda line: None)
    # Best first, the same scores (a near-tie may swap two items between run sizes).
    np.testing.assert_allclose(small.scores, whole.scores, rtol=1e-5, atol=1e-5)
    same = np.mean([len(set(a) & set(b)) / len(a)
                    for a, b in zip(small.candidates, whole.candidates, strict=True)])
    assert same > 0.99


def test_item_dropout_acts_only_while_training(tmp_path):
    """Whole history item vectors are dropped in training steps only; serving never sees it,
    and a model trained with it exports and passes the parity checks."""
    from training.export import export_artifact
    from training.model import FusionCore
    from training.train import TrainConfig, train_model

    core = FusionCore(30, [], 16, 6, 8.0, dropout=0.0, use_content=False, graph_steps=1)
    core.build(None)
    inputs = {"history_items": tf.constant([[0, 5, 7, 9, 11, 13]] * 64, tf.int64),
              "history_events": tf.constant([[0, 2, 2, 2, 2, 2]] * 64, tf.int64)}
    plain = core.users(inputs, training=False)[0].numpy()
    serving = core.users(inputs, training=False, item_dropout=0.5)[0].numpy()
    np.testing.assert_allclose(serving, plain, atol=1e-6)
    same = core.users(inputs, training=True, item_dropout=0.0)[0].numpy()
    np.testing.assert_allclose(same, plain, atol=1e-6)
    dropped = core.users(inputs, training=True, item_dropout=0.5)[0].numpy()
    changed = np.abs(dropped - plain).max(axis=1) > 1e-4
    assert changed.mean() > 0.5  # each row keeps all 5 items with chance 1/32

    shop = make_shop(n_items=100, n_train=300, n_test=20)
    result = train_model(shop, TrainConfig(**{**SMALL, "epochs": 1, "item_dropout": 0.3}),
                         progress=lambda line: None)
    assert result.summary()["config"]["item_dropout"] == 0.3
    export_artifact(result, tmp_path / "v", {"version": "v"})  # parity checks included
    assert load_served_model(tmp_path / "v").item_vectors.shape[0] == len(result.vocab.item_ids)
