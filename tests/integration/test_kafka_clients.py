"""Both Kafka client libraries against the real local broker: topics, ordering, offsets."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

pytestmark = pytest.mark.integration

N_MESSAGES = 300
PARTITIONS = 3


def _create(broker: str, topic: str, partitions: int = PARTITIONS) -> None:
    admin = KafkaAdminClient(bootstrap_servers=broker)
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
        described = admin.describe_topics([topic])
    finally:
        admin.close()
    assert len(described[0]["partitions"]) == partitions


def _messages() -> list[tuple[bytes, bytes]]:
    return [(f"user-{i % 7}".encode(), f"{i}".encode()) for i in range(N_MESSAGES)]


def _assert_once_and_in_order(received: list[tuple[int, bytes, bytes]]) -> None:
    """Every message arrived exactly once; per partition, in the order it was sent."""
    values = [int(v) for _, _, v in received]
    assert sorted(values) == list(range(N_MESSAGES))
    per_partition: dict[int, list[int]] = defaultdict(list)
    for partition, _, value in received:
        per_partition[partition].append(int(value))
    for sequence in per_partition.values():
        assert sequence == sorted(sequence)
    # one key always lands on one partition
    key_partitions: dict[bytes, set[int]] = defaultdict(set)
    for partition, key, _ in received:
        key_partitions[key].add(partition)
    assert all(len(p) == 1 for p in key_partitions.values())


def test_admin_creates_topic(broker: str, new_topic) -> None:
    topic = new_topic("admin")
    _create(broker, topic)
    admin = KafkaAdminClient(bootstrap_servers=broker)
    try:
        assert topic in admin.list_topics()
    finally:
        admin.close()


def test_kafka_python_round_trip_with_committed_offsets(broker: str, new_topic) -> None:
    topic = new_topic("kp")
    _create(broker, topic)
    producer = KafkaProducer(bootstrap_servers=broker, acks="all", linger_ms=5)
    for key, value in _messages():
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()

    group = topic + ".group"
    consumer = KafkaConsumer(topic, bootstrap_servers=broker, group_id=group,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=10_000)
    received = []
    for message in consumer:
        received.append((message.partition, message.key, message.value))
        if len(received) == N_MESSAGES:
            break
    consumer.commit()
    committed = sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in range(PARTITIONS))
    consumer.close()
    _assert_once_and_in_order(received)
    assert committed == N_MESSAGES

    # A new consumer in the same group resumes after the committed offsets: nothing is re-read.
    again = KafkaConsumer(topic, bootstrap_servers=broker, group_id=group,
                          auto_offset_reset="earliest", consumer_timeout_ms=3_000)
    assert list(again) == []
    again.close()


def test_aiokafka_round_trip(broker: str, new_topic) -> None:
    topic = new_topic("aio")
    _create(broker, topic)

    async def run() -> list[tuple[int, bytes, bytes]]:
        producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all")
        await producer.start()
        try:
            for key, value in _messages():
                await producer.send(topic, key=key, value=value)
            await producer.flush()
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=broker, group_id=topic + ".g",
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        received: list[tuple[int, bytes, bytes]] = []
        try:
            async with asyncio.timeout(30):
                while len(received) < N_MESSAGES:
                    batch = await consumer.getmany(timeout_ms=1000)
                    for tp, records in batch.items():
                        received.extend((tp.partition, r.key, r.value) for r in records)
            await consumer.commit()
        finally:
            await consumer.stop()
        return received

    _assert_once_and_in_order(asyncio.run(run()))


def test_transactions_commit_and_abort(broker: str, new_topic) -> None:
    """Transactional writes (used by Faust's exactly_once mode): only committed data is read."""
    topic = new_topic("tx")
    _create(broker, topic, partitions=1)

    async def run() -> list[bytes]:
        producer = AIOKafkaProducer(bootstrap_servers=broker, transactional_id=topic + ".tx")
        await producer.start()
        try:
            async with producer.transaction():
                await producer.send_and_wait(topic, b"committed")
            await producer.begin_transaction()
            await producer.send_and_wait(topic, b"aborted")
            await producer.abort_transaction()
            async with producer.transaction():
                await producer.send_and_wait(topic, b"committed-2")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=broker, auto_offset_reset="earliest",
                                    isolation_level="read_committed")
        await consumer.start()
        values: list[bytes] = []
        try:
            async with asyncio.timeout(30):
                while len(values) < 2:
                    batch = await consumer.getmany(timeout_ms=1000)
                    values.extend(r.value for records in batch.values() for r in records)
        finally:
            await consumer.stop()
        return values

    assert asyncio.run(run()) == [b"committed", b"committed-2"]
