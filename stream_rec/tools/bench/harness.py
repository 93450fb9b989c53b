"""The client side of a measurement: send events, collect outputs, match them by event_id.

One ``Flow`` per measured process: an aiokafka producer into its input topic and a consumer
assigned to every partition of its output topic, on one event loop, recording into a
``Ledger``. Arrival time is when a fetched batch reaches the client; send time is when the
event was due (at a fixed rate, the schedule; as fast as possible, the moment before
``send``), all on ``time.monotonic``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from types import TracebackType

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stream_rec.errors import UserError
from stream_rec.offline.progress import Progress
from stream_rec.tools.bench.ledger import Ledger, extract_event_id, extract_own_ms
from stream_rec.tools.bench.workload import BenchEvent

YIELD_EVERY = 256  # sends between yields to the loop, so the collector keeps reading


class BenchError(UserError):
    """A measurement could not complete (a process died, outputs went missing)."""


class Flow:
    """Events into ``in_topic``, outputs out of ``out_topic`` (``partitions`` of it)."""

    def __init__(self, bootstrap: str, in_topic: str, out_topic: str, partitions: int) -> None:
        self.bootstrap, self.in_topic, self.out_topic = bootstrap, in_topic, out_topic
        self.partitions = partitions
        self.ledger = Ledger()
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                         enable_auto_commit=False, fetch_max_wait_ms=50,
                                         max_partition_fetch_bytes=4 * 2**20)
        self._collector: asyncio.Task[None] | None = None
        self._arrivals: Progress | None = None

    async def __aenter__(self) -> Flow:
        await self.producer.start()
        await self.consumer.start()
        # Assign, not subscribe: no group, no rebalance, nothing missed before the first send.
        self.consumer.assign([TopicPartition(self.out_topic, p) for p in range(self.partitions)])
        await self.consumer.seek_to_beginning()
        self._collector = asyncio.ensure_future(self._collect())
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._collector is not None:
            self._collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._collector
        await self.consumer.stop()
        await self.producer.stop()

    async def _collect(self) -> None:
        ledger = self.ledger
        while True:
            batches = await self.consumer.getmany(timeout_ms=50, max_records=10_000)
            now = time.monotonic()
            # Kafka timestamps are wall-clock ms; the ledger's clock is monotonic.
            wall_to_monotonic = now - time.time()
            for records in batches.values():
                for record in records:
                    event_id = extract_event_id(record.value)
                    ledger.record_arrival(event_id, now)
                    if record.timestamp is not None and record.timestamp > 0:
                        ledger.record_made(event_id, record.timestamp / 1000.0
                                           + wall_to_monotonic, extract_own_ms(record.value))
                if self._arrivals is not None:
                    self._arrivals.update(len(records))

    async def send_fast(self, events: Sequence[BenchEvent]) -> None:
        """Send as fast as the client can (throughput: the process must be the bottleneck)."""
        futures = []
        for n, event in enumerate(events):
            self.ledger.record_send(event.event_id, time.monotonic())
            futures.append(await self.producer.send(self.in_topic, event.value, key=event.key))
            if n % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)
        await self._delivered(futures)

    async def send_at_rate(self, events: Sequence[BenchEvent], rate: float,
                           start: float | None = None) -> float:
        """Send at ``rate`` events/s, open loop: event n is due at ``start + n / rate``.

        The ledger records the due time, so if this client falls behind (a busy CPU), the
        delay counts as latency instead of silently lowering the offered rate. Returns when
        the next event would be due, so consecutive calls keep one schedule (the soak).
        """
        if rate <= 0:
            raise ValueError("rate must be positive")
        futures = []
        start = time.monotonic() + 0.01 if start is None else start
        for n, event in enumerate(events):
            due = start + n / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.ledger.record_send(event.event_id, due)
            futures.append(await self.producer.send(self.in_topic, event.value, key=event.key))
        await self._delivered(futures)
        return start + len(events) / rate

    async def _delivered(self, futures: list[asyncio.Future[object]]) -> None:
        await self.producer.flush()
        for result in await asyncio.gather(*futures, return_exceptions=True):
            if isinstance(result, BaseException):
                raise BenchError(f"producing to {self.in_topic} failed: {result!r}")

    async def wait_for(self, event_ids: Sequence[str], timeout_s: float, label: str,
                       alive: Callable[[], None] = lambda: None) -> None:
        """Block until every event's output arrived; ``alive`` raises if the process died."""
        ids = self.ledger.missing(event_ids)  # the progress bar counts what is still out
        total = len(ids)
        progress = Progress(total, label)
        self._arrivals = progress
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                missing = self.ledger.missing(ids)
                if not missing:
                    progress.done = total
                    break
                ids = missing  # only re-check what is still out
                if time.monotonic() > deadline:
                    raise BenchError(f"{label}: {len(missing)} of {total} outputs missing "
                                     f"after {timeout_s:.0f} s (first: {missing[0]})")
                alive()
                await asyncio.sleep(0.05)
        finally:
            self._arrivals = None
            progress.close()

    async def _send(self, events: Sequence[BenchEvent], rate: float | None) -> None:
        if rate:
            await self.send_at_rate(events, rate)
        else:
            await self.send_fast(events)

    async def run_phase(self, events: Sequence[BenchEvent], rate: float | None,
                        timeout_s: float, label: str,
                        alive: Callable[[], None] = lambda: None) -> None:
        """Send ``events`` (fast, or at ``rate``) and wait for all their outputs."""
        sender = asyncio.ensure_future(self._send(events, rate))

        def sender_and_process_alive() -> None:
            if sender.done() and not sender.cancelled() and sender.exception() is not None:
                raise sender.exception()  # type: ignore[misc]
            alive()

        try:
            await self.wait_for([e.event_id for e in events], timeout_s, label,
                                sender_and_process_alive)
        finally:
            if not sender.done():
                sender.cancel()
        await sender
