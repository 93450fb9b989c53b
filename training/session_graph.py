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

Two optional parts from SGNN-HN (Pan et al. 2020), each behind its own switch so that it is
measured on its own:

- ``star``: a star node joined to every item of the session carries the session's overall
  context to items that no transition links. It starts as the mean of the item vectors; after
  each step every item takes a share ``sigmoid(q(h_i) . k(s) / sqrt(D))`` of it, and it is
  read again as the attention-weighted sum of the items. It also steers the readout
  (``SessionAttention``'s ``context``).
- ``highway``: the output is ``g * h_0 + (1 - g) * h_L`` with ``g = sigmoid(W [h_0 ; h_L])``,
  so more steps cannot wash out what the item's own embedding says.
"""

from __future__ import annotations

import math
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

    def __init__(self, dim: int, steps: int = 1, star: bool = False, highway: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dim = dim
        self.steps = steps
        self.star = bool(star)
        self.highway = bool(highway)
        self.edge_in = keras.layers.Dense(dim, name="edge_in")
        self.edge_out = keras.layers.Dense(dim, name="edge_out")
        self.gate_in = keras.layers.Dense(3 * dim, name="gate_in")
        self.gate_hidden = keras.layers.Dense(3 * dim, name="gate_hidden")
        if self.star:
            self.item_query = keras.layers.Dense(dim, use_bias=False, name="item_query")
            self.star_key = keras.layers.Dense(dim, use_bias=False, name="star_key")
            self.item_key = keras.layers.Dense(dim, use_bias=False, name="item_key")
            self.star_query = keras.layers.Dense(dim, use_bias=False, name="star_query")
        if self.highway:
            self.highway_gate = keras.layers.Dense(dim, name="highway_gate")

    def build(self, input_shape: Any = None) -> None:
        self.edge_in.build((None, None, self.dim))
        self.edge_out.build((None, None, self.dim))
        self.gate_in.build((None, None, 2 * self.dim))
        self.gate_hidden.build((None, None, self.dim))
        if self.star:
            for layer in (self.item_query, self.star_key, self.item_key, self.star_query):
                layer.build((None, None, self.dim))
        if self.highway:
            self.highway_gate.build((None, None, 2 * self.dim))
        super().build(input_shape)

    def call(self, vectors: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
        return self.propagate(vectors, items)[0]

    def propagate(self, vectors: tf.Tensor, items: tf.Tensor
                  ) -> tuple[tf.Tensor, tf.Tensor | None]:
        """(propagated vectors (B, L, D), the star node (B, D) or None without ``star``)."""
        incoming, outgoing = transition_matrices(items)
        mask = tf.cast(items > 0, vectors.dtype)[..., None]
        hidden = vectors
        star = None
        if self.star:
            star = (tf.reduce_sum(vectors * mask, axis=1)
                    / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0))
        root_d = math.sqrt(self.dim)
        for _ in range(self.steps):
            message = tf.concat([tf.matmul(incoming, self.edge_in(hidden)),
                                 tf.matmul(outgoing, self.edge_out(hidden))], axis=-1)
            in_r, in_z, in_n = tf.split(self.gate_in(message), 3, axis=-1)
            h_r, h_z, h_n = tf.split(self.gate_hidden(hidden), 3, axis=-1)
            reset = tf.sigmoid(in_r + h_r)
            update = tf.sigmoid(in_z + h_z)
            candidate = tf.tanh(in_n + reset * h_n)
            hidden = candidate + update * (hidden - candidate)
            if star is not None:
                share = tf.sigmoid(tf.reduce_sum(
                    self.item_query(hidden) * self.star_key(star)[:, None, :], axis=-1,
                    keepdims=True) / root_d)
                hidden = hidden + share * (star[:, None, :] - hidden)
                logits = tf.reduce_sum(self.item_key(hidden) * self.star_query(star)[:, None, :],
                                       axis=-1, keepdims=True) / root_d
                weights = tf.nn.softmax(logits + (mask - 1.0) * 1e9, axis=1)
                star = tf.reduce_sum(weights * hidden, axis=1)
        if self.highway:
            gate = tf.sigmoid(self.highway_gate(tf.concat([vectors, hidden], axis=-1)))
            hidden = hidden + gate * (vectors - hidden)
        return hidden, star

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "dim": self.dim, "steps": self.steps,
                "star": self.star, "highway": self.highway}
