"""The lazy Adam: only the rows a step touched move, decay included."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")


def _step(weight_decay: float) -> tuple[np.ndarray, np.ndarray]:
    from training.optim import FusedAdam

    table = tf.Variable(np.ones((6, 3), np.float32))
    dense = tf.Variable(np.ones(3, np.float32))
    optimizer = FusedAdam([table, dense], peak_lr=0.1, total_steps=10,
                          weight_decay=weight_decay, decayed=[table])
    before = table.numpy()
    with tf.GradientTape() as tape:
        # rows 1 and 3 are touched (a zero gradient: only the decay moves them)
        loss = 0.0 * tf.reduce_sum(tf.gather(table, [1, 3, 3])) + tf.reduce_sum(dense)
    optimizer.apply(tape.gradient(loss, optimizer.variables))
    return before, table.numpy()


def test_weight_decay_shrinks_only_the_touched_rows():
    before, after = _step(weight_decay=0.5)
    touched = [1, 3]
    np.testing.assert_allclose(after[touched], before[touched] * (1 - 0.1 * 0.5), rtol=1e-5)
    untouched = [0, 2, 4, 5]
    np.testing.assert_array_equal(after[untouched], before[untouched])


def test_no_weight_decay_by_default():
    before, after = _step(weight_decay=0.0)
    np.testing.assert_allclose(after, before, rtol=1e-6)
