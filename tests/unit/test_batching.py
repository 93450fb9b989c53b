"""The worker's batches hold what arrived while the previous batch was handled, are
acknowledged only once handled, and never hold events back while the handler waits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_rec.worker.batching import batches


class Feed:
    """Events put in by the test, read by ``batches``; what it acknowledged."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[int | None | Exception] = asyncio.Queue()
        self.acked: list[int] = []

    async def events(self) -> AsyncIterator[int]:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            if isinstance(item, Exception):
                raise item
            yield item

    async def done(self, batch: list[int]) -> None:
        self.acked.extend(batch)


async def ticks(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


@settings(max_examples=150, deadline=None)
@given(arrivals=st.lists(st.integers(min_value=1, max_value=30), max_size=8),
       max_events=st.integers(min_value=1, max_value=12))
def test_each_batch_is_what_arrived_while_the_last_was_handled(arrivals: list[int],
                                                              max_events: int) -> None:
    """While batch i is handled, arrivals[i] events come in: the next batch is what waits
    then, up to the cap; each event once, in order, acknowledged only after its batch."""

    async def run() -> tuple[list[list[int]], list[int], list[int]]:
        feed = Feed()
        numbers = iter(range(100_000))
        sent = [next(numbers)]
        feed.queue.put_nowait(sent[0])  # the first event reaches an idle worker
        pending = list(arrivals)
        if not pending:
            feed.queue.put_nowait(None)
        seen: list[list[int]] = []
        async for batch in batches(feed.events(), max_events, feed.done):
            assert not set(batch) & set(feed.acked)  # not acknowledged while handled
            seen.append(batch)
            if pending:
                for _ in range(pending.pop(0)):
                    sent.append(next(numbers))
                    feed.queue.put_nowait(sent[-1])
                if not pending:
                    feed.queue.put_nowait(None)  # the events end after these
                await ticks(3 * max(arrivals))  # handling takes a while
        return seen, feed.acked, sent

    seen, acked, sent = asyncio.run(run())
    assert [e for batch in seen for e in batch] == sent
    assert acked == sent
    # The batch after each handled one holds everything waiting then, up to the cap.
    expected = [1]
    waiting = 0
    for count in arrivals:
        waiting += count
        expected.append(min(waiting, max_events))
        waiting -= expected[-1]
    while waiting:
        expected.append(min(waiting, max_events))
        waiting -= expected[-1]
    assert [len(batch) for batch in seen] == expected


def test_an_idle_worker_gets_an_event_at_once_and_holds_nothing_back() -> None:
    async def run() -> None:
        feed = Feed()
        it = batches(feed.events(), 8, feed.done)
        next_batch = asyncio.ensure_future(it.__anext__())
        await ticks()
        assert not next_batch.done()  # nothing yet: it waits
        feed.queue.put_nowait(1)
        await ticks()
        assert next_batch.done() and next_batch.result() == [1]
        # While the caller waits for the next batch no event is held back: after a
        # rebalance empties the queue, the caller has everything that was taken.
        waiting = asyncio.ensure_future(it.__anext__())
        await ticks()
        assert feed.acked == [1] and not waiting.done()
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        await it.aclose()

    asyncio.run(run())


def test_a_batch_whose_handling_fails_is_not_acknowledged() -> None:
    async def run() -> Feed:
        feed = Feed()
        for event in (1, 2):
            feed.queue.put_nowait(event)
        with pytest.raises(RuntimeError):
            async with contextlib.aclosing(batches(feed.events(), 8, feed.done)) as them:
                async for batch in them:
                    if batch == [1, 2]:
                        feed.queue.put_nowait(3)
                        await ticks()
                        continue
                    raise RuntimeError("scoring failed")
        # closed: nothing more is taken
        feed.queue.put_nowait(4)
        await ticks()
        assert feed.queue.qsize() == 1
        return feed

    assert asyncio.run(run()).acked == [1, 2]


def test_an_error_of_the_events_comes_after_the_events_before_it() -> None:
    async def run() -> list[list[int]]:
        feed = Feed()
        for item in (1, 2, ValueError("stream broke")):
            feed.queue.put_nowait(item)
        seen = []
        with pytest.raises(ValueError, match="stream broke"):
            async for batch in batches(feed.events(), 8, feed.done):
                seen.append(batch)
        return seen

    assert [e for batch in asyncio.run(run()) for e in batch] == [1, 2]


def test_max_events_must_be_positive() -> None:
    async def first() -> None:
        async for _ in batches(Feed().events(), 0, Feed().done):
            pass

    with pytest.raises(ValueError, match="max_events"):
        asyncio.run(first())
