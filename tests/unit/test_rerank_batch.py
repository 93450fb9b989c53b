"""The entry points: batch = one list at a time, determinism, tie-breaking, the policy."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_rec.rerank import RerankPolicy, rerank, rerank_batch
from stream_rec.rerank import batch as batch_module
from stream_rec.rerank.pool_vectors import PoolVectors


def random_pools(seed: int, n_b: int, m: int, dim: int = 8) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    rel = rng.normal(size=(n_b, m)).astype(np.float32)
    vecs = rng.normal(size=(n_b, m, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=2, keepdims=True)
    keys = rng.choice(10 * n_b * m, size=(n_b, m), replace=False).astype(np.int64)
    cats = rng.integers(-1, 5, size=(n_b, m))
    eligible = rng.random((n_b, m)) < 0.9
    return rel, vecs, keys, cats, eligible


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_b=st.integers(2, 40),
    policy=st.sampled_from(["none", "dpp:0.3", "dpp:0.7", "mmr:0.5"]),
    cap=st.sampled_from([None, 2]),
)
def test_batch_rows_equal_single_list_calls(
    seed: int, n_b: int, policy: str, cap: int | None
) -> None:
    rel, vecs, keys, cats, eligible = random_pools(seed, n_b, 30)
    pol = RerankPolicy.parse(policy)
    got = rerank_batch(rel, vecs, keys, 10, pol, cats, eligible, cap)
    for b in range(n_b):
        one = rerank(rel[b], vecs[b], keys[b], 10, pol, cats[b], eligible[b], cap)
        assert got[b][got[b] >= 0].tolist() == one.tolist()


def test_batches_span_several_lockstep_chunks() -> None:
    assert batch_module.CHUNK_LISTS < 40


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    policy=st.sampled_from(["none", "dpp:0.5", "dpp:0.005", "mmr:0.5"]),
    window=st.sampled_from([None, 3]),
)
def test_candidate_order_does_not_matter(seed: int, policy: str, window: int | None) -> None:
    rel, vecs, keys, cats, eligible = random_pools(seed, 1, 40)
    rel = rel.round(1)  # ties in relevance, broken by key
    pol = RerankPolicy.parse(policy)
    want = rerank(rel[0], vecs[0], keys[0], 12, pol, cats[0], eligible[0], window=window)
    perm = np.random.default_rng(seed + 1).permutation(40)
    got = rerank(rel[0][perm], vecs[0][perm], keys[0][perm], 12, pol, cats[0][perm],
                 eligible[0][perm], window=window)  # fmt: skip
    assert keys[0][perm][got].tolist() == keys[0][want].tolist()


@pytest.mark.parametrize("policy", ["none", "dpp:0.5", "mmr:0.5"])
def test_exact_ties_go_to_the_smaller_item_key(policy: str) -> None:
    rel = np.array([1.0, 1.0, 1.0])
    vecs = np.array([[1.0, 0.0]] * 3, dtype=np.float32)  # identical items
    keys = np.array([30, 10, 20])
    got = rerank(rel, vecs, keys, 3, RerankPolicy.parse(policy))
    assert keys[got].tolist() == [10, 20, 30]


def test_same_input_same_output() -> None:
    rel, vecs, keys, cats, eligible = random_pools(7, 20, 200, 32)
    pol = RerankPolicy("dpp", 0.5)
    first = rerank_batch(rel, vecs, keys, 20, pol, cats, eligible, 3)
    assert np.array_equal(first, rerank_batch(rel, vecs, keys, 20, pol, cats, eligible, 3))


def test_diversity_goes_up_with_the_parameter() -> None:
    """On random pools ILD@20 (share of pairs from different categories) rises with theta."""
    rel, vecs, keys, cats, _ = random_pools(3, 64, 200, 16)
    cats = np.abs(cats)  # all known
    ild = []
    for theta in (0.0, 0.5, 0.9):
        got = rerank_batch(rel, vecs, keys, 20, RerankPolicy("dpp", theta), cats)
        c = np.take_along_axis(cats, got, axis=1)
        ild.append(float((c[:, :, None] != c[:, None, :]).sum() / (64 * 20 * 19)))
    assert ild[0] < ild[1] < ild[2]


def test_shapes_are_checked() -> None:
    rel, vecs, keys, _, _ = random_pools(1, 2, 10)
    pol = RerankPolicy("dpp", 0.5)
    with pytest.raises(ValueError):
        rerank_batch(rel, vecs[:1], keys, 5, pol)
    with pytest.raises(ValueError):
        rerank_batch(rel, vecs, keys[:, :3], 5, pol)
    with pytest.raises(ValueError):
        rerank_batch(rel, vecs, keys, -1, pol)
    with pytest.raises(ValueError):
        rerank_batch(rel, vecs, keys, 5, pol, category_weight=1.5)


def test_k_larger_than_the_pool_pads_with_minus_one() -> None:
    rel, vecs, keys, _, _ = random_pools(2, 3, 5)
    got = rerank_batch(rel, vecs, keys, 8, RerankPolicy("dpp", 0.5))
    assert got.shape == (3, 8) and (got[:, 5:] == -1).all() and (got[:, :5] >= 0).all()


@pytest.mark.parametrize(
    ("text", "method", "param"),
    [("none", "none", 0.0), ("dpp:0.5", "dpp", 0.5), (" MMR : 0.7 ", "mmr", 0.7),
     ("dpp", "dpp", None), ("mmr", "mmr", None)],
)  # fmt: skip
def test_policy_parses_and_round_trips(text: str, method: str, param: float | None) -> None:
    policy = RerankPolicy.parse(text)
    assert policy.method == method
    if param is not None:
        assert policy.param == param
    assert RerankPolicy.from_dict(policy.to_dict()) == policy
    assert RerankPolicy.parse(str(policy)) == policy


@pytest.mark.parametrize("text", ["dpp:1.5", "mmr:-0.1", "greedy:0.5", "dpp:x", "none:0.3"])
def test_policy_rejects_nonsense(text: str) -> None:
    with pytest.raises(ValueError):
        RerankPolicy.parse(text)


def test_policy_records_itself() -> None:
    assert RerankPolicy("dpp", 0.5).to_dict() == {"method": "dpp", "param": 0.5}
    assert RerankPolicy("none", 0.0).is_identity and RerankPolicy("mmr", 1.0).is_identity
    assert not RerankPolicy("dpp", 0.1).is_identity


def test_the_core_imports_nothing_heavy() -> None:
    code = (
        "import sys, stream_rec.rerank\n"
        "heavy = {'faust', 'onnxruntime', 'tensorflow', 'aiokafka', 'kafka'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_b=st.integers(1, 40),
    policy=st.sampled_from(["none", "dpp:0.15", "dpp:0.7", "mmr:0.5"]),
    window=st.sampled_from([None, 3]),
)
def test_pool_vectors_pick_what_the_gathered_array_picks(
    seed: int, n_b: int, policy: str, window: int | None
) -> None:
    # Pools of 120 with shared items, so the DPP's prefix run and its fallback both happen.
    rng = np.random.default_rng(seed)
    table = rng.normal(size=(300, 8)).astype(np.float32)
    rows = np.stack([rng.choice(300, size=120, replace=False) for _ in range(n_b)])
    rows[:, 3::7] = -1  # items without a vector: zeros
    dense = np.where((rows < 0)[..., None], np.float32(0), table[rows])
    rel, _, keys, cats, eligible = random_pools(seed, n_b, 120)
    pol = RerankPolicy.parse(policy)
    if pol.method != "dpp":
        window = None
    lazy = PoolVectors(table, rows)
    assert lazy.shape == (n_b, 120, 8)
    np.testing.assert_array_equal(lazy[1:, 2:5], dense[1:, 2:5])
    np.testing.assert_array_equal(np.asarray(lazy[::2]), dense[::2])
    want = rerank_batch(rel, dense, keys, 20, pol, cats, eligible, 2, window=window)
    got = rerank_batch(rel, lazy, keys, 20, pol, cats, eligible, 2, window=window)
    np.testing.assert_array_equal(got, want)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), policy=st.sampled_from(["dpp:0.15", "dpp:0.5"]))
def test_candidates_below_the_best_200_do_not_change_the_scale(seed: int, policy: str) -> None:
    """Trending and new items join the worker's pool of 200 with far lower scores; as long as
    none of them is picked, the list is the one the 200 alone give (theta keeps its meaning)."""
    from stream_rec.rerank.similarity import STANDARDISE_OVER

    rng = np.random.default_rng(seed)
    m, extra, dim = STANDARDISE_OVER, 40, 8
    rel, vecs, keys, cats, _ = random_pools(seed, 1, m + extra, dim)
    rel[0, m:] = rel[0, :m].min() - 5.0 - rng.random(extra)  # far below every one of the 200
    pol = RerankPolicy.parse(policy)
    alone = rerank(rel[0, :m], vecs[0, :m], keys[0, :m], 20, pol, cats[0, :m])
    joined = rerank(rel[0], vecs[0], keys[0], 20, pol, cats[0])
    if (joined < m).all():  # an extra item may still win on diversity: then lists may differ
        assert joined.tolist() == alone.tolist()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), policy=st.sampled_from(["dpp:0.15", "mmr:0.5"]))
def test_unknown_categories_everywhere_re_rank_like_no_categories(seed: int, policy: str) -> None:
    """A catalog without categories reaches the worker's re-ranker as -1 codes and the
    offline one as None: the lists must be the same."""
    rel, vecs, keys, _, eligible = random_pools(seed, 3, 40)
    pol = RerankPolicy.parse(policy)
    unknown = np.full(rel.shape, -1)
    assert rerank_batch(rel, vecs, keys, 10, pol, unknown, eligible).tolist() == \
        rerank_batch(rel, vecs, keys, 10, pol, None, eligible).tolist()
