"""The worker's local state folder checked against its broker before Faust starts, or reset.

``check_local_state`` reads how far each local table partition got (the changelog offset
Faust keeps in every RocksDB partition) and the id of the Kafka cluster the folder was last
used with, asks the broker for its cluster id and the changelogs' end offsets, and lets
``state_guard`` decide. ``reset_local_state`` is `stream-rec worker --reset-state`.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from stream_rec.config import Settings
from stream_rec.connection import kafka_python_config
from stream_rec.worker.state_guard import (
    Applied,
    TablePartition,
    changelog_sizes,
    changelog_topic,
    mismatch_message,
    state_mismatch,
    table_partitions,
)

log = logging.getLogger(__name__)

# Faust keeps tables in <datadir>/v<app version>/<tabledir>; stream-rec leaves the version at
# 1 and the table folder at "tables" (tests/unit/test_state_folder.py checks it with Faust).
TABLES_SUBDIR = Path("v1", "tables")
CLUSTER_FILE = "kafka-cluster-id"
# The key under which Faust's RocksDB store keeps a partition's applied changelog offset.
OFFSET_KEY = b"__faust\x00offset__"


def tables_dir(settings: Settings) -> Path:
    """The folder of the worker's RocksDB tables inside its state folder."""
    return Path(settings.state_dir).expanduser() / TABLES_SUBDIR


def persisted_offsets(tables: Path) -> dict[TablePartition, int]:
    """The changelog offset each local table partition has applied (partitions without one,
    or that cannot be opened, are left to Faust)."""
    from rocksdict import AccessType, Options, Rdict

    found: dict[TablePartition, int] = {}
    names = [p.name for p in tables.iterdir() if p.is_dir()] if tables.is_dir() else []
    for partition, name in table_partitions(names).items():
        try:
            # Read-only: takes no lock, so this works beside a running worker too.
            db = Rdict(str(tables / name), options=Options(raw_mode=True),
                       access_type=AccessType.read_only())
            try:
                raw = db.get(OFFSET_KEY)
            finally:
                db.close()
            if raw is not None:
                found[partition] = int(bytes(raw))
        except Exception as exc:  # rocksdict raises plain Exception for I/O errors
            log.warning("could not read the applied offset of %s: %s", tables / name, exc)
    return found


@dataclass
class BrokerView:
    """The broker's cluster id and the first and end offsets of the partitions asked about."""

    cluster_id: str
    begins: dict[tuple[str, int], int] = field(default_factory=dict)
    ends: dict[tuple[str, int], int] = field(default_factory=dict)


def broker_view(settings: Settings, topics: Iterable[str]) -> BrokerView:
    """The broker's cluster id and the offset range of each partition of ``topics`` that
    exists; waits for the broker to answer, as Faust would."""
    delay = 1.0
    while True:
        try:
            return _ask_broker(settings, sorted(set(topics)))
        except KafkaError as exc:
            if not exc.retriable:
                raise
            log.warning("waiting for the broker at %s to check the local state against it "
                        "(%s)", settings.broker, exc)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


@contextmanager
def _quiet_kafka() -> Iterator[None]:
    """kafka-python logs every connection at INFO: some forty lines for this one look."""
    kafka_log = logging.getLogger("kafka")
    level = kafka_log.level
    kafka_log.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        kafka_log.setLevel(level)


def _ask_broker(settings: Settings, topics: list[str]) -> BrokerView:
    with _quiet_kafka():
        return _ask_broker_quietly(settings, topics)


def _ask_broker_quietly(settings: Settings, topics: list[str]) -> BrokerView:
    admin = KafkaAdminClient(**kafka_python_config(settings))
    try:
        view = BrokerView(str(admin.describe_cluster()["cluster_id"]))
        # Only topics that exist: a metadata request for a missing one could create it, with
        # the wrong partition count, before Faust creates the changelog properly.
        existing = set(admin.list_topics())
    finally:
        admin.close()
    wanted = [t for t in topics if t in existing]
    if not wanted:
        return view
    consumer = KafkaConsumer(**kafka_python_config(settings), group_id=None,
                             enable_auto_commit=False)
    try:
        tps = [TopicPartition(t, p) for t in wanted for p in consumer.partitions_for_topic(t) or ()]
        view.begins = {(tp.topic, tp.partition): o for tp, o in
                       consumer.beginning_offsets(tps).items()}
        view.ends = {(tp.topic, tp.partition): o for tp, o in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()
    return view


def saved_cluster(settings: Settings) -> str | None:
    """The id of the Kafka cluster this state folder was last used with (None: unknown)."""
    try:
        text = (Path(settings.state_dir).expanduser() / CLUSTER_FILE).read_text().strip()
    except OSError:
        return None
    return text or None


def remember_cluster(settings: Settings, cluster_id: str) -> None:
    """Record the broker's cluster id in the state folder (a warning if it cannot)."""
    folder = Path(settings.state_dir).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CLUSTER_FILE).write_text(cluster_id + "\n")
    except OSError as exc:  # the check still works on offsets alone
        log.warning("could not record the Kafka cluster id in %s: %s", folder, exc)


def check_local_state(settings: Settings) -> str | None:
    """None when the local state can be restored from the broker (the folder then records
    the broker's cluster id), else the one line to stop with."""
    tables = tables_dir(settings)
    offsets = persisted_offsets(tables)
    view = broker_view(settings, {changelog_topic(settings.app_id, p.table) for p in offsets})
    applied = []
    for part, persisted in offsets.items():
        topic = changelog_topic(settings.app_id, part.table)
        applied.append(Applied(topic, part.partition, persisted,
                               view.ends.get((topic, part.partition), 0)))
    cause = state_mismatch(saved_cluster(settings), view.cluster_id, applied)
    if cause is not None:
        return mismatch_message(tables, cause)
    remember_cluster(settings, view.cluster_id)
    return None


def reset_local_state(settings: Settings) -> str:
    """Discard the local tables (`--reset-state`); the line that says what is lost."""
    tables = tables_dir(settings)
    names = [p.name for p in tables.iterdir()] if tables.is_dir() else []
    partitions = table_partitions(names)
    topics = sorted({changelog_topic(settings.app_id, p.table) for p in partitions})
    view = broker_view(settings, topics)
    shutil.rmtree(tables, ignore_errors=True)
    remember_cluster(settings, view.cluster_id)
    if not partitions:
        return f"--reset-state: no local state in {tables}; the worker starts from the changelogs"
    ranges: dict[str, list[tuple[int, int]]] = {t: [] for t in topics}
    for (topic, partition), end in view.ends.items():
        ranges[topic].append((view.begins.get((topic, partition), 0), end))
    sizes = changelog_sizes(ranges)
    held = ", ".join(f"{t} up to {n} message(s)" for t, n in sizes.items())
    return (f"--reset-state: discarded the local state in {tables} ({len(partitions)} table "
            f"partition(s)); rebuilding it from the changelog topics ({held}): shopper state "
            "and latest lists that only the local state held are lost, and those shoppers "
            "start afresh")
