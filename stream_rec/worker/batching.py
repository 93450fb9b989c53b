"""Batches that form while the previous batch runs, instead of after a fixed wait.

Faust's ``take_events`` waits up to its window for a batch to fill, and starts that wait again
after every batch, even when events piled up while the previous one was being scored: at
steady mid-range rates each cycle idles a whole window with work waiting, and an event that
reaches an idle worker waits for the window too. ``batches`` takes what is there instead: a
batch ends when it is full or when no further event is waiting, so an idle worker starts on an
event at once and a busy one takes everything that arrived while it was busy (at most
``max_events``). Under a backlog the batches are full either way.

The events are acknowledged (``done``) only after the caller has finished with their batch
and asked for the next one. A batch whose handling raises is not acknowledged: its offsets
stay uncommitted, so the events are processed again after the restart, instead of counting as
processed while their lists were never sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def batches(events: AsyncIterable[T], max_events: int, waiting: Callable[[], bool],
                  done: Callable[[list[T]], Awaitable[None]]) -> AsyncIterator[list[T]]:
    """Batches of ``events``: each ends when it holds ``max_events`` or when ``waiting()``
    says no further event is ready; ``done(batch)`` runs once the caller asks for the next."""
    if max_events < 1:
        raise ValueError(f"max_events must be at least 1, not {max_events}")
    batch: list[T] = []
    async for event in events:
        batch.append(event)
        if len(batch) < max_events and waiting():
            continue
        yield batch
        await done(batch)  # only reached when the caller came back for more: it succeeded
        batch = []
    if batch:  # the events ended while more were said to be waiting
        yield batch
        await done(batch)
