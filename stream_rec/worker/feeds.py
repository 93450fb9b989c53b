"""Topics every worker reads in full, outside the consumer group.

The catalog (compacted ``storefront.items``) and ``model-updates`` must reach *every* worker,
not one member of the group, so each worker tails them with its own aiokafka consumer on
manually assigned partitions. The compacted catalog topic is thereby the changelog of a global
table: each worker rebuilds it from offset 0 on start and keeps it current.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from stream_rec.config import Settings
from stream_rec.connection import kafka_python_config
from stream_rec.serving.error_log import OncePerInterval

log = logging.getLogger(__name__)

OnRecord = Callable[[ConsumerRecord], Awaitable[None] | None]


def aiokafka_config(settings: Settings) -> dict[str, object]:
    """kafka-python style settings translated for aiokafka (same names for what we use)."""
    config = kafka_python_config(settings)
    config["bootstrap_servers"] = settings.broker
    return config


async def tail_topic(settings: Settings, topic: str, on_record: OnRecord, *,
                     from_beginning: bool, caught_up: asyncio.Event | None = None) -> None:
    """Read ``topic`` (all partitions) forever; set ``caught_up`` once at the end offsets."""
    consumer = AIOKafkaConsumer(**aiokafka_config(settings), enable_auto_commit=False,
                                group_id=None)
    faults = OncePerInterval(60.0)
    await consumer.start()
    try:
        partitions = await _wait_for_partitions(consumer, topic)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
        targets = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if targets[tp] > 0} if from_beginning else set()
        if not pending and caught_up is not None:
            caught_up.set()
        while True:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                for record in records:
                    await _deliver(on_record, record, faults)
                if tp in pending and records[-1].offset + 1 >= targets[tp]:
                    pending.discard(tp)
            if pending:
                pending = {tp for tp in pending if await consumer.position(tp) < targets[tp]}
            if not pending and caught_up is not None and not caught_up.is_set():
                log.info("caught up with %s", topic)
                caught_up.set()
    finally:
        await consumer.stop()


async def _deliver(on_record: OnRecord, record: ConsumerRecord,
                   faults: OncePerInterval) -> None:
    """Hand one record to ``on_record``; an exception costs that record, never the feed.

    Every worker reads these topics in full at each start (the catalog from its first
    offset), so one record that stopped the feed would stop every worker, at every start.
    """
    try:
        result = on_record(record)
        if result is not None:
            await result
    except Exception as exc:
        log.error("%s[%s]@%s: record skipped after an error (%r)", record.topic,
                  record.partition, record.offset, exc, exc_info=faults.allow(type(exc)))


async def _wait_for_partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    """Partitions of ``topic``, waiting for it to exist (a fresh cluster may not have it)."""
    delay = 0.5
    while True:
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return set(partitions)
        await consumer._client.force_metadata_update()  # no public way to refresh one topic
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return set(partitions)
        log.info("waiting for topic %s to exist", topic)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)
