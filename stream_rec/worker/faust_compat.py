"""Where stream-rec reaches into Faust internals, and why (the tables' RocksDB partitions and
changelog offsets are written beneath Faust's per-key API in ``table_io``, for the reasons
given there).

1. Current event. Faust decides which RocksDB partition a table read/write uses, and which
changelog partition a write goes to, from the "current event" (a context variable).
A batch mixes partitions while the current event stays at the last message, so a table write
for an earlier shopper would land in the wrong partition. ``acting_for`` makes one message
current for this task only. It deliberately leaves ``Stream.current_event`` alone: Faust's take
buffer (``batch_wait_ms`` above 0), filling concurrently, reads that attribute to collect new
messages.

2. Rewinding partitions nobody has committed yet. Faust drops records it fetched while its
flow was stopped (a rebalance began during the fetch) and counts on "seek to the committed
offsets" to fetch them again. aiokafka's ``seek_to_committed`` leaves a partition without a
committed offset where it is, past the dropped records. That is exactly a partition taken over
from a worker that died before its first commit: the survivor skipped that partition's backlog
and, once it committed later offsets, lost it. ``RewindingConsumer`` sends such partitions back
to their first offset, which is where the group's ``earliest`` reset policy starts them anyway.

3. Keeping events fetched while a rebalance ends. Faust's flow control empties every stream
queue whenever it is told to resume, and at the end of a rebalance it is told so twice: once
when table recovery lets the flow run, and again after the stream partitions are resumed and
sought to their committed offsets. Events fetched between those two calls, after the seek, are
already past the consumer's position, so emptying the queue a second time lost them for good:
the worker taking over a partition started some offsets past the committed one and skipped
the events in between. ``FlowControl`` only empties the queues when flow resumes after a
suspension, which is when they can hold events of a previous assignment.

4. A bounded stop. With the broker unreachable, a worker told to stop (SIGTERM) waits about a
minute on its consumer thread before it exits (measured: 65 s), longer than an orchestrator
usually grants before SIGKILL. ``Worker`` starts a watchdog when the stop begins: past
``App.stop_timeout_s`` the process exits at once. Nothing valid is lost that way: offsets are
committed only after the lists they cover are on the broker, so the events of an unfinished
stop are processed again by whichever worker takes their partitions.

5. Watching the consumer. ``RewindingConsumer`` logs the offset every partition resumes from
after a rebalance, tells the lag timer where a partition's acked offsets start (a commit that
cannot advance, see ``commit_watch``), rejoins the group on request, and keeps Faust's
livelock check from crashing the consumer on a partition whose position aiokafka is still
resetting.

6. Fetch sizes. Faust builds its aiokafka consumer with fixed fetch bounds (1 byte, 1.5 s).
``FetchingThread`` sets the app's ``fetch_min_bytes`` and ``fetch_max_wait_ms`` on it before
it starts, so that an operator can trade a few ms at low rates for fewer, fuller fetches.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Mapping
from types import TracebackType
from typing import Any, ClassVar

import faust
from faust.streams import _current_event
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, ConsumerT, TransportT
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent

from stream_rec.errors import STOP_TIMEOUT_EXIT_STATUS

log = logging.getLogger(__name__)


class acting_for:  # noqa: N801 - used like the function-style context managers it replaced
    """``with acting_for(event):`` makes ``event`` Faust's current event inside the block (for
    table partitioning). A class, not ``@contextmanager``: it runs for every shopper of every
    batch, up to three times."""

    __slots__ = ("_event", "_token")

    def __init__(self, event: Any) -> None:
        self._event = event
        self._token: Any = None

    def __enter__(self) -> None:
        self._token = _current_event.set(weakref.ref(self._event))

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        _current_event.reset(self._token)


class RewindingConsumer(aiokafka_driver.Consumer):
    """Faust's aiokafka consumer whose "seek to committed" also rewinds uncommitted partitions."""

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = await super().seek_to_committed()
        # Changelog partitions are never committed: table recovery seeks them itself.
        streams = {tp: offset for tp, offset in committed.items()
                   if not self._is_changelog_tp(tp)}
        uncommitted = [tp for tp, offset in streams.items() if not offset]
        if uncommitted:
            await self._thread.seek_to_beginning(*uncommitted)
        if streams:  # where each partition resumes: the first thing to check after a rebalance
            log.info("resuming at committed offsets: %s", ", ".join(
                f"{tp.topic}[{tp.partition}]@{offset or 'start'}"
                for tp, offset in sorted(streams.items())))
        return committed

    def verify_event_path(self, now: float, tp: TP) -> None:
        """Faust's livelock check of ``tp``, skipped while aiokafka resets its position.

        The check reads aiokafka's position, which asserts while a reset is pending (right
        after ``seek_to_beginning`` above, until the fetcher has looked the offset up). The
        failed assertion crashed the consumer service and stopped the worker; the check only
        logs, so missing one round is harmless.
        """
        try:
            super().verify_event_path(now, tp)
        except AssertionError:
            log.debug("livelock check of %s skipped: its position is being reset", tp)

    async def rejoin_group(self) -> None:
        """Ask the group coordinator for a rebalance, as a restarted member would cause.

        Every partition is then revoked and sought back to its committed offset, and Faust
        starts its offset bookkeeping afresh (see ``commit_watch``).
        """
        coordinator = self._thread._ensure_consumer()._coordinator

        async def request() -> None:  # the coordinator's futures belong to the consumer thread
            coordinator.request_rejoin()

        await self._thread.call_thread(request)

    def _new_consumer_thread(self) -> FetchingThread:
        return FetchingThread(self, loop=self.loop, beacon=self.beacon)

    def committed_offset(self, tp: TP) -> int | None:
        """The offset this worker last committed for ``tp`` (or found committed when assigned)."""
        return self._committed_offset.get(tp)

    def first_acked(self, tp: TP) -> int | None:
        """The lowest offset of ``tp`` acked but not committed yet (None when there is none).

        Faust commits only a run of acked offsets that starts at the committed one; when this
        is further ahead, the partition's commits have stopped (see ``commit_stall``).
        """
        acked = self._acked.get(tp)
        return min(acked) if acked else None


class FetchingThread(aiokafka_driver.AIOKafkaConsumerThread):
    """Faust's consumer thread whose fetches wait for the app's ``fetch_min_bytes`` (or
    ``fetch_max_wait_ms``) instead of Faust's fixed 1 byte and 1.5 s."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        app = self.app
        # aiokafka keeps both as given and hands them to its fetcher when it starts.
        consumer._fetch_min_bytes = getattr(app, "fetch_min_bytes", 1)
        consumer._fetch_max_wait_ms = getattr(app, "fetch_max_wait_ms", 1500)
        return consumer


class FlowControl(FlowControlEvent):
    """Flow control that empties the stream queues only when flow resumes after a suspension."""

    def resume(self) -> None:
        if self.is_active():
            return  # queues hold live events of the current assignment: keep them
        super().resume()


class Transport(aiokafka_driver.Transport):
    """Faust's aiokafka transport, with a ``RewindingConsumer`` as its consumer."""

    Consumer: ClassVar[type[ConsumerT]] = RewindingConsumer


class App(faust.App):
    """A Faust app whose consumer is a ``RewindingConsumer`` and whose flow control keeps events."""

    stop_timeout_s: float | None = None  # read by ``Worker``: None waits for a clean stop
    fetch_min_bytes = 1  # read by ``FetchingThread``
    fetch_max_wait_ms = 1500

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        return FlowControl(loop=self.loop)

    def _new_transport(self) -> TransportT:
        return Transport(self.conf.broker_consumer, self)


class Worker(faust.Worker):
    """A Faust worker that exits anyway once its stop has taken ``App.stop_timeout_s``."""

    async def on_stop(self) -> None:
        timeout = getattr(self.app, "stop_timeout_s", None)
        if timeout is not None:
            watchdog = threading.Timer(timeout, _exit_unfinished_stop, args=(timeout,))
            watchdog.daemon = True  # a clean stop ends the process without waiting for it
            watchdog.start()
        await super().on_stop()


def _exit_unfinished_stop(timeout: float) -> None:
    log.critical("the worker did not stop within %.0f s (is the broker reachable?); exiting "
                 "now: events whose offsets were not committed are processed again", timeout)
    logging.shutdown()  # flush the log handlers: os._exit skips them
    os._exit(STOP_TIMEOUT_EXIT_STATUS)
