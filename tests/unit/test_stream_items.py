"""What the stream teaches about items the model never saw: the bounded memory
(``core/stream_items.py``), their vectors per model (``serving/stream_learner.py``) and how a
model's score depends on an item's vector (``serving/collab_part.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stream_rec.core.catalog import parse_catalog_item
from stream_rec.core.state import HistoryEntry
from stream_rec.core.stream_items import MAX_GAP_MS, StreamItems
from stream_rec.model import ServedModel
from stream_rec.serving.collab_part import _fit, probe_collab_part
from stream_rec.serving.item_table import ItemTable
from stream_rec.serving.stream_learner import StreamLearner, stream_vector
from stream_rec.serving.stream_vectors import StreamVectors, no_stream_vectors
from tests.unit.test_pools import served_model

T0 = 1_750_000_000_000
KNOWN = {"k1", "k2", "k3", "k4", "k5"}


def known(item_id: str) -> bool:
    return item_id in KNOWN


def history(*items: str, start: int = T0) -> tuple[HistoryEntry, ...]:
    """Views one second apart, oldest first."""
    return tuple(HistoryEntry(item, 0, start + 1000 * n) for n, item in enumerate(items))


def after(events: tuple[HistoryEntry, ...]) -> int:
    return events[-1].ts_ms + 1000


# -- the memory ----------------------------------------------------------------------------
def test_a_cold_item_learns_the_known_items_just_before_it() -> None:
    memory = StreamItems(window=3)
    seen = history("k1", "k2", "k3", "k4")
    memory.observe(seen, "new", after(seen), known)
    record = memory.get("new")
    assert record is not None and record.observations == 1
    assert record.neighbours == {"k4": 1.0, "k3": 0.5, "k2": pytest.approx(1 / 3)}


def test_a_cold_item_learns_the_known_items_just_after_it() -> None:
    memory = StreamItems(window=3)
    seen = history("k1")
    memory.observe(seen, "new", after(seen), known)
    seen = (*seen, HistoryEntry("new", 0, after(seen)))
    memory.observe(seen, "k2", after(seen), known)
    seen = (*seen, HistoryEntry("k2", 0, after(seen)))
    memory.observe(seen, "k3", after(seen), known)
    record = memory.get("new")
    assert record is not None and record.observations == 3
    assert record.neighbours == {"k1": 1.0, "k2": 1.0, "k3": 0.5}


def test_other_cold_items_an_earlier_visit_and_the_item_itself_are_no_neighbours() -> None:
    memory = StreamItems(window=3)
    old_visit = history("k1", start=T0 - 2 * MAX_GAP_MS)
    seen = (*old_visit, *history("other-new", "new"))
    memory.observe(seen, "new", after(seen), known)
    record = memory.get("new")
    assert record is not None and record.neighbours == {}
    # The visit's own events are its context (the earlier visit is not).
    assert [context for _, context in record.contexts] == [(("other-new", 0), ("new", 0))]
    assert record.observations == 1


def test_a_first_event_with_nothing_before_it_is_remembered_with_nothing_learnt() -> None:
    memory = StreamItems()
    memory.observe((), "new", T0, known)
    record = memory.get("new")
    # Remembered, so that the known items after it can be learnt.
    assert record is not None and record.observations == 0 and not record.contexts


def test_a_cold_item_keeps_its_latest_contexts() -> None:
    memory = StreamItems(max_contexts=2)
    for before in ("k1", "k2", "k3"):
        seen = history(before)
        memory.observe(seen, "new", after(seen), known)
    record = memory.get("new")
    assert record is not None
    assert [context for _, context in record.contexts] == [(("k2", 0),), (("k3", 0),)]
    numbers = [number for number, _ in record.contexts]
    assert numbers == sorted(set(numbers))  # numbered in order, never twice


def test_without_cold_items_known_events_leave_no_trace() -> None:
    memory = StreamItems()
    seen = history("k1", "k2")
    memory.observe(seen, "k3", after(seen), known)
    assert len(memory) == 0 and memory.take_changed() == set()


def test_memory_keeps_the_most_recently_observed_items() -> None:
    memory = StreamItems(max_items=2)
    seen = history("k1")
    for item in ("a", "b", "c"):
        memory.observe(seen, item, after(seen), known)
    memory.observe(seen, "b", after(seen), known)  # b is now the most recent
    memory.observe(seen, "d", after(seen), known)
    assert memory.item_ids() == ["b", "d"]
    assert {"a", "c"} <= memory.take_changed()  # evicted items are changes too


def test_memory_keeps_each_items_heaviest_neighbours() -> None:
    memory = StreamItems(max_neighbours=2, window=1)
    for neighbour, times in (("k1", 3), ("k2", 2), ("k3", 1)):
        for _ in range(times):
            seen = history(neighbour)
            memory.observe(seen, "new", after(seen), known)
    record = memory.get("new")
    assert record is not None and set(record.neighbours) == {"k1", "k2"}
    assert record.observations == 6


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError):
        StreamItems(max_items=0)


def test_forgetting_known_items_marks_them_changed() -> None:
    memory = StreamItems()
    seen = history("k1")
    for item in ("a", "b"):
        memory.observe(seen, item, after(seen), known)
    memory.take_changed()
    assert memory.forget_known(lambda item: item == "a") == 1
    assert "a" not in memory and "b" in memory and memory.take_changed() == {"a"}


# -- snapshots -----------------------------------------------------------------------------
def _snapshot(positions: list[int], neighbours: list[tuple[int, int, float]]
              ) -> StreamVectors:
    """Learnt items at ``positions``; (neighbour position, row, weight) triples."""
    vectors = np.eye(len(positions), 3, dtype=np.float32)
    ordered = sorted(neighbours)
    return StreamVectors(np.array(positions), vectors, vectors,
                         np.array([p for p, _, _ in ordered], dtype=np.int64),
                         np.array([r for _, r, _ in ordered], dtype=np.int64),
                         np.array([w for _, _, w in ordered], dtype=np.float32))


def test_rows_of_finds_positions_and_marks_the_rest() -> None:
    learnt = _snapshot([12, 15, 20], [])
    rows = learnt.rows_of(np.array([[15, 3, 20], [21, 12, -1]]))
    assert rows.tolist() == [[1, -1, 2], [-1, 0, -1]]
    assert no_stream_vectors(3).rows_of(np.array([1, 2])).tolist() == [-1, -1]


def test_co_occurrence_adds_the_weights_of_a_shoppers_latest_items() -> None:
    # rows: 0 goes with known items 1 (weight 2) and 2 (1); row 1 with 2 (3); row 2 with 5 (1)
    learnt = _snapshot([10, 11, 12], [(1, 0, 2.0), (2, 0, 1.0), (2, 1, 3.0), (5, 2, 1.0)])
    recent = np.array([[2, 1, -1], [7, -1, -1], [5, 2, 5]])
    together = learnt.co_occurrence(recent, np.array([1.0, 0.5, 0.25], dtype=np.float32))
    np.testing.assert_allclose(together, [[1.0 + 1.0, 3.0, 0.0],
                                          [0.0, 0.0, 0.0],
                                          [0.5, 1.5, 1.0 + 0.25]])
    assert no_stream_vectors(3).co_occurrence(recent, np.ones(3, np.float32)).shape == (3, 0)


# -- vectors in a model's space --------------------------------------------------------------
VECTORS = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0]]  # k1..k4 on the axes, k5 like k1


def _model(folder: Path, items: tuple[str, ...] = ("k1", "k2", "k3", "k4", "k5"),
           version: str = "v1", axes: dict[str, int] | None = None) -> ServedModel:
    """A tiny real model whose items lie on the axes (``axes``: which one, by item)."""
    axes = axes or {"k1": 0, "k2": 1, "k3": 2, "k4": 3, "k5": 0, "a": 2, "b": 3}
    vectors = np.eye(4, dtype=np.float32)[[axes[i] for i in items]]
    return served_model(folder, vectors, version=version, items=items)


def _table(model: ServedModel, *cold: str) -> ItemTable:
    catalog = {item: parse_catalog_item(item, json.dumps({"category": "c"}).encode())
               for item in (*map(str, model.item_ids), *cold)}
    return ItemTable(model, catalog)


def test_a_stream_vector_is_the_weighted_mean_of_known_neighbours(tmp_path: Path) -> None:
    table = _table(_model(tmp_path / "m"))
    vector = stream_vector({"k1": 3.0, "k2": 1.0, "unknown": 5.0}, table)
    assert vector is not None
    np.testing.assert_allclose(vector, np.array([3, 1, 0, 0]) / np.sqrt(10), rtol=1e-6)
    assert stream_vector({"unknown": 1.0}, table) is None


def _learn(learner: StreamLearner, table: ItemTable, item: str, *before: str) -> None:
    seen = history(*before)
    learner.observe(seen, item, after(seen), table)


def test_an_item_gets_a_vector_after_min_observations(tmp_path: Path) -> None:
    table = _table(_model(tmp_path / "m"), "a")
    learner = StreamLearner(StreamItems(), min_observations=2)
    learner.serve(table, [table])
    _learn(learner, table, "a", "k1")
    learner.refresh()
    assert len(table.stream) == 0
    _learn(learner, table, "a", "k2")
    first = table.stream
    learner.refresh()
    assert first is not table.stream and len(first) == 0  # replaced, never changed in place
    assert table.stream.positions.tolist() == [table.position["a"]]
    np.testing.assert_allclose(table.stream.vectors[0], np.array([1, 1, 0, 0]) / np.sqrt(2),
                               rtol=1e-6)


def test_an_item_waits_for_its_catalog_entry(tmp_path: Path) -> None:
    table = _table(_model(tmp_path / "m"))
    learner = StreamLearner(StreamItems(), min_observations=1)
    learner.serve(table, [table])
    _learn(learner, table, "late", "k3")
    learner.refresh()
    assert len(table.stream) == 0  # no table position to recommend it by
    table.upsert(parse_catalog_item("late", b'{"category": "c"}'), {})
    learner.placed("late")
    learner.refresh()
    assert table.stream.positions.tolist() == [table.position["late"]]


def test_a_new_model_recomputes_vectors_and_drops_the_items_it_knows(tmp_path: Path) -> None:
    old = _table(_model(tmp_path / "old"), "a", "b")
    learner = StreamLearner(StreamItems(), min_observations=1)
    learner.serve(old, [old])
    _learn(learner, old, "a", "k1")
    _learn(learner, old, "b", "k2", "k5")
    learner.refresh()
    assert len(old.stream) == 2
    # The new model knows "a" (and no longer k5); its vectors are another basis.
    new_model = _model(tmp_path / "new", items=("k1", "k2", "k3", "k4", "a"), version="v2")
    new = _table(new_model, "b")
    learner.serve(new, [new])
    assert "a" not in learner.memory and "b" in learner.memory
    assert new.stream.positions.tolist() == [new.position["b"]]
    # b's neighbours were k2 (weight 1/2 ... it came second) and k5: only k2 is known now.
    np.testing.assert_allclose(new.stream.vectors[0], new_model.item_vectors[1], rtol=1e-6)
    # What is learnt from now on is about the new model's cold items only.
    _learn(learner, new, "a", "k1")
    assert "a" not in learner.memory


def test_every_served_table_gets_vectors_in_its_own_space(tmp_path: Path) -> None:
    main = _table(_model(tmp_path / "main"), "b")
    arm = _table(_model(tmp_path / "arm", version="v2",
                        axes={"k1": 1, "k2": 0, "k3": 2, "k4": 3, "k5": 0}), "b")
    learner = StreamLearner(StreamItems(), min_observations=1)
    learner.serve(main, [main, arm])
    _learn(learner, main, "b", "k1")
    learner.refresh()
    # k1 is the first axis in main's space, the second in the arm's
    np.testing.assert_allclose(main.stream.vectors[0], [1, 0, 0, 0])
    np.testing.assert_allclose(arm.stream.vectors[0], [0, 1, 0, 0])


# -- the model's collaborative term ----------------------------------------------------------
def test_the_fit_reads_gates_and_the_unknown_vector_off_scores() -> None:
    rng = np.random.default_rng(3)
    queries = rng.normal(size=(40, 6))
    known_vectors = rng.normal(size=(8, 6))
    unknown = rng.normal(size=6)
    last = np.repeat(np.arange(1, 5), 10)
    gates = np.array([0.0, 0.5, 1.0, 1.5, 2.0])
    content = rng.normal(size=(40, 1))  # depends on the history only (attributes blanked)
    candidates = np.concatenate([known_vectors, unknown[None]])
    scores = gates[last][:, None] * (queries @ candidates.T) + content
    part = _fit(queries, known_vectors, scores, last)
    assert part is not None
    np.testing.assert_allclose(part.gates[1:], gates[1:], rtol=1e-5)
    np.testing.assert_allclose(part.unknown, unknown, rtol=1e-4, atol=1e-5)
    # Not of that form: no part, and cold items keep the model's own scores.
    assert _fit(queries, known_vectors, np.tanh(scores), last) is None
    two_gates = scores * np.where(np.arange(40) % 2, 1.0, 1.3)[:, None]  # two per event type
    assert _fit(queries, known_vectors, two_gates, last) is None


def test_the_probe_finds_a_plain_dot_product_model(tmp_path: Path) -> None:
    part = probe_collab_part(_model(tmp_path / "m"))
    assert part is not None
    np.testing.assert_allclose(part.gates, 1.0, rtol=1e-5)
    np.testing.assert_allclose(part.unknown, 0.0, atol=1e-5)  # the tiny graph's unknown row


def test_an_item_is_scored_by_the_models_queries_for_the_sessions_it_came_in(
        tmp_path: Path) -> None:
    """Found by its neighbours' mean, scored by where the model's queries for its contexts
    point (the tiny model's query is the sum of the history's vectors)."""
    table = _table(_model(tmp_path / "m"), "a")
    learner = StreamLearner(StreamItems(), min_observations=1)
    learner.serve(table, [table])
    _learn(learner, table, "a", "k3", "k1")  # k1 adjacent (weight 1), k3 before it (1/2)
    learner.refresh()
    np.testing.assert_allclose(table.stream.vectors[0], np.array([1, 0, 0.5, 0]) / np.sqrt(1.25),
                               rtol=1e-6)
    np.testing.assert_allclose(table.stream.scoring[0], np.array([1, 0, 1, 0]) / np.sqrt(2),
                               rtol=1e-6)
    assert table.stream.neighbour_positions.tolist() == sorted(
        [table.position["k1"], table.position["k3"]])


def test_learnt_items_are_found_by_what_a_shopper_has_just_viewed(tmp_path: Path) -> None:
    from stream_rec.serving.candidates import Shoppers
    from stream_rec.serving.learnt_candidates import LearntColdItems

    table = _table(_model(tmp_path / "m"), "a", "b", "c")
    learner = StreamLearner(StreamItems(), min_observations=1)
    learner.serve(table, [table])
    _learn(learner, table, "a", "k1")
    _learn(learner, table, "b", "k2")
    _learn(learner, table, "c", "k2", "k3")  # k2 half as close as for b
    learner.refresh()
    source = LearntColdItems()
    histories = [[("k2", 0)], [("k1", 0)], [("unknown", 0)]]
    shoppers = Shoppers(np.zeros((3, 4), np.float32), histories)
    proposed = source.propose_for(shoppers, table, 2)
    position = table.position
    assert proposed[0].tolist() == [position["b"], position["c"]]  # co-occurring first
    assert proposed[1].tolist()[0] == position["a"]
    assert proposed[2].tolist() == [-1, -1]  # nothing viewed that the table knows
    table.delist("b")
    proposed = source.propose_for(shoppers, table, 2)
    assert position["b"] not in proposed.tolist()[0]
