"""The hybrid fusion model: a collaborative branch, a content branch and an event-type gate.

- Collaborative branch: item-id embeddings (L2-normalised, NISER-style). The shopper is their
  recent history: the items pass one gated step along the session's transition graph
  (``SessionGraph``, SR-GNN), then soft attention over them (with event-type and
  position-from-the-end embeddings) steered by the last item, combined with the last item,
  then L2-normalised. No per-user embedding, so a new shopper is served
  from the first event. Score = ``scale * cos(shopper, item)``.
- Content branch: the sum of an item's attribute embeddings (category, brand, shop, price
  bucket, ...), normalised; the shopper side is the same attention over the history's content
  vectors. Items the id vocabulary does not know (OOV) still score through it.
- Fuser: per-branch weights chosen by the type of the shopper's last event (a purchase is not a
  view), ``score = w_collab(e) * collab + w_content(e) * content``: a few multiply-adds on top
  of two dot products, so scoring the whole catalog stays cheap.

Outputs: ``scores`` (B, C) and ``user_embedding``, the query vector of exact retrieval:
``user_embedding @ item_embeddings.T`` ranks every item of the vocabulary as ``scores`` would.
Without the content branch it is ``scale * shopper`` (D wide: the collaborative score). With
it, both branches side by side (2D wide), ``sqrt(2) * scale * [gate_collab * shopper,
gate_content * content shopper]``, against item rows ``[item, content item] / sqrt(2)`` (unit
length): the dot product is the fused score itself, so retrieval finds the items the content
branch favours too, not only those of the collaborative one.
Candidate inputs may have batch size 1 (one list shared by every row) or B.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from training.session_graph import SessionGraph

N_EVENT_INDICES = 5  # 0 = padding, then view, click, add_to_cart, purchase
SOFTPLUS_ONE = float(np.log(np.e - 1.0))  # softplus(SOFTPLUS_ONE) == 1
SQRT2 = float(np.sqrt(2.0))
FIRST_ROW = 2  # item table rows 0 (padding) and 1 (unknown item) are not vocabulary items


def _normal(stddev: float) -> keras.initializers.Initializer:
    return keras.initializers.RandomNormal(stddev=stddev, seed=None)


class ItemTower(keras.layers.Layer):
    """Item id -> L2-normalised collaborative vector. Row 0 pads, row 1 is the OOV item."""

    def __init__(self, n_indices: int, dim: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n_indices = n_indices
        self.dim = dim

    def build(self, input_shape: Any = None) -> None:
        self.table = self.add_weight(name="item_table", shape=(self.n_indices, self.dim),
                                     initializer=_normal(0.05))
        super().build(input_shape)

    def call(self, items: tf.Tensor) -> tf.Tensor:
        return tf.math.l2_normalize(tf.gather(self.table, items), axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "n_indices": self.n_indices, "dim": self.dim}


class ContentTower(keras.layers.Layer):
    """Attribute indices (..., A) -> L2-normalised content vector (..., D)."""

    def __init__(self, vocab_sizes: list[int], dim: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.vocab_sizes = [int(v) for v in vocab_sizes]
        self.dim = dim

    def build(self, input_shape: Any = None) -> None:
        self.tables = [self.add_weight(name=f"attribute_table_{a}", shape=(size, self.dim),
                                       initializer=_normal(0.05))
                       for a, size in enumerate(self.vocab_sizes)]
        super().build(input_shape)

    def call(self, attributes: tf.Tensor) -> tf.Tensor:
        total = None
        for a, table in enumerate(self.tables):
            index = attributes[..., a]
            part = tf.gather(table, index) * tf.cast(index > 0, table.dtype)[..., None]
            total = part if total is None else total + part
        return tf.math.l2_normalize(total, axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "vocab_sizes": self.vocab_sizes, "dim": self.dim}


class SessionAttention(keras.layers.Layer):
    """History vectors (B, L, D) -> one L2-normalised shopper vector (B, D).

    alpha_t = q . sigmoid(W1 last + W2 (x_t + pos_t) + b); s = W3 [sum_t alpha_t x_t ; last],
    where x_t already carries its event-type embedding and pos_t counts from the end.
    """

    def __init__(self, dim: int, max_history: int, dropout: float = 0.0,
                 with_context: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dim = dim
        self.max_history = max_history
        self.dropout = dropout
        self.with_context = bool(with_context)
        # A session-level vector (the session graph's star node) steering the attention.
        self.w_context = (keras.layers.Dense(dim, use_bias=False, name="w_context")
                          if self.with_context else None)
        self.w_last = keras.layers.Dense(dim, use_bias=False, name="w_last")
        self.w_item = keras.layers.Dense(dim, use_bias=True, name="w_item")
        self.q = keras.layers.Dense(1, use_bias=False, name="q")
        self.w_out = keras.layers.Dense(dim, use_bias=False, name="w_out")
        self.drop = keras.layers.Dropout(dropout)

    def build(self, input_shape: Any = None) -> None:
        self.events = self.add_weight(name="event_table", shape=(N_EVENT_INDICES, self.dim),
                                      initializer=_normal(0.05))
        self.positions = self.add_weight(name="position_table",
                                         shape=(self.max_history, self.dim),
                                         initializer=_normal(0.05))
        self.w_last.build((None, self.dim))
        self.w_item.build((None, None, self.dim))
        self.q.build((None, None, self.dim))
        self.w_out.build((None, 2 * self.dim))
        if self.w_context is not None:
            self.w_context.build((None, self.dim))
        super().build(input_shape)

    def call(self, vectors: tf.Tensor, events: tf.Tensor, mask: tf.Tensor,
             training: bool = False, context: tf.Tensor | None = None) -> tf.Tensor:
        x = vectors + tf.gather(self.events, events)
        x = self.drop(x, training=training) * mask[..., None]
        length = tf.shape(x)[1]
        steps_back = tf.minimum(tf.range(length - 1, -1, -1), self.max_history - 1)
        last = x[:, -1]
        steer = self.w_last(last)
        if self.w_context is not None and context is not None:
            steer = steer + self.w_context(context)
        hidden = tf.sigmoid(steer[:, None, :]
                            + self.w_item(x + tf.gather(self.positions, steps_back)[None]))
        alpha = self.q(hidden) * mask[..., None]
        pooled = tf.reduce_sum(alpha * x, axis=1)
        return tf.math.l2_normalize(self.w_out(tf.concat([pooled, last], axis=-1)), axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "dim": self.dim, "max_history": self.max_history,
                "dropout": self.dropout, "with_context": self.with_context}


class EventGate(keras.layers.Layer):
    """Positive per-branch weights chosen by the last event's type (start: all 1)."""

    def __init__(self, n_branches: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n_branches = n_branches

    def build(self, input_shape: Any = None) -> None:
        self.table = self.add_weight(name="gate_table",
                                     shape=(N_EVENT_INDICES, self.n_branches),
                                     initializer=keras.initializers.Constant(SOFTPLUS_ONE))
        super().build(input_shape)

    def call(self, last_event: tf.Tensor) -> tf.Tensor:
        return tf.nn.softplus(tf.gather(self.table, last_event))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "n_branches": self.n_branches}


def pair_scores(users: tf.Tensor, candidates: tf.Tensor) -> tf.Tensor:
    """(B, D) x (Bc, C, D) -> (B, C) dot products; Bc is 1 (shared list) or B."""
    return tf.squeeze(tf.matmul(users[:, None, :], candidates, transpose_b=True), axis=1)


class FusionCore(keras.layers.Layer):
    """Both branches and the gate. ``call`` takes the model's named inputs as a dict."""

    def __init__(self, n_item_indices: int, attribute_sizes: list[int], dim: int,
                 max_history: int, scale: float, dropout: float = 0.0, use_content: bool = True,
                 graph_steps: int = 0, graph_star: bool = False,
                 graph_highway: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n_item_indices = n_item_indices
        self.attribute_sizes = [int(s) for s in attribute_sizes]
        self.dim = dim
        self.max_history = max_history
        self.scale = float(scale)
        self.dropout = dropout
        self.use_content = bool(use_content and attribute_sizes)
        self.graph_steps = int(graph_steps)
        self.graph_star = bool(graph_star and self.graph_steps > 0)
        self.graph_highway = bool(graph_highway and self.graph_steps > 0)
        self.items = ItemTower(n_item_indices, dim, name="item_tower")
        self.graph = (SessionGraph(dim, self.graph_steps, self.graph_star, self.graph_highway,
                                   name="session_graph")
                      if self.graph_steps > 0 else None)
        self.collab_attention = SessionAttention(dim, max_history, dropout,
                                                 with_context=self.graph_star,
                                                 name="collab_attn")
        self.gate = EventGate(2 if self.use_content else 1, name="event_gate")
        if self.use_content:
            self.content = ContentTower(self.attribute_sizes, dim, name="content_tower")
            self.content_attention = SessionAttention(dim, max_history, dropout,
                                                      name="content_attn")

    def build(self, input_shape: Any = None) -> None:
        for layer in self._branch_layers():
            layer.build(None)
        super().build(input_shape)

    def _branch_layers(self) -> list[keras.layers.Layer]:
        layers = [self.items, self.collab_attention, self.gate]
        if self.graph is not None:
            layers.append(self.graph)
        if self.use_content:
            layers += [self.content, self.content_attention]
        return layers

    def users(self, inputs: dict[str, tf.Tensor], training: bool = False,
              item_dropout: float = 0.0) -> tuple[tf.Tensor, tf.Tensor | None, tf.Tensor]:
        """(collab shopper (B, D), content shopper (B, D) or None, gate weights (B, n)).

        ``item_dropout`` (training only): that share of the history's item vectors is zeroed
        whole (the position and its event type stay), so no single item row carries a
        shopper; not part of the exported model.
        """
        items, events = inputs["history_items"], inputs["history_events"]
        mask = tf.cast(items > 0, tf.float32)
        vectors = self.items(items)
        if training and item_dropout > 0:
            keep = tf.random.uniform(tf.shape(items)) >= item_dropout
            vectors = vectors * tf.cast(keep, vectors.dtype)[..., None]
        star = None
        if self.graph is not None:
            vectors, star = self.graph.propagate(vectors, items)
        user = self.collab_attention(vectors, events, mask, training=training, context=star)
        content_user = None
        if self.use_content:
            attrs = inputs["history_attributes"]
            content_user = self.content_attention(self.content(attrs), events, mask,
                                                  training=training)
        return user, content_user, self.gate(events[:, -1])

    def candidates(self, items: tf.Tensor, attributes: tf.Tensor | None
                   ) -> tuple[tf.Tensor, tf.Tensor | None]:
        """(collab vectors, content vectors or None) of candidates (..., D)."""
        content = self.content(attributes) if self.use_content else None
        return self.items(items), content

    def fuse(self, gates: tf.Tensor, collab_scores: tf.Tensor,
             content_scores: tf.Tensor | None) -> tf.Tensor:
        """Gate-weighted sum of the branch scores (inputs are cosines; output is scaled)."""
        total = gates[:, :1] * collab_scores
        if content_scores is not None:
            total = total + gates[:, 1:2] * content_scores
        return self.scale * total

    def call(self, inputs: dict[str, tf.Tensor], training: bool = False
             ) -> dict[str, tf.Tensor]:
        user, content_user, gates = self.users(inputs, training=training)
        cand, cand_content = self.candidates(inputs["candidate_items"],
                                             inputs.get("candidate_attributes"))
        collab = pair_scores(user, cand)
        content = pair_scores(content_user, cand_content) if content_user is not None else None
        scores = self.fuse(gates, collab, content)
        return {"scores": scores, "user_embedding": self.query(user, content_user, gates)}

    def query(self, user: tf.Tensor, content_user: tf.Tensor | None, gates: tf.Tensor
              ) -> tf.Tensor:
        """The retrieval query vector (see the module's docstring)."""
        if content_user is None:
            return self.scale * user
        both = tf.concat([gates[:, :1] * user, gates[:, 1:2] * content_user], axis=-1)
        return (self.scale * SQRT2) * both

    def item_vectors(self, attributes: tf.Tensor | None) -> tf.Tensor:
        """The vocabulary's retrieval rows (see the module's docstring); ``attributes`` are
        the vocabulary items' attribute indices, in model index order."""
        items = tf.math.l2_normalize(self.items.table[FIRST_ROW:], axis=-1)
        if not self.use_content or attributes is None:
            return items
        return tf.concat([items, self.content(attributes)], axis=-1) / SQRT2

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "n_item_indices": self.n_item_indices,
                "attribute_sizes": self.attribute_sizes, "dim": self.dim,
                "max_history": self.max_history, "scale": self.scale,
                "dropout": self.dropout, "use_content": self.use_content,
                "graph_steps": self.graph_steps, "graph_star": self.graph_star,
                "graph_highway": self.graph_highway}


def input_names(use_content: bool) -> list[str]:
    """The model's input names in ONNX order (attribute inputs only with the content branch)."""
    names = ["history_items", "history_events"]
    if use_content:
        names.append("history_attributes")
    names.append("candidate_items")
    if use_content:
        names.append("candidate_attributes")
    return names


def build_model(core: FusionCore) -> keras.Model:
    """The functional model with named int64 inputs (what gets exported to ONNX)."""
    shapes = {"history_items": (None,), "history_events": (None,), "candidate_items": (None,),
              "history_attributes": (None, len(core.attribute_sizes)),
              "candidate_attributes": (None, len(core.attribute_sizes))}
    inputs = {name: keras.Input(shape=shapes[name], dtype="int64", name=name)
              for name in input_names(core.use_content)}
    outputs = core(inputs)
    return keras.Model(inputs=inputs, outputs=outputs, name="fusion_model")
