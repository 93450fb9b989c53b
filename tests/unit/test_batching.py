"""The worker's batches form from what is waiting, and are acknowledged only once handled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_rec.worker.batching import batches


class Feed:
    """Events arriving in bursts: a burst is all there when its first event is read."""

    def __init__(self, bursts: list[list[int]]) -> None:
        self.bursts = [list(b) for b in bursts if b]
        self.ready: list[int] = []
        self.acked: list[int] = []

    async def events(self) -> AsyncIterator[int]:
        while self.ready or self.bursts:
            if not self.ready:
                self.ready = self.bursts.pop(0)
            await asyncio.sleep(0)
            yield self.ready.pop(0)

    def waiting(self) -> bool:
        return bool(self.ready)

    async def done(self, batch: list[int]) -> None:
        self.acked.extend(batch)


async def collect(feed: Feed, max_events: int) -> list[list[int]]:
    seen = []
    async for batch in batches(feed.events(), max_events, feed.waiting, feed.done):
        # nothing of this batch is acknowledged while it is being handled
        assert not set(batch) & set(feed.acked)
        seen.append(list(batch))
    return seen


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(min_value=0, max_value=40), max_size=8),
       max_events=st.integers(min_value=1, max_value=16))
def test_batches_are_the_waiting_events_up_to_the_cap(sizes: list[int], max_events: int) -> None:
    numbers = iter(range(10_000))
    bursts = [[next(numbers) for _ in range(size)] for size in sizes]
    feed = Feed(bursts)
    seen = asyncio.run(collect(feed, max_events))
    everything = [e for burst in bursts for e in burst]
    assert [e for batch in seen for e in batch] == everything  # each once, in order
    assert feed.acked == everything
    # A burst is cut only by the cap, and a batch never spans two bursts (the first event of
    # the next burst was not waiting when the batch ended).
    expected = [burst[i:i + max_events] for burst in bursts if burst
                for i in range(0, len(burst), max_events)]
    assert seen == expected


def test_a_batch_whose_handling_fails_is_not_acknowledged() -> None:
    feed = Feed([[1, 2], [3]])

    async def handle() -> None:
        async for batch in batches(feed.events(), 8, feed.waiting, feed.done):
            if 3 in batch:
                raise RuntimeError("scoring failed")

    with pytest.raises(RuntimeError):
        asyncio.run(handle())
    assert feed.acked == [1, 2]


def test_max_events_must_be_positive() -> None:
    async def first() -> None:
        async for _ in batches(Feed([[1]]).events(), 0, lambda: False, Feed([]).done):
            pass

    with pytest.raises(ValueError, match="max_events"):
        asyncio.run(first())
