"""Helpers for tests that run real workers: isolated settings, producing, collecting."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from stream_rec.config import Settings, load_settings
from stream_rec.topics import ensure_topics
from tests.helpers import free_port


def isolated_settings(broker: str, new_topic: Callable[[str], str], tmp_path: Path,
                      **overrides: Any) -> Settings:
    """Settings whose topics, consumer group and state folder no other test shares."""
    defaults: dict[str, Any] = dict(
        broker=broker, app_id=new_topic("app"), events_topic=new_topic("events"),
        dlq_topic=new_topic("dlq"), items_topic=new_topic("items"),
        recommendations_topic=new_topic("recs"), model_updates_topic=new_topic("models"),
        experiments_topic=new_topic("experiments"),
        partitions=2, state_dir=str(tmp_path / "state"), registry_dir=str(tmp_path / "registry"),
        web_port=free_port(),
        # A killed worker's partitions move on after this, not after the default 30 s.
        session_timeout_s=8.0)
    settings = load_settings({}, **{**defaults, **overrides})
    ensure_topics(settings)
    return settings


def produce(broker: str, topic: str, messages: Iterable[tuple[bytes | None, bytes | None]]) -> int:
    producer = KafkaProducer(bootstrap_servers=broker, linger_ms=5, acks="all")
    count = 0
    for key, value in messages:
        producer.send(topic, key=key, value=value)
        count += 1
    producer.flush()
    producer.close()
    return count


def event_bytes(event: dict[str, Any]) -> tuple[bytes, bytes]:
    return str(event["user_id"]).encode(), json.dumps(event).encode()


class TopicReader:
    """Reads a topic from the beginning, keeping everything seen so far."""

    def __init__(self, broker: str, topic: str) -> None:
        self.consumer = KafkaConsumer(topic, bootstrap_servers=broker, group_id=None,
                                      auto_offset_reset="earliest", enable_auto_commit=False)
        self.values: list[dict[str, Any]] = []

    def poll(self) -> None:
        for records in self.consumer.poll(timeout_ms=500, max_records=5000).values():
            self.values.extend(json.loads(r.value) for r in records)

    def wait_for(self, done: Callable[[list[dict[str, Any]]], bool], timeout_s: float,
                 alive: Callable[[], None] = lambda: None) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while not done(self.values):
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met after {timeout_s} s "
                                   f"({len(self.values)} messages read)")
            alive()
            self.poll()
        return self.values

    def close(self) -> None:
        self.consumer.close()


def committed_offsets(broker: str, group: str, topic: str) -> tuple[dict[int, int], dict[int, int]]:
    """(``group``'s committed offset, end offset) per partition; 0 = never committed."""
    # Never subscribes, so it only reads the group's offsets and never joins the group.
    probe = KafkaConsumer(bootstrap_servers=broker, group_id=group, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in probe.partitions_for_topic(topic) or ()]
        ends = probe.end_offsets(partitions)
        return ({tp.partition: probe.committed(tp) or 0 for tp in partitions},
                {tp.partition: ends[tp] for tp in partitions})
    finally:
        probe.close()


def wait_committed(broker: str, group: str, topic: str, timeout_s: float) -> None:
    """Block until ``group`` has committed every message of ``topic`` (its end offsets).

    Seeing every event's list is not enough before reading a worker's state: after a crash the
    lists of a replayed stretch may already be on the broker (sent by the dead worker) while the
    new worker is still re-applying those events to the state it restored. A commit comes only
    after an event's state write and list are flushed, so committed = end means caught up.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        done, ends = committed_offsets(broker, group, topic)
        behind = {p: end - done[p] for p, end in ends.items() if done[p] < end}
        if ends and not behind:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"group {group} still behind on {topic} after {timeout_s} s: "
                               f"{behind}")
        time.sleep(0.5)
