"""Batches that form while the previous batch runs, instead of after a fixed wait.

Faust's ``take_events`` waits up to its window for a batch to fill, and only takes events from
the stream during that wait: while a batch is handled, new events stay queued, and after it
the window starts again, even with work waiting. At steady mid-range rates each cycle idles a
whole window; an event that reaches an idle worker waits for the window too; and with a short
window a backlog is drained in small batches (32 events at a 1 ms window against 214 here).

``batches`` takes the events off the stream in a task of its own, into a buffer of at most
``max_events``, all the time, and hands over whatever the buffer holds as soon as the caller
asks for the next batch: an idle worker starts on an event at once, a busy one takes what
arrived meanwhile, and under a backlog the batches are full.

The events of a batch are acknowledged (``done``) only after the caller has finished with it
and asked for the next one. A batch whose handling raises is not acknowledged: its offsets
stay uncommitted, so the events are processed again after the restart, instead of counting
as processed while their lists were never sent. Nothing is held back while the caller waits:
it waits only when the buffer is empty. That matters in a rebalance, when Faust empties the
stream queues and waits for every event already taken to be acknowledged; a batch held back
until a next event arrived would wait forever.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def batches(events: AsyncIterable[T], max_events: int,
                  done: Callable[[list[T]], Awaitable[None]]) -> AsyncGenerator[list[T], None]:
    """Batches of ``events``, each everything that arrived since the previous one was handed
    over (at most ``max_events``); ``done(batch)`` runs once the caller asks for the next.
    An error of ``events`` is raised here once the events taken before it have been handed
    over; closing this generator stops taking events."""
    if max_events < 1:
        raise ValueError(f"max_events must be at least 1, not {max_events}")
    buffer: list[T] = []
    arrived = asyncio.Event()  # set when the buffer gained an event, or the events ended
    room = asyncio.Event()  # set when the buffer has room
    room.set()

    async def take() -> None:
        try:
            async for event in events:
                while len(buffer) >= max_events:
                    room.clear()
                    await room.wait()
                buffer.append(event)
                arrived.set()
        finally:
            arrived.set()

    taker = asyncio.ensure_future(take())
    try:
        while True:
            if not buffer:
                if taker.done():
                    taker.result()  # raises what ended the events, if anything did
                    return
                arrived.clear()
                await arrived.wait()
                continue
            batch = buffer[:]
            buffer.clear()
            room.set()
            yield batch
            await done(batch)  # only reached when the caller came back: it succeeded
    finally:
        taker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await taker
