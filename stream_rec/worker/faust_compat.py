"""The one place stream-rec reaches into Faust internals, and why.

1. Current event. Faust decides which RocksDB partition a table read/write uses, and which
changelog partition a write goes to, from the "current event" (a context variable).
``stream.take_events`` hands over a batch that mixes partitions while the current event stays
at the last message, so a table write for an earlier shopper would land in the wrong partition.
``acting_for`` makes one message current for this task only. It deliberately leaves
``Stream.current_event`` alone: the take buffer, filling concurrently, reads that attribute to
collect new messages.

2. Rewinding partitions nobody has committed yet. Faust drops records it fetched while its
flow was stopped (a rebalance began during the fetch) and counts on "seek to the committed
offsets" to fetch them again. aiokafka's ``seek_to_committed`` leaves a partition without a
committed offset where it is, past the dropped records. That is exactly a partition taken over
from a worker that died before its first commit: the survivor skipped that partition's backlog
and, once it committed later offsets, lost it. ``RewindingConsumer`` sends such partitions back
to their first offset, which is where the group's ``earliest`` reset policy starts them anyway.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

import faust
from faust.streams import _current_event
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, ConsumerT, TransportT


@contextmanager
def acting_for(event: Any) -> Iterator[None]:
    """Make ``event`` Faust's current event inside the block (for table partitioning)."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


class RewindingConsumer(aiokafka_driver.Consumer):
    """Faust's aiokafka consumer whose "seek to committed" also rewinds uncommitted partitions."""

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = await super().seek_to_committed()
        # Changelog partitions are never committed: table recovery seeks them itself.
        uncommitted = [tp for tp, offset in committed.items()
                       if not offset and not self._is_changelog_tp(tp)]
        if uncommitted:
            await self._thread.seek_to_beginning(*uncommitted)
        return committed

    def committed_offset(self, tp: TP) -> int | None:
        """The offset this worker last committed for ``tp`` (or found committed when assigned)."""
        return self._committed_offset.get(tp)


class Transport(aiokafka_driver.Transport):
    Consumer: ClassVar[type[ConsumerT]] = RewindingConsumer


class App(faust.App):
    """A Faust app whose consumer is a ``RewindingConsumer``."""

    def _new_transport(self) -> TransportT:
        return Transport(self.conf.broker_consumer, self)
