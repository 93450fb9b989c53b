"""The position-level session graph equals SR-GNN's node-level graph, broadcast to positions."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from training.session_graph import SessionGraph, transition_matrices

Graph = dict[int, dict[int, float]]


def _node_level(session: list[int]) -> tuple[Graph, Graph]:
    """SR-GNN's normalised adjacency over distinct items: node -> {neighbour: weight}."""
    edges = {(a, b) for a, b in zip(session, session[1:], strict=False)}
    incoming: Graph = {}
    outgoing: Graph = {}
    for node in set(session):
        sources = sorted(a for a, b in edges if b == node)
        targets = sorted(b for a, b in edges if a == node)
        incoming[node] = {a: 1 / len(sources) for a in sources}
        outgoing[node] = {b: 1 / len(targets) for b in targets}
    return incoming, outgoing


@pytest.mark.parametrize("seed", range(6))
def test_messages_equal_the_node_level_graph(seed: int) -> None:
    rng = np.random.default_rng(seed)
    width, batch = 9, 5
    items = np.zeros((batch, width), dtype=np.int64)
    for row in range(batch):
        length = int(rng.integers(1, width + 1))
        items[row, width - length:] = rng.integers(2, 7, size=length)  # few items: repeats
    vectors = {i: rng.normal(size=3) for i in range(2, 7)}
    incoming, outgoing = (m.numpy() for m in transition_matrices(tf.constant(items)))
    for row in range(batch):
        real = [p for p in range(width) if items[row, p] > 0]
        session = [int(items[row, p]) for p in real]
        node_in, node_out = _node_level(session)
        for p in real:
            node = int(items[row, p])
            for matrix, node_graph in ((incoming, node_in), (outgoing, node_out)):
                got = sum(matrix[row, p, q] * vectors[int(items[row, q])] for q in real)
                want = sum((w * vectors[n] for n, w in node_graph[node].items()),
                           np.zeros(3))
                np.testing.assert_allclose(got, want, atol=1e-6)
        padded = [p for p in range(width) if items[row, p] == 0]
        assert not incoming[row, padded].any() and not incoming[row, :, padded].any()


@pytest.mark.parametrize("star, highway", [(False, False), (True, False), (False, True),
                                           (True, True)])
def test_positions_of_one_item_stay_identical(star: bool, highway: bool) -> None:
    items = tf.constant([[0, 4, 5, 4, 6, 4]], dtype=tf.int64)
    layer = SessionGraph(dim=8, steps=2, star=star, highway=highway)
    layer.build(None)
    table = tf.random.normal((7, 8), seed=3)
    out = layer(tf.gather(table, items), items).numpy()[0]
    np.testing.assert_allclose(out[1], out[3], atol=1e-6)
    np.testing.assert_allclose(out[1], out[5], atol=1e-6)
    assert not np.allclose(out[1], out[2])


def test_padding_does_not_reach_the_star_node() -> None:
    """Left padding is not part of the session: the star node's mean and attention skip it."""
    layer = SessionGraph(dim=8, steps=2, star=True, highway=True)
    layer.build(None)
    table = tf.random.normal((7, 8), seed=5)
    short = tf.constant([[4, 5, 4, 6]], dtype=tf.int64)
    padded = tf.constant([[0, 0, 4, 5, 4, 6]], dtype=tf.int64)
    out_short, star_short = layer.propagate(tf.gather(table, short), short)
    out_padded, star_padded = layer.propagate(tf.gather(table, padded), padded)
    np.testing.assert_allclose(out_padded.numpy()[0, 2:], out_short.numpy()[0], atol=1e-5)
    np.testing.assert_allclose(star_padded.numpy(), star_short.numpy(), atol=1e-5)
