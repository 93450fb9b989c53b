"""Trending: decayed popularity, ranked incrementally but always exactly."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_rec.core.trending import Trending

HALF_LIFE_MS = 1_000.0

# (item, ms since the previous event, type code) or None for "read the top list now"
steps = st.lists(
    st.one_of(st.none(), st.tuples(st.integers(0, 40), st.integers(0, 3_000),
                                   st.integers(0, 2))),
    max_size=300)


def brute_force_top(trending: Trending, n: int) -> list[str]:
    ranked = sorted(trending._scores.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
    return [item for item, _ in ranked[:n]]


@settings(max_examples=200, deadline=None)
@given(steps=steps, n=st.integers(1, 12), kept=st.sampled_from([8, 24, 64]))
def test_incremental_top_equals_a_full_ranking(steps: list, n: int, kept: int) -> None:
    trending = Trending(half_life_ms=HALF_LIFE_MS)
    # Small, so that items enter and leave the kept top list often; the larger sizes move a
    # few touched items within the list instead of ranking it again.
    trending._top_size = kept
    now = 0
    for step in steps:
        if step is None:
            assert [i for i, _ in trending.top(n)] == brute_force_top(trending, n)
            continue
        item, gap, type_code = step
        now += gap
        trending.add(f"i{item}", now, type_code)
    assert [i for i, _ in trending.top(n)] == brute_force_top(trending, n)


def test_recent_events_outweigh_old_ones_and_scores_are_relative() -> None:
    trending = Trending(half_life_ms=HALF_LIFE_MS)
    for _ in range(3):
        trending.add("old", 0)
    trending.add("new", 5_000)  # five half-lives later: worth 32 old events
    top = trending.top(2)
    assert [item for item, _ in top] == ["new", "old"]
    assert top[0][1] == 1.0 and 0.0 < top[1][1] < 0.2


def test_scores_survive_rebasing_far_into_the_future() -> None:
    trending = Trending(half_life_ms=1.0)
    trending.add("a", 0)
    trending.add("a", 1)
    assert trending.top(1)[0][0] == "a"
    trending.add("b", 10_000)  # 10,000 half-lives: forces a rebase of every score
    trending.add("c", 10_000)
    trending.add("c", 10_000)
    assert [i for i, _ in trending.top(3)][:2] == ["c", "b"]
