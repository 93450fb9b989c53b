"""The event agent: take a batch, hand it to the serving batch function, write, send.

Events arrive keyed by user_id, so one shopper's events stay on one partition, in order, and
the ``user-state`` table (RocksDB, changelog-backed) is co-partitioned with them. Everything
that decides what happens to an event lives in ``stream_rec.serving.batch`` (no Faust there);
this module only moves bytes between it and Faust. Faust's table API picks the RocksDB and
changelog partition of each operation from its "current event", and a batch mixes partitions:
the tables are read and written beneath that API instead, on the partition of each shopper's
own message, a whole batch at a time (``stream_rec.worker.table_io``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import AsyncGenerator, Sequence
from typing import cast

from aiokafka import ConsumerRecord
from faust import Stream, StreamT
from faust.types import TP, EventT

from stream_rec.app import app, app_settings, rocksdb_options
from stream_rec.errors import UNDELIVERED_EXIT_STATUS
from stream_rec.serving.batch import BatchCounts, BatchResult, TableWrite
from stream_rec.serving.dead_letter import Message
from stream_rec.serving.online_metrics import add_up, decode_partition_metrics
from stream_rec.worker.bandit import step_bandits
from stream_rec.worker.batching import batches
from stream_rec.worker.commit_watch import CommitWatch, commit_problem
from stream_rec.worker.expiry import SWEEP_INTERVAL_S, Sweeper, active_partition_dbs
from stream_rec.worker.faust_compat import RewindingConsumer
from stream_rec.worker.feeds import tail_topic
from stream_rec.worker.heap import settle
from stream_rec.worker.metrics import WorkerMetrics, partition_lag
from stream_rec.worker.models import (
    ModelRefused,
    announced_version,
    serve_arm_models,
    swap_to,
)
from stream_rec.worker.runtime import WorkerRuntime
from stream_rec.worker.table_io import Change, TableWriter, read
from stream_rec.worker.topic_ids import fetch_topic_tag

log = logging.getLogger(__name__)
settings = app_settings(app)
runtime = WorkerRuntime(settings)

events_topic = app.topic(settings.events_topic, key_serializer="raw", value_serializer="raw",
                         partitions=settings.partitions)

user_state = app.Table("user-state", key_type=bytes, value_type=bytes,
                       partitions=settings.partitions, options=rocksdb_options(settings),
                       help="Shopper state (UserState, see stream_rec.core.state_codec).")
latest_recs = app.Table("latest-recs", key_type=bytes, value_type=bytes,
                        partitions=settings.partitions, options=rocksdb_options(settings),
                        help="The last recommendation message per shopper (JSON).")
online_metrics = app.Table("online-metrics", key_type=bytes, value_type=bytes,
                           partitions=settings.partitions, options=rocksdb_options(settings),
                           help="Online metrics per events partition (serving/online_metrics).")


@app.agent(events_topic)
async def process_events(stream: StreamT) -> None:
    """The events agent: once catalog and model are checked, handle events in batches."""
    await runtime.catalog_ready.wait()  # never recommend before knowing what is delisted
    await runtime.experiments_ready.wait()  # nor before knowing who is in which arm
    await runtime.model_checked.wait()  # nor serve fallback lists while a model is loading
    assert isinstance(stream, Stream)  # take_events lives on the concrete class
    if settings.gc_freeze:
        settle("startup")
    tagged_generation: int | None = None
    try:
        # Closed at once when a batch fails, so that nothing more is taken off the stream.
        async with contextlib.aclosing(event_batches(stream)) as batches_of_events:
            async for batch in batches_of_events:
                if tagged_generation != app.consumer_generation_id:
                    # Once per rebalance: the topic may have been deleted and created again.
                    tagged_generation = app.consumer_generation_id
                    runtime.handler.topic_tags[settings.events_topic] = await asyncio.to_thread(
                        fetch_topic_tag, settings, settings.events_topic)
                await handle_batch(batch)
                runtime.metrics.agent_failure = ""
    except Exception as exc:
        # Faust's supervisor logs it and starts the agent again; until a batch goes through,
        # /health says so (a worker whose every batch fails must not look healthy).
        runtime.metrics.agent_crashes += 1
        runtime.metrics.agent_failure = f"{type(exc).__name__}: {exc}"[:500]
        raise


def event_batches(stream: Stream) -> AsyncGenerator[Sequence[EventT], None]:
    """The agent's batches: with ``batch_wait_ms`` 0 whatever arrived while the previous batch
    ran (``worker.batching``), otherwise Faust's ``take_events`` with that window."""
    if settings.batch_wait_ms:
        return stream.take_events(settings.batch_max_events,
                                  within=settings.batch_wait_ms / 1000.0)
    # Acked by ``batches`` once a batch is handled, not by the stream as it yields each event.
    stream.enable_acks = False

    async def ack(batch: list[EventT]) -> None:
        for event in batch:
            await stream.ack(event)

    return batches(stream.events(), settings.batch_max_events, done=ack)


def as_message(event: EventT) -> Message:
    """A Faust event's Kafka record as the serving batch function's plain ``Message``."""
    m = event.message
    return Message(key=None if m.key is None else bytes(m.key),
                   value=None if m.value is None else bytes(m.value),
                   topic=m.topic, partition=m.partition, offset=m.offset,
                   timestamp_ms=None if m.timestamp is None else round(m.timestamp * 1000),
                   generation=m.generation_id or 0)


async def handle_batch(batch: Sequence[EventT]) -> None:
    """One ``take_events`` batch: every valid interaction event gets exactly one list, in
    order; every other message one dead letter (``stream_rec.serving.batch``)."""
    clock = runtime.metrics.stages
    consumer = cast(RewindingConsumer, app.consumer)
    handler = runtime.handler

    def read_state(key: bytes, index: int) -> bytes | None:
        return read(user_state, batch[index].message.partition, key)

    def read_metrics(key: bytes, index: int) -> bytes | None:
        return read(online_metrics, batch[index].message.partition, key)

    now_ms = time.time() * 1000
    taken = handler.take([as_message(e) for e in batch], read_state, now_ms,
                         committed=lambda m: consumer.committed_offset(TP(m.topic, m.partition)),
                         clock=clock, read_metrics=read_metrics)
    lists = await runtime.recommend(taken.requests, clock)
    with clock.stage("state"):
        result = handler.finish(taken, lists)
        await write_tables(batch, result)
    with clock.stage("encode_produce"):
        await publish(batch, result)
    clock.count(len(taken.requests))
    count(runtime.metrics, result)


async def write_tables(batch: Sequence[EventT], result: BatchResult) -> None:
    """State, latest lists and online metrics, each on the partition of the shopper's last
    message (the metrics on their own partition's)."""

    def changes(writes: Sequence[TableWrite]) -> list[Change]:
        return [(batch[w.owner].message.partition, w.key, w.value) for w in writes]

    await table_writer.write([(user_state, changes(result.state)),
                              (latest_recs, changes(result.latest)),
                              (online_metrics, changes(result.metrics))])


async def publish(batch: Sequence[EventT], result: BatchResult) -> None:
    """Send every dead letter and list.

    They go straight to the producer (the table changelog goes through Faust as usual):
    Faust's per-message topic machinery and sensors cost more than the list itself. Faust
    flushes this producer before it commits offsets, so a list or dead letter is on the broker
    before the message that caused it counts as processed (at-least-once is kept).
    """
    producer = app.producer
    for index, record in result.dead_letters:
        key = batch[index].message.key
        delivery = await producer.send(settings.dlq_topic, None if key is None else bytes(key),
                                       record, None, None, None)
        cast(asyncio.Future, delivery).add_done_callback(_on_delivery)
    topic = settings.recommendations_topic
    for out in result.lists:
        delivery = await producer.send(topic, out.key, out.value, None, None, None)
        cast(asyncio.Future, delivery).add_done_callback(_on_delivery)


def count(metrics: WorkerMetrics, result: BatchResult) -> None:
    """Add one batch's outcome to the worker's counters and its latency histogram."""
    c: BatchCounts = result.counts
    metrics.events_in += c.events_in
    metrics.events_redelivered += c.redelivered
    metrics.offsets_skipped += c.offsets_skipped
    metrics.events_valid += c.valid
    metrics.events_duplicate += c.duplicate
    metrics.dlq += c.dead_letters
    metrics.internal_errors += c.internal_errors
    metrics.forget_requests += c.forget_requests
    metrics.events_clamped += c.clamped
    metrics.state_unreadable += c.state_unreadable
    metrics.impressions += c.impressions
    metrics.recommendations_out += c.lists
    metrics.fallback_lists += c.fallback_lists
    for out in result.lists:
        metrics.latency_ms.observe(out.rec.latency_ms)
    metrics.batches += 1


def _on_delivery(delivery: asyncio.Future) -> None:
    """Stop the process at once when a list, dead letter or table change is lost, before its
    event's offset is committed.

    The event was acked when its batch ended, so Faust's next commit would cover it. That
    commit first flushes the producer, and the flush ends only after this callback has run (both
    wake on the same delivery, this one first), so exiting here leaves the offset uncommitted:
    the restarted worker processes the event again and sends its list (at-least-once).
    """
    if delivery.cancelled() or delivery.exception() is None:
        return
    runtime.metrics.produce_failed += 1
    log.critical("a recommendation, dead letter or table change could not be delivered (%r); "
                 "stopping before its event's offset is committed: restart the worker to serve "
                 "it again",
                 delivery.exception())
    logging.shutdown()  # flush the log handlers: os._exit skips them
    os._exit(UNDELIVERED_EXIT_STATUS)


table_writer = TableWriter(app, settings.events_topic, _on_delivery)


@app.task
async def follow_models() -> None:
    """Serve the registry's current model, then every version announced on model-updates."""
    one_at_a_time = asyncio.Lock()  # swaps land in announcement order

    async def on_announcement(record: ConsumerRecord) -> None:
        try:
            version = announced_version(record, settings)
        except ModelRefused as exc:
            runtime.metrics.model_rejected += 1
            log.error("%s", exc)
            return
        await runtime.catalog_ready.wait()  # as the first load below
        async with one_at_a_time:
            if version != runtime.metrics.model_version:
                await swap_to(runtime, version)
                await serve_arm_models(runtime)

    # Listen first, then read the registry pointer: no announcement can fall in between.
    listening = asyncio.Event()
    tail = asyncio.ensure_future(tail_topic(settings, settings.model_updates_topic,
                                            on_announcement, from_beginning=False,
                                            caught_up=listening))
    await listening.wait()
    # The model loads once the catalog is read (events wait for both anyway): its vocabulary
    # then shares the catalog's id strings (~60 MB at a million items), and the two do not
    # compete for the worker's one core.
    await runtime.catalog_ready.wait()
    async with one_at_a_time:
        await swap_to(runtime, None)
    runtime.model_checked.set()
    await tail


LAG_TICK_S = 5.0
commit_watch = CommitWatch(repair_after_ticks=max(0, math.ceil(settings.commit_repair_after_s
                                                                / LAG_TICK_S)))
_PROBLEMS = {"stalled": "%d offset(s) before the first acked one were never acked",
             "ahead": "it is %d past the last event processed, whose acks Faust ignores"}


@app.timer(interval=LAG_TICK_S)
async def measure_lag() -> None:
    """Events not yet processed, per assigned partition (highwater - next offset to process),
    and whether each partition's offset commits can still advance (``commit_watch``).

    From processed offsets, not the fetch position: Faust fetches far ahead into its buffers,
    and a partition whose fetched records were never processed would otherwise look caught up.
    """
    consumer = cast(RewindingConsumer, app.consumer)
    generation = app.consumer_generation_id
    lag: dict[str, int] = {}
    stalls: dict[str, int] = {}
    watched: set[str] = set()
    try:
        for tp in consumer.assignment():
            if tp.topic != settings.events_topic:
                continue
            name = f"{tp.topic}:{tp.partition}"
            committed = consumer.committed_offset(tp)
            processed = runtime.handler.processed.get((tp.topic, tp.partition))
            highwater = consumer.highwater(tp)
            # Unknown for a moment after a rebalance: report nothing rather than guess.
            if highwater is not None:
                lag[name] = partition_lag(highwater, committed, processed, generation)
            problem = commit_problem(committed, consumer.first_acked(tp), processed, generation)
            if problem is not None and problem.kind == "stalled":
                stalls[name] = problem.offsets
            watched.add(name)
            # Two ticks running: not just the moment after a rebalance.
            if commit_watch.observe(name, problem) == 2 and problem is not None:
                log.warning("partition %s: offset commits stopped at %s: %s", tp.partition,
                            problem.committed, _PROBLEMS[problem.kind] % problem.offsets)
        commit_watch.forget_others(watched)
    except Exception as exc:  # a metric must never take the worker down
        log.warning("consumer lag not measured: %r", exc)
        return
    runtime.metrics.consumer_lag = lag
    runtime.metrics.commit_stalls = stalls
    try:  # this worker's partitions' online figures, for /metrics
        runtime.metrics.online = add_up([decode_partition_metrics(value) for db in
                                         active_partition_dbs(online_metrics).values()
                                         for key, value in db.items()
                                         if key.startswith(b"partition-")])
    except Exception as exc:  # a metric must never take the worker down
        log.warning("online metrics not read: %r", exc)
    if not app.rebalancing and commit_watch.should_repair():
        commit_watch.repaired()
        runtime.metrics.commit_repairs += 1
        log.warning("rejoining the consumer group so that every partition resumes from its "
                    "committed offset (the stretch after it is processed again)")
        try:  # bounded: the lag timer must keep ticking whatever the consumer thread does
            await asyncio.wait_for(consumer.rejoin_group(), timeout=LAG_TICK_S)
        except Exception as exc:
            log.error("could not rejoin the consumer group: %r", exc)


@app.task
async def follow_catalog() -> None:
    """Keep this worker's copy of the catalog current (every worker reads all of it)."""
    await tail_topic(settings, settings.items_topic, runtime.apply_catalog_record,
                     from_beginning=True, caught_up=runtime.catalog_ready)


@app.task
async def follow_experiments() -> None:
    """Keep this worker's experiments current (every worker reads all of them)."""

    def no_topic_yet() -> None:
        # A cluster without the topic runs no experiment: serve meanwhile, follow it later.
        if not runtime.experiments_ready.is_set():
            log.warning("topic %s not read within %.0f s: serving without experiments until "
                        "it is", settings.experiments_topic, EXPERIMENTS_WAIT_S)
            runtime.experiments_ready.set()

    async def on_record(record: ConsumerRecord) -> None:
        runtime.apply_experiment_record(record)
        await runtime.model_checked.wait()  # arms' models after the main one
        async with arm_models_lock:
            await serve_arm_models(runtime)

    asyncio.get_running_loop().call_later(EXPERIMENTS_WAIT_S, no_topic_yet)
    await tail_topic(settings, settings.experiments_topic, on_record,
                     from_beginning=True, caught_up=runtime.experiments_ready)


arm_models_lock = asyncio.Lock()


EXPERIMENTS_WAIT_S = 15.0


@app.timer(interval=settings.bandit_interval_s, on_leader=True)
async def step_thompson_experiments() -> None:
    """Re-weight running Thompson experiments from all partitions' online figures
    (``stream_rec.worker.bandit``); the leader alone publishes."""
    experiments = runtime.handler.experiments
    if not any(e.allocation == "thompson" and e.running for e in experiments.values()):
        return
    try:
        published = await asyncio.to_thread(step_bandits, settings, experiments)
    except Exception as exc:  # the bandit must never take the worker down; next tick retries
        runtime.handler.errors.report(exc, "the bandit step")
        return
    runtime.metrics.bandit_steps += len(published)


sweeper = Sweeper(keep_ms=settings.state_expiry_days * 86_400_000)


@app.timer(interval=SWEEP_INTERVAL_S)
async def expire_inactive_shoppers() -> None:
    """One step of the expiry sweep (``stream_rec.worker.expiry``): tombstones, like a forget."""
    if sweeper.keep_ms <= 0 or not runtime.ready or app.rebalancing or app.in_recovery:
        return
    try:
        expired = sweeper.step(active_partition_dbs(user_state), time.time() * 1000)
        if expired:
            tombstones: list[Change] = [(partition, key, None) for partition, key in expired]
            await table_writer.write([(user_state, tombstones), (latest_recs, tombstones)])
    except Exception as exc:  # expiry must never take the worker down; it retries next tick
        runtime.handler.errors.report(exc, "the expiry sweep")
        return
    runtime.metrics.states_expired += len(expired)
