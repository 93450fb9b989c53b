"""`stream-rec topics create|list`: the Kafka topics stream-rec needs, created or checked.

``create`` is ``stream_rec.topics.ensure_topics`` (what `stream-rec kafka start` and the
Kubernetes Job in deploy/k8s/topics-job.yaml run); ``list`` compares each topic's layout on the
cluster with the one stream-rec expects. The helpers at the end (Kafka errors as one line,
reading a stretch of partitions) are shared by the other operator commands (user, dlq, export).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from stream_rec.commands import _flags as f
from stream_rec.config import Settings, load_settings
from stream_rec.errors import UserError
from stream_rec.worker.state_guard import WORKER_TABLES

if TYPE_CHECKING:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.consumer.fetcher import ConsumerRecord

# Roles whose partition count must equal the events topic's: a shopper's list, state and
# latest list are written to the partition of their events.
CO_PARTITIONED = ("recommendations", *WORKER_TABLES)


def register(sub: Any, settings: Settings) -> None:
    """Add the ``topics`` subcommand."""
    parser = f.add_command(
        sub, "topics", "create or check the Kafka topics stream-rec needs",
        "'create' creates every topic stream-rec reads and writes that the cluster lacks, with "
        "the layout it needs (events, recommendations and the worker's table changelogs with "
        "STREAM_REC_PARTITIONS partitions, catalog, experiments and changelogs compacted), "
        "and leaves existing ones alone: it is "
        "what the Kubernetes Job deploy/k8s/topics-job.yaml runs. 'list' shows each topic as "
        "stream-rec expects it and as the cluster has it, and exits with 1 when one differs. "
        "SASL and SSL come from the STREAM_REC_SECURITY_PROTOCOL and STREAM_REC_SASL_* "
        "variables.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", title="actions",
                                    required=True)
    create = f.add_command(
        actions, "create", "create every missing topic, leave the others alone",
        "Prints the topics created and those already there. An existing topic is never "
        "changed, even when its layout differs: 'stream-rec topics list' shows that.")
    f.add_broker(create, settings)
    f.add_json(create)
    create.set_defaults(func=run_create)
    listing = f.add_command(
        actions, "list", "each topic's partitions, cleanup policy and replicas, expected and "
        "found",
        "Covers the topics 'create' makes, the worker's table changelogs among them (which "
        "the worker also creates when it starts: missing ones are noted, not failed). "
        "Flags a missing topic, a partition count other than STREAM_REC_PARTITIONS (events, "
        "recommendations and the changelogs must all have the same), a cleanup policy other "
        "than expected (a compacted events topic would keep only each shopper's last event) "
        "and fewer replicas than STREAM_REC_REPLICATION_FACTOR. Exit status 1 when anything "
        "is flagged.")
    f.add_broker(listing, settings)
    f.add_json(listing)
    listing.set_defaults(func=run_list)


def run_create(args: argparse.Namespace) -> int:
    """Create the missing topics and say which were created and which were there."""
    # Looked up when called, so that a test can stand in for the cluster.
    from stream_rec import topics

    settings = load_settings(broker=args.broker)
    with kafka_errors(settings):
        created = topics.ensure_topics(settings)
    specs = [*topics.topic_specs(settings), *topics.changelog_specs(settings)]
    there = [t.name for t in specs if t.name not in created]
    if args.json:
        print(json.dumps({"broker": settings.broker, "created": created, "existing": there}))
        return 0
    layout = {t.name: t for t in specs}
    for name in created:
        spec = layout[name]
        policy = (spec.topic_configs or {}).get("cleanup.policy", "delete")
        print(f"created {name} ({spec.num_partitions} partition(s), {policy})")
    if there:
        print(f"already there, left as they are: {', '.join(there)}")
    if not created:
        print("nothing to create: every topic exists (check their layout with "
              "'stream-rec topics list')")
    return 0


@dataclass(frozen=True)
class Layout:
    """A topic's partition count, cleanup policy and replication factor."""

    partitions: int
    cleanup_policy: str
    replicas: int


@dataclass(frozen=True)
class ExpectedTopic:
    """A topic stream-rec needs: its name, what it is for, who creates it, its layout."""

    name: str
    role: str
    created_by: str  # "topics create" or "worker"
    layout: Layout


@dataclass
class TopicCheck:
    """One topic as expected and as found, and what differs (empty: as expected)."""

    expected: ExpectedTopic
    found: Layout | None
    problems: list[str] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The check as JSON: name, role, created_by, expected, found, problems."""
        return {"name": self.expected.name, "role": self.expected.role,
                "created_by": self.expected.created_by,
                "expected": asdict(self.expected.layout),
                "found": None if self.found is None else asdict(self.found),
                "problems": self.problems, "note": self.note or None}


def expected_topics(settings: Settings) -> list[ExpectedTopic]:
    """Every topic stream-rec needs: the app's topics, then the changelogs of the worker's
    tables (the events topic's partition count, compacted), all of which ``ensure_topics``
    and a starting worker create when missing."""
    from stream_rec.topics import changelog_specs, topic_specs

    roles = {getattr(settings, name): name.removesuffix("_topic")
             for name in ("events_topic", "recommendations_topic", "dlq_topic", "items_topic",
                          "model_updates_topic", "experiments_topic")}
    out = [ExpectedTopic(t.name, roles.get(t.name, t.name), "topics create",
                         Layout(t.num_partitions,
                                (t.topic_configs or {}).get("cleanup.policy", "delete"),
                                t.replication_factor))
           for t in topic_specs(settings)]
    out += [ExpectedTopic(t.name, table, "worker",
                          Layout(t.num_partitions, "compact", t.replication_factor))
            for table, t in zip(WORKER_TABLES, changelog_specs(settings), strict=True)]
    return out


def check_topics(expected: list[ExpectedTopic], found: Mapping[str, Layout]
                 ) -> list[TopicCheck]:
    """Compare each expected topic with what the cluster has (pure)."""
    events = next((t for t in expected if t.role == "events"), None)
    events_found = found.get(events.name) if events is not None else None
    checks: list[TopicCheck] = []
    for topic in expected:
        have = found.get(topic.name)
        check = TopicCheck(topic, have)
        want = topic.layout
        if have is None:
            if topic.created_by == "worker":
                check.note = ("not created yet: the worker creates it when it starts "
                              "('stream-rec topics create' does too)")
            else:
                check.problems.append("missing: run 'stream-rec topics create'")
        else:
            if have.partitions != want.partitions:
                check.problems.append(f"{have.partitions} partition(s), expected "
                                      f"{want.partitions}")
            if (topic.role in CO_PARTITIONED and events_found is not None
                    and have.partitions != events_found.partitions):
                check.problems.append(f"{have.partitions} partition(s) but the events topic "
                                      f"has {events_found.partitions}")
            if have.cleanup_policy != want.cleanup_policy:
                check.problems.append(f"cleanup.policy {have.cleanup_policy}, expected "
                                      f"{want.cleanup_policy}")
            if have.replicas < want.replicas:
                check.problems.append(f"{have.replicas} replica(s), expected {want.replicas}")
        checks.append(check)
    return checks


def run_list(args: argparse.Namespace) -> int:
    """Print each topic as expected and as found; 1 when any differs."""
    settings = load_settings(broker=args.broker)
    expected = expected_topics(settings)
    with kafka_errors(settings):
        found = describe_topics(settings, [t.name for t in expected])
    checks = check_topics(expected, found)
    failed = any(c.problems for c in checks)
    if args.json:
        print(json.dumps({"broker": settings.broker, "ok": not failed,
                          "topics": [c.to_dict() for c in checks]}))
        return 1 if failed else 0
    print(format_checks(checks))
    return 1 if failed else 0


def format_checks(checks: list[TopicCheck]) -> str:
    """The checks as a table: found values, the expected ones in brackets where they differ."""

    def shown(found: Any, want: Any) -> str:
        return "-" if found is None else str(found) if found == want else f"{found} [{want}]"

    header = ("TOPIC", "ROLE", "PARTITIONS", "CLEANUP", "REPLICAS", "CHECK")
    rows = [header]
    for check in checks:
        want, have = check.expected.layout, check.found
        rows.append((check.expected.name, check.expected.role,
                     shown(have and have.partitions, want.partitions),
                     shown(have and have.cleanup_policy, want.cleanup_policy),
                     shown(have and have.replicas, want.replicas),
                     "; ".join(check.problems) or check.note or "ok"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  "
             + row[-1] for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def describe_topics(settings: Settings, names: list[str]) -> dict[str, Layout]:
    """The layout of each of ``names`` that exists on the cluster."""
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    from stream_rec.connection import kafka_python_config

    admin = KafkaAdminClient(**kafka_python_config(settings))
    try:
        # Only topics that exist: a metadata request for a missing one could create it, with
        # the broker's default layout, on a cluster that creates topics on first use.
        existing = set(admin.list_topics())
        present = [n for n in names if n in existing]
        if not present:
            return {}
        described = {t["name"]: t for t in admin.describe_topics(present)
                     if not t.get("error_code")}
        configs = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, configs=["cleanup.policy"])
             for name in described], config_filter="all").get("topic", {})
    finally:
        admin.close()
    out: dict[str, Layout] = {}
    for name, topic in described.items():
        partitions = topic.get("partitions") or []
        policy = configs.get(name, {}).get("cleanup.policy", {}).get("value") or "delete"
        replicas = min((len(p.get("replica_nodes") or []) for p in partitions), default=0)
        out[name] = Layout(len(partitions), str(policy), replicas)
    return out


# --- shared by the operator commands ------------------------------------------------------

@contextmanager
def kafka_errors(settings: Settings) -> Iterator[None]:
    """Turn kafka-python's errors into the one line a ``UserError`` prints."""
    from kafka.errors import KafkaError

    # kafka-python logs every failed connection attempt at ERROR; the one line below says it.
    # Left as it is with -v (the CLI then leaves the "kafka" logger at its default, NOTSET).
    kafka_log = logging.getLogger("kafka")
    level = kafka_log.level
    if level >= logging.WARNING:
        kafka_log.setLevel(logging.CRITICAL)
    try:
        yield
    except KafkaError as exc:
        if "bootstrap" in str(exc).lower():  # kafka-python 3: no broker answered at all
            raise UserError(f"cannot reach Kafka at {settings.broker} (set --broker or "
                            "STREAM_REC_BROKER)") from None
        raise UserError(f"Kafka at {settings.broker}: {type(exc).__name__}: {exc}") from None
    finally:
        kafka_log.setLevel(level)


def consumer_for(settings: Settings, group_id: str | None = None) -> KafkaConsumer:
    """A kafka-python consumer that commits nothing by itself (``group_id`` only to read and
    commit a checkpoint; it is never subscribed, so it never joins the group)."""
    from kafka import KafkaConsumer

    from stream_rec.connection import kafka_python_config

    # Reading never creates a topic, even on a cluster that creates topics on first use.
    return KafkaConsumer(**kafka_python_config(settings), group_id=group_id,
                         enable_auto_commit=False, allow_auto_create_topics=False)


def producer_for(settings: Settings) -> KafkaProducer:
    """A kafka-python producer that waits for every replica (``acks=all``) and never creates
    a topic by writing to it."""
    from kafka import KafkaProducer

    from stream_rec.connection import kafka_python_config

    return KafkaProducer(**kafka_python_config(settings), acks="all",
                         allow_auto_create_topics=False)


def require_partitions(settings: Settings, consumer: KafkaConsumer, topic: str,
                       missing: str = "") -> list[TopicPartition]:
    """The partitions of ``topic``; ``UserError`` (with ``missing`` as the cause) when the
    cluster has no such topic."""
    tps = topic_partitions(consumer, topic)
    if not tps:
        raise UserError(f"no topic {topic} on {settings.broker}"
                        + (f": {missing}" if missing else ""))
    return tps


def topic_partitions(consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
    """The partitions of ``topic``, in order; empty when the topic does not exist."""
    from kafka import TopicPartition

    return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]


def read_between(consumer: KafkaConsumer, ranges: Mapping[TopicPartition, tuple[int, int]],
                 stall_s: float = 60.0) -> Iterator[ConsumerRecord]:
    """Every record of each partition from its start offset up to (not including) its end
    offset, partition by partition in offset order. ``UserError`` when no progress is made
    for ``stall_s`` (a partition the broker stopped serving)."""
    pending = {tp: span for tp, span in ranges.items() if span[0] < span[1]}
    if not pending:
        return
    consumer.assign(list(pending))
    consumer.resume(*pending)  # an earlier read with this consumer may have paused them
    for tp, (start, _) in pending.items():
        consumer.seek(tp, start)
    last_progress = time.monotonic()
    while pending:
        for tp, records in consumer.poll(timeout_ms=500, max_records=5000).items():
            last_progress = time.monotonic()
            end = pending.get(tp, (0, -1))[1]
            for record in records:
                if record.offset < end:
                    yield record
        for tp in list(pending):
            if consumer.position(tp) >= pending[tp][1]:
                del pending[tp]
                consumer.pause(tp)  # read up to its end: fetch no more of it
        if pending and time.monotonic() - last_progress > stall_s:
            stuck = ", ".join(f"{tp.topic}[{tp.partition}] at {consumer.position(tp)}"
                              for tp in pending)
            raise UserError(f"reading stopped making progress: {stuck}")
