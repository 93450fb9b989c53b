"""The event agent: validate, update shopper state, recommend, publish; plus the feeds.

Events arrive keyed by user_id, so one shopper's events stay on one partition, in order, and
the ``user-state`` table (RocksDB, changelog-backed) is co-partitioned with them. A batch from
``stream.take_events`` is scored together; the table is read and written with each event's own
message as Faust's "current event", because Faust picks the RocksDB partition and the changelog
partition of a table write from the current event (a batch mixes partitions).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from typing import Any, cast

import orjson
from aiokafka import ConsumerRecord
from faust import Stream, StreamT
from faust.types import EventT

from stream_rec.app import app, rocksdb_options, settings
from stream_rec.core.events import ForgetUser, InvalidEvent, parse_message
from stream_rec.core.state import (
    UserState,
    already_applied,
    is_duplicate,
    record_shown,
)
from stream_rec.core.state_codec import StateDecodeError, decode_state, encode_state
from stream_rec.errors import UNDELIVERED_EXIT_STATUS
from stream_rec.heap import settle
from stream_rec.serving.recommender import RecList, RecRequest
from stream_rec.worker.commit_watch import CommitWatch, commit_problem
from stream_rec.worker.faust_compat import RewindingConsumer, acting_for
from stream_rec.worker.feeds import tail_topic
from stream_rec.worker.metrics import partition_lag, redelivered, skipped_offsets
from stream_rec.worker.models import ModelRefused, announced_version, swap_to
from stream_rec.worker.runtime import WorkerRuntime

log = logging.getLogger(__name__)
runtime = WorkerRuntime(settings)

events_topic = app.topic(settings.events_topic, key_serializer="raw", value_serializer="raw",
                         partitions=settings.partitions)
dlq_topic = app.topic(settings.dlq_topic, key_serializer="raw", value_serializer="raw")

user_state = app.Table("user-state", key_type=bytes, value_type=bytes,
                       partitions=settings.partitions, options=rocksdb_options(settings),
                       help="Shopper state (UserState, see stream_rec.core.state_codec).")
latest_recs = app.Table("latest-recs", key_type=bytes, value_type=bytes,
                        partitions=settings.partitions, options=rocksdb_options(settings),
                        help="The last recommendation message per shopper (JSON).")


def dead_letter(reason: str, message: Any) -> bytes:
    """The DLQ record: why, the raw bytes (base64) and where the message came from."""
    value = message.value
    raw = None if value is None else bytes(value) if isinstance(value, bytes | bytearray) \
        else str(value).encode()
    return json.dumps({
        "reason": reason,
        "raw_base64": None if raw is None else base64.b64encode(raw).decode("ascii"),
        "key_base64": None if message.key is None else
        base64.b64encode(bytes(message.key)).decode("ascii"),
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "timestamp_ms": None if message.timestamp is None else round(message.timestamp * 1000),
    }).encode()


def _read_state(key: bytes) -> UserState:
    try:
        return decode_state(user_state.get(key))
    except StateDecodeError as exc:
        # A corrupt record must not stop the partition: start the shopper afresh, loudly.
        log.error("user state for %r unreadable (%s); starting from empty", key[:80], exc)
        return UserState()


@app.agent(events_topic)
async def process_events(stream: StreamT) -> None:
    await runtime.catalog_ready.wait()  # never recommend before knowing what is delisted
    await runtime.model_checked.wait()  # nor serve fallback lists while a model is loading
    assert isinstance(stream, Stream)  # take_events lives on the concrete class
    if settings.gc_freeze:
        settle("startup")
    async for batch in stream.take_events(settings.batch_max_events,
                                          within=settings.batch_wait_ms / 1000.0):
        await handle_batch(batch)


async def handle_batch(batch: Sequence[EventT]) -> None:
    """One ``take_events`` batch: every valid event gets exactly one list, in order."""
    metrics, clock = runtime.metrics, runtime.metrics.stages
    consumer = cast(RewindingConsumer, app.consumer)
    taken_ms = time.time() * 1000
    recommender = runtime.recommender
    states: dict[bytes, UserState] = {}
    owner: dict[bytes, EventT] = {}  # the last message of each shopper in this batch
    forgotten: dict[bytes, int] = {}  # shopper -> number of requests queued before the request
    requests: list[RecRequest] = []
    fresh: list[bool] = []
    for message_event in batch:
        message = message_event.message
        generation = message.generation_id or 0
        last = runtime.processed.get(message.partition)
        if redelivered(message.offset, generation, last):
            metrics.events_redelivered += 1
            continue
        metrics.events_in += 1
        if last != (generation, message.offset - 1) and (skipped := skipped_offsets(
                message.offset, generation, last, consumer.committed_offset(message.tp))):
            # Transactional producers leave one offset per commit marker; anything else means
            # the consumer dropped events (docs/operations.md, Failure cases found and fixed).
            metrics.offsets_skipped += skipped
            log.warning("partition %s: %d offset(s) before %d never reached this worker",
                        message.partition, skipped, message.offset)
        runtime.processed[message.partition] = (generation, message.offset)
        with clock.stage("decode_validate"):
            try:
                parsed = parse_message(message.value, settings.max_event_bytes)
            except InvalidEvent as exc:
                parsed = None
                reason = exc.reason
        if parsed is None:
            metrics.dlq += 1
            await dlq_topic.send(key=message.key, value=dead_letter(reason, message))
            continue
        key = parsed.user_id.encode()
        if isinstance(parsed, ForgetUser):
            metrics.forget_requests += 1
            states[key], owner[key] = UserState(), message_event
            forgotten[key] = len(requests)
            log.info("forgetting user %r (request %s)", parsed.user_id, parsed.request_id)
            continue
        metrics.events_valid += 1
        with clock.stage("state"):
            if key not in states:
                with acting_for(message_event):
                    states[key] = _read_state(key)
            state = states[key]
            duplicate = (already_applied(state, message.partition, message.offset)
                         or is_duplicate(state, parsed.event_id))
            if duplicate:
                metrics.events_duplicate += 1
            else:
                state = recommender.observe(state, parsed, runtime.limits,
                                            (message.partition, message.offset))
            states[key], owner[key] = state, message_event
        requests.append(RecRequest(parsed.user_id, parsed.event_id, state, taken_ms))
        fresh.append(not duplicate)
    lists = await runtime.recommend(requests, clock)
    with clock.stage("state"):
        for rec, is_fresh in zip(lists, fresh, strict=True):
            key = rec.user_id.encode()
            if is_fresh:  # a re-delivered event gets its list again but changes no state
                states[key] = record_shown(states[key], (i.item_id for i in rec.items),
                                           runtime.limits)
        for key, state in states.items():
            with acting_for(owner[key]):
                if key in forgotten and state == UserState():
                    # Tombstones: the changelog (and so every standby) forgets too.
                    user_state.pop(key, None)
                    latest_recs.pop(key, None)
                else:
                    user_state[key] = encode_state(state)
    with clock.stage("encode_produce"):
        await publish(lists, owner, forgotten)
    clock.count(len(requests))
    metrics.batches += 1


async def publish(lists: Sequence[RecList], owner: dict[bytes, EventT],
                  forgotten: dict[bytes, int]) -> None:
    """Send every list; keep each shopper's last one in ``latest-recs``.

    Lists go straight to the producer (the table changelog goes through Faust as usual):
    Faust's per-message topic machinery and sensors cost more than the list itself. Faust
    flushes this producer before it commits offsets, so a list is on the broker before the
    event that caused it counts as processed (at-least-once is kept).
    """
    producer = app.producer
    metrics = runtime.metrics
    topic = settings.recommendations_topic
    latest: dict[bytes, bytes] = {}
    for n, rec in enumerate(lists):
        value = orjson.dumps(rec.to_dict())
        key = rec.user_id.encode()
        # A list made before a forget request is still delivered, but not kept.
        if n >= forgotten.get(key, -1):
            latest[key] = value
        delivery = await producer.send(topic, key, value, None, None, None)
        cast(asyncio.Future, delivery).add_done_callback(_on_delivery)
        metrics.recommendations_out += 1
        metrics.fallback_lists += rec.fallback
        metrics.latency_ms.observe(rec.latency_ms)
    for key, value in latest.items():  # one table write per shopper and batch
        with acting_for(owner[key]):
            latest_recs[key] = value


def _on_delivery(delivery: asyncio.Future) -> None:
    """Stop the process at once when a list is lost, before its event's offset is committed.

    The event was acked when its batch ended, so Faust's next commit would cover it. That
    commit first flushes the producer, and the flush ends only after this callback has run (both
    wake on the same delivery, this one first), so exiting here leaves the offset uncommitted:
    the restarted worker processes the event again and sends its list (at-least-once).
    """
    if delivery.cancelled() or delivery.exception() is None:
        return
    runtime.metrics.produce_failed += 1
    log.critical("a recommendation could not be delivered (%r); stopping before its event's "
                 "offset is committed: restart the worker to serve it again", delivery.exception())
    logging.shutdown()  # flush the log handlers: os._exit skips them
    os._exit(UNDELIVERED_EXIT_STATUS)


@app.task
async def follow_models() -> None:
    """Serve the registry's current model, then every version announced on model-updates."""
    one_at_a_time = asyncio.Lock()  # swaps land in announcement order

    async def on_announcement(record: ConsumerRecord) -> None:
        try:
            version = announced_version(record)
        except ModelRefused as exc:
            runtime.metrics.model_rejected += 1
            log.error("%s", exc)
            return
        async with one_at_a_time:
            if version != runtime.metrics.model_version:
                await swap_to(runtime, version)

    # Listen first, then read the registry pointer: no announcement can fall in between.
    listening = asyncio.Event()
    tail = asyncio.ensure_future(tail_topic(settings, settings.model_updates_topic,
                                            on_announcement, from_beginning=False,
                                            caught_up=listening))
    await listening.wait()
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
            processed = runtime.processed.get(tp.partition)
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
