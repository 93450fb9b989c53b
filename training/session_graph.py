"""A gated graph layer over the session's item-transition graph (SR-GNN, Wu et al. 2019).

SR-GNN builds one node per distinct item of a session and one edge per observed transition
(item a then item b), and propagates item vectors along incoming and outgoing edges with a
GRU-style gate. That is what separates it from attention-only encoders (STAMP) in the
published tables: an item that the shopper keeps returning to, or that several others lead
to, gets a vector that knows its neighbourhood within the session.

Here the graph lives on the padded history positions instead of on distinct items, so the
layer is a handful of batched matmuls that export to ONNX without loops or scatter ops:

- ``same[i, j]``  = 1 if positions i and j hold the same item (both real);
- ``edges[i, j]`` = 1 if the item at j directly precedes the item at i somewhere in the
  session (``same`` shifted by one step, times ``same``): the node-level incoming edges,
  seen from every position that holds the node;
- a position's message is the mean over its *distinct* predecessor items: each position j
  is weighted by 1 / (how many positions hold j's item), then rows are divided by the
  in-degree, as SR-GNN normalises its adjacency. Outgoing edges are the transpose.

Positions holding the same item receive identical messages, so they stay identical: the
result is exactly the node-level computation, broadcast back to the sequence.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf


def transition_matrices(items: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Row-normalised (incoming, outgoing) adjacency (B, L, L) of left-padded ``items``."""
    real = items > 0
    same = tf.cast(tf.equal(items[:, :, None], items[:, None, :])
                   & real[:, :, None] & real[:, None, :], tf.float32)
    # (same @ shift)[i, k] = same[i, k + 1]: positions k whose successor holds i's item.
    shifted = tf.concat([same[:, :, 1:], tf.zeros_like(same[:, :, :1])], axis=2)
    edges = tf.minimum(tf.matmul(shifted, same), 1.0)
    copies = tf.maximum(tf.reduce_sum(same, axis=-1), 1.0)  # positions per item
    incoming = _normalise_rows(edges / copies[:, None, :])
    outgoing = _normalise_rows(tf.transpose(edges, [0, 2, 1]) / copies[:, None, :])
    return incoming, outgoing


def _normalise_rows(weights: tf.Tensor) -> tf.Tensor:
    return weights / tf.maximum(tf.reduce_sum(weights, axis=-1, keepdims=True), 1e-9)


class SessionGraph(keras.layers.Layer):
    """(B, L, D) item vectors + (B, L) item indices -> (B, L, D) propagated vectors."""

    def __init__(self, dim: int, steps: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dim = dim
        self.steps = steps
        self.edge_in = keras.layers.Dense(dim, name="edge_in")
        self.edge_out = keras.layers.Dense(dim, name="edge_out")
        self.gate_in = keras.layers.Dense(3 * dim, name="gate_in")
        self.gate_hidden = keras.layers.Dense(3 * dim, name="gate_hidden")

    def build(self, input_shape: Any = None) -> None:
        self.edge_in.build((None, None, self.dim))
        self.edge_out.build((None, None, self.dim))
        self.gate_in.build((None, None, 2 * self.dim))
        self.gate_hidden.build((None, None, self.dim))
        super().build(input_shape)

    def call(self, vectors: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
        incoming, outgoing = transition_matrices(items)
        hidden = vectors
        for _ in range(self.steps):
            message = tf.concat([tf.matmul(incoming, self.edge_in(hidden)),
                                 tf.matmul(outgoing, self.edge_out(hidden))], axis=-1)
            in_r, in_z, in_n = tf.split(self.gate_in(message), 3, axis=-1)
            h_r, h_z, h_n = tf.split(self.gate_hidden(hidden), 3, axis=-1)
            reset = tf.sigmoid(in_r + h_r)
            update = tf.sigmoid(in_z + h_z)
            candidate = tf.tanh(in_n + reset * h_n)
            hidden = candidate + update * (hidden - candidate)
        return hidden

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "dim": self.dim, "steps": self.steps}
