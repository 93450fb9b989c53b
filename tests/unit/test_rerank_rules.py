"""Business rules: the eligibility mask, and that every method obeys rules and caps."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_rec.rerank import (
    BusinessRules,
    RerankPolicy,
    blocked_mask,
    eligible_mask,
    rerank_batch,
    stable_item_keys,
)

POLICIES = ["none", "dpp:0", "dpp:0.001", "dpp:0.5", "dpp:0.95", "dpp:1", "mmr:0", "mmr:0.6"]


def test_mask_drops_delisted_out_of_stock_purchased_and_tired_items() -> None:
    ids = ["a", "b", "c", "d", "e", "f"]
    mask = eligible_mask(
        ids,
        BusinessRules(exclude_purchased=True, max_shows_without_click=3),
        purchased={"a"},
        shows_without_click={"b": 3, "c": 2},
        delisted={"d"},
        out_of_stock={"e"},
    )
    assert mask.tolist() == [False, False, True, False, False, True]


def test_rules_can_be_switched_off() -> None:
    ids = [1, 2, 3]
    rules = BusinessRules(exclude_purchased=False, max_shows_without_click=0)
    mask = eligible_mask(ids, rules, purchased={1}, shows_without_click={2: 99}, delisted={3})
    assert mask.tolist() == [True, True, False]  # delisted items are never recommendable


def test_rules_reject_negative_counts() -> None:
    with pytest.raises(ValueError):
        BusinessRules(max_per_category=-1)
    assert BusinessRules(max_per_category=0).category_cap is None
    assert BusinessRules(max_per_category=2).category_cap == 2


def test_stable_keys_are_the_same_in_every_process() -> None:
    keys = stable_item_keys([42, "sku-1", "sku-1", np.int64(7)])
    assert keys[0] == 42 and keys[3] == 7 and keys[1] == keys[2]
    # BLAKE2b of "sku-1", not Python's per-process salted hash():
    digest = hashlib.blake2b(b"sku-1", digest_size=8).digest()
    assert keys[1] == int.from_bytes(digest, "big", signed=True) == -3627227110211881754


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_b=st.sampled_from([1, 2, 17]),
    m=st.integers(1, 40),
    k=st.integers(0, 30),
    policy=st.sampled_from(POLICIES),
    cap=st.sampled_from([None, 1, 2, 3]),
    n_cats=st.integers(1, 6),
)
def test_rules_and_caps_always_hold_and_lists_are_as_long_as_they_can_be(
    seed: int, n_b: int, m: int, k: int, policy: str, cap: int | None, n_cats: int
) -> None:
    rng = np.random.default_rng(seed)
    rel = rng.normal(size=(n_b, m)).astype(np.float32)
    vecs = rng.normal(size=(n_b, m, 6)).astype(np.float32)
    vecs[:, : m // 3] = vecs[:, :1]  # near-duplicates: the DPP runs out of span early
    cats = rng.integers(-1, n_cats, size=(n_b, m))
    eligible = rng.random((n_b, m)) < 0.75
    keys = np.arange(n_b * m, dtype=np.int64).reshape(n_b, m)
    got = rerank_batch(rel, vecs, keys, k, RerankPolicy.parse(policy), cats, eligible, cap)
    assert got.shape == (n_b, k) and got.dtype == np.int64
    for b in range(n_b):
        row = got[b]
        picked = row[row >= 0]
        assert (row[len(picked) :] == -1).all(), "padding only at the end"
        assert len(set(picked.tolist())) == len(picked), "no duplicates"
        assert eligible[b, picked].all(), "only eligible items"
        c = cats[b, picked]
        if cap is not None:
            assert (np.bincount(c[c >= 0], minlength=n_cats) <= cap).all(), "category cap"
        ok = cats[b][eligible[b]]
        reachable = int((ok < 0).sum())
        reachable += sum(
            min(int((ok == c).sum()), cap if cap is not None else m) for c in range(n_cats)
        )
        assert len(picked) == min(k, reachable), "as long as rules and caps allow"


def test_non_finite_scores_are_never_recommended() -> None:
    rel = np.array([[np.nan, 2.0, np.inf, 1.0, -np.inf]], dtype=np.float32)
    vecs = np.eye(5, dtype=np.float32)[None]
    for policy in POLICIES:
        got = rerank_batch(rel, vecs, np.arange(5)[None], 5, RerankPolicy.parse(policy))
        assert got[0].tolist() == [1, 3, -1, -1, -1], policy


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 6), st.integers(1, 12), st.integers(0, 2**31), st.integers(1, 400))
def test_batch_blocked_mask_is_each_rows_own_membership(
        n_rows: int, width: int, seed: int, n_items: int) -> None:
    rng = np.random.default_rng(seed)
    candidates = rng.integers(-1, n_items, size=(n_rows, width))
    blocked = [rng.integers(0, n_items, size=rng.integers(0, 8)).tolist() for _ in range(n_rows)]
    got = blocked_mask(candidates, blocked)
    for row in range(n_rows):
        want = np.isin(candidates[row], blocked[row]) & (candidates[row] >= 0)
        assert np.array_equal(got[row], want)


def test_blocked_mask_keeps_rows_apart_and_needs_one_entry_per_row() -> None:
    candidates = np.array([[5, 7, -1], [7, 5, 9]])
    assert blocked_mask(candidates, [[7], []]).tolist() == [[False, True, False],
                                                           [False, False, False]]
    assert not blocked_mask(candidates, [[], []]).any()
    with pytest.raises(ValueError, match="one entry per row"):
        blocked_mask(candidates, [[7]])
