"""`bench --state-users`: shoppers built by the real transitions, written to real RocksDB."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from stream_rec.core.state import StateLimits
from stream_rec.core.state_codec import decode_state, encode_state
from stream_rec.tools.bench.state_size import fullest_state, measure_state_size, simulate_shopper
from stream_rec.tools.bench.workload import ShopperSession, Workload


def _workload() -> Workload:
    sessions = tuple(ShopperSession(f"s{n}", f"s{n}",
                                    tuple((f"item{(n * 5 + k) % 300}", "click") for k in range(6)))
                     for n in range(60))
    return Workload("toy", sessions, tuple(f"item{n}" for n in range(300)), {})


def test_simulated_shoppers_are_valid_bounded_states() -> None:
    limits = StateLimits()
    vectors = np.eye(8, dtype=np.float32)
    rng = random.Random(0)
    biggest = len(encode_state(fullest_state(_workload(), 8, limits)))
    for _ in range(20):
        state = simulate_shopper(_workload(), rng, vectors, limits)
        raw = encode_state(state)
        assert decode_state(raw) == state
        assert state.history and state.shown and state.category_affinity
        assert len(state.shown) <= limits.shown and len(raw) <= biggest


def test_measures_bytes_and_disk_and_cleans_up(tmp_path: Path) -> None:
    size = measure_state_size(_workload(), users=600, work_dir=tmp_path, partitions=2, dim=8,
                              templates=40)
    assert size.users == 600
    assert 0 < size.bytes_per_user <= size.max_bytes_per_user
    assert size.rocksdb_bytes > 0
    assert not (tmp_path / "state-size").exists()
    keys = size.to_dict()
    assert keys["rocksdb_bytes_per_user"] == round(size.rocksdb_bytes / 600, 1)
