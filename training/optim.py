"""Adam with fused dense updates and lazy (touched rows only) embedding updates.

Keras' Adam updates a 4-million-entry embedding table with a dozen separate element-wise ops
per step, which on a 2-core CPU costs more than the forward pass. Here dense weights use
TensorFlow's fused ``ResourceApplyAdam`` kernel, and embedding tables (whose gradients arrive
as ``IndexedSlices``) update only the rows the step touched ("lazy Adam", as common for
embeddings): a few thousand rows instead of the whole catalog. Optionally, the rows a step
touched of chosen tables also shrink by ``weight_decay`` times the current learning rate
(decoupled weight decay, as AdamW, applied lazily like the update itself).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import tensorflow as tf


class FusedAdam:
    """Adam with a cosine learning-rate decay from ``peak_lr`` to 0 over ``total_steps``.

    ``total_steps`` may be lowered while training (a time budget): the decay then finishes
    sooner instead of being cut off at a high learning rate.
    """

    def __init__(self, variables: Sequence[tf.Variable], peak_lr: float, total_steps: int,
                 beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-7,
                 lazy: bool = True, weight_decay: float = 0.0,
                 decayed: Sequence[tf.Variable] = ()) -> None:
        self.variables = list(variables)
        self.lazy = lazy
        self.weight_decay = float(weight_decay)
        self.decayed = {id(v) for v in decayed} if self.weight_decay > 0 else set()
        self.peak_lr = peak_lr
        self.total_steps = tf.Variable(float(max(1, total_steps)), trainable=False)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.variables]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.variables]
        self.step = tf.Variable(0.0, trainable=False, dtype=tf.float32)
        self.decay_start = tf.Variable(0.0, trainable=False, dtype=tf.float32)
        self.level = tf.Variable(1.0, trainable=False, dtype=tf.float32)

    def learning_rate(self) -> tf.Tensor:
        span = tf.maximum(self.total_steps - self.decay_start, 1.0)
        progress = tf.minimum((self.step - self.decay_start) / span, 1.0)
        return self.peak_lr * self.level * 0.5 * (1.0 + tf.cos(math.pi * progress))

    def anneal(self, steps: int, level: float) -> None:
        """From now on, decay from ``level`` * peak to 0 over ``steps`` (a fresh cosine)."""
        self.decay_start.assign(self.step)
        self.total_steps.assign(self.step + float(max(1, steps)))
        self.level.assign(level)

    def apply(self, gradients: Sequence[tf.Tensor | tf.IndexedSlices | None]) -> None:
        lr = self.learning_rate()
        self.step.assign_add(1.0)
        b1_power = tf.pow(self.beta1, self.step)
        b2_power = tf.pow(self.beta2, self.step)
        for var, m, v, grad in zip(self.variables, self.m, self.v, gradients, strict=True):
            if grad is None:
                continue
            if isinstance(grad, tf.IndexedSlices) and self.lazy:
                self._sparse(var, m, v, grad, lr * tf.sqrt(1.0 - b2_power) / (1.0 - b1_power),
                             lr * self.weight_decay if id(var) in self.decayed else None)
                continue
            tf.raw_ops.ResourceApplyAdam(
                var=var.handle, m=m.handle, v=v.handle, beta1_power=b1_power,
                beta2_power=b2_power, lr=lr, beta1=self.beta1, beta2=self.beta2,
                epsilon=self.epsilon, grad=tf.convert_to_tensor(grad))

    def _sparse(self, var: tf.Variable, m: tf.Variable, v: tf.Variable,
                grad: tf.IndexedSlices, lr_t: tf.Tensor, decay: tf.Tensor | None) -> None:
        rows, slot = tf.unique(grad.indices)
        g = tf.math.unsorted_segment_sum(grad.values, slot, tf.size(rows))
        m_rows = self.beta1 * tf.gather(m, rows) + (1.0 - self.beta1) * g
        v_rows = self.beta2 * tf.gather(v, rows) + (1.0 - self.beta2) * tf.square(g)
        tf.raw_ops.ResourceScatterUpdate(resource=m.handle, indices=rows, updates=m_rows)
        tf.raw_ops.ResourceScatterUpdate(resource=v.handle, indices=rows, updates=v_rows)
        update = lr_t * m_rows / (tf.sqrt(v_rows) + self.epsilon)
        if decay is not None:
            update += decay * tf.gather(var, rows)
        tf.raw_ops.ResourceScatterSub(resource=var.handle, indices=rows, updates=update)
