"""Create the topics stream-rec reads and writes, with the layout each one needs; read the
latest records of a compacted one; read and write experiment definitions."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from stream_rec.config import Settings
from stream_rec.connection import kafka_python_config
from stream_rec.core.events import InvalidEvent
from stream_rec.core.experiments import Experiment, parse_experiment
from stream_rec.worker.state_guard import WORKER_TABLES, changelog_topic

log = logging.getLogger(__name__)
T = TypeVar("T")


def topic_specs(settings: Settings) -> list[NewTopic]:
    """Events and recommendations are keyed by user and share a partition count (co-partitioned
    with the user-state table); the catalog is compacted so it always holds the latest item."""
    rf = settings.replication_factor
    return [
        NewTopic(settings.events_topic, settings.partitions, rf),
        NewTopic(settings.recommendations_topic, settings.partitions, rf),
        NewTopic(settings.dlq_topic, 1, rf),
        NewTopic(settings.items_topic, 1, rf, topic_configs={"cleanup.policy": "compact"}),
        NewTopic(settings.model_updates_topic, 1, rf),
        NewTopic(settings.experiments_topic, 1, rf, topic_configs={"cleanup.policy": "compact"}),
    ]


def ensure_topics(settings: Settings) -> list[str]:
    """Create missing topics, the worker's tables' changelogs included; return the names
    created (existing ones are left alone)."""
    admin = KafkaAdminClient(**kafka_python_config(settings))
    try:
        return _create_missing(admin, [*topic_specs(settings), *changelog_specs(settings)])
    finally:
        admin.close()


def _create_missing(admin: KafkaAdminClient, specs: list[NewTopic],
                    tolerate: bool = False) -> list[str]:
    """Create the topics of ``specs`` the cluster lacks; the names created. With
    ``tolerate``, a topic the broker refuses (no CREATE permission) is logged and skipped."""
    existing = set(admin.list_topics())
    created: list[str] = []
    for topic in (t for t in specs if t.name not in existing):
        try:
            admin.create_topics([topic])
            created.append(topic.name)
        except TopicAlreadyExistsError:  # another process won the race
            pass
        except KafkaError as exc:
            if not tolerate:
                raise
            log.warning("could not create topic %s (%s): leaving it to Faust", topic.name, exc)
    if created:
        log.info("created topics: %s", ", ".join(created))
    return created


def changelog_specs(settings: Settings) -> list[NewTopic]:
    """The changelog topics of the worker's tables, laid out as Faust would create them."""
    return [NewTopic(changelog_topic(settings.app_id, table), settings.partitions,
                     settings.replication_factor, topic_configs={"cleanup.policy": "compact"})
            for table in WORKER_TABLES]


def prepare_worker_topics(settings: Settings, timeout_s: float = 120.0) -> list[str]:
    """Create the topics a worker reads and writes, its tables' changelogs included, and
    return (the names created) once the broker's metadata lists each one created with all
    its partitions.

    Why not leave the changelogs to Faust: it creates them while it starts, and on a busy
    broker the consumer group's first assignment can come before a new topic is in the
    cluster metadata. The assignment then skips it, the client does not look again for
    minutes, and every write to that table fails (Faust's ``PartitionsMismatch``: "the
    changelog topic has 0 partitions"): the worker stays up but makes no list. Created and
    visible beforehand, Faust finds them and creates nothing.
    """
    specs = [*topic_specs(settings), *changelog_specs(settings)]
    admin = KafkaAdminClient(**kafka_python_config(settings))
    try:
        existing = set(admin.list_topics())
        created = set(_create_missing(admin, specs, tolerate=True))
        # An existing topic laid out otherwise is `stream-rec topics list`'s to report.
        wanted = {t.name: t.num_partitions if t.name in created else 1 for t in specs
                  if t.name in created or t.name in existing}
        _wait_until_listed(admin, wanted, timeout_s)
        return sorted(created)
    finally:
        admin.close()


def wait_for_topics(settings: Settings, names: list[str], timeout_s: float = 30.0) -> None:
    """Block until the broker's metadata lists every topic in ``names``."""
    admin = KafkaAdminClient(**kafka_python_config(settings))
    try:
        _wait_until_listed(admin, dict.fromkeys(names, 1), timeout_s)
    finally:
        admin.close()


def _wait_until_listed(admin: KafkaAdminClient, wanted: dict[str, int],
                       timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while waiting := _not_listed(admin, wanted):
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics {', '.join(waiting)} are not in the broker's "
                               f"metadata after {timeout_s:.0f} s")
        time.sleep(0.2)


def _not_listed(admin: KafkaAdminClient, wanted: dict[str, int]) -> list[str]:
    """The topics whose metadata shows fewer partitions than ``wanted`` (none: missing)."""
    found = {t["name"]: len(t.get("partitions") or ())
             for t in admin.describe_topics(sorted(wanted)) if not t.get("error_code")}
    return sorted(name for name, n in wanted.items() if found.get(name, 0) < n)


def read_latest(settings: Settings, topic: str,
                transform: Callable[[bytes], T | None]) -> dict[bytes, T]:
    """The latest value of every key of a (compacted) topic, up to its end when called, each
    through ``transform`` (a key whose latest value is a tombstone, or transforms to None, is
    left out). Reads every partition from its first offset; for changelogs and definitions."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**kafka_python_config(settings), group_id=None,
                             enable_auto_commit=False)
    latest: dict[bytes, T] = {}
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return latest
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for records in consumer.poll(timeout_ms=1000, max_records=5000).values():
                for record in records:
                    if record.key is None or record.offset >= ends[TopicPartition(
                            record.topic, record.partition)]:
                        continue
                    value = None if record.value is None else transform(record.value)
                    if value is None:
                        latest.pop(record.key, None)
                    else:
                        latest[record.key] = value
    finally:
        consumer.close()
    return latest


def publish_experiment(settings: Settings, experiment: Experiment) -> None:
    """Write an experiment's definition (the topic keeps the latest per id)."""
    from kafka import KafkaProducer

    ensure_topics(settings)  # compacted, one partition
    producer = KafkaProducer(**kafka_python_config(settings), acks="all")
    try:
        producer.send(settings.experiments_topic, key=experiment.id.encode(),
                      value=json.dumps(experiment.to_dict()).encode()).get(timeout=30)
    finally:
        producer.close()


def read_experiments(settings: Settings) -> dict[str, Experiment]:
    """Every experiment on the topic, as the workers see it (the latest record per id; one
    the workers would refuse is left out, as they leave it out)."""
    experiments: dict[str, Experiment] = {}
    for key, value in sorted(read_latest(settings, settings.experiments_topic,
                                         lambda v: v).items()):
        try:
            experiment_id = key.decode("utf-8")
            experiments[experiment_id] = parse_experiment(experiment_id, value)
        except (InvalidEvent, UnicodeDecodeError):
            continue
    return experiments
