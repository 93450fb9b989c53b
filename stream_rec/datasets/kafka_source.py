"""``kafka:TOPIC``: a bounded time window of the live event topic, read with kafka-python.

Events follow the contract in DESIGN.md (``stream_rec.core.events``); invalid messages are
counted and skipped, duplicates (same ``event_id``) kept once, and a forget-user request
removes that shopper's earlier events from the window. Item attributes come from the
compacted catalog topic when it exists. The most recent ``holdout_fraction`` of the window is
the test split.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any

from stream_rec.config import Settings
from stream_rec.connection import kafka_python_config
from stream_rec.core.catalog import parse_catalog_item
from stream_rec.core.events import Event, ForgetUser, Impression, InvalidEvent, parse_message
from stream_rec.datasets.event_files import SESSION_GAP_MS, split_on_gaps
from stream_rec.datasets.problems import Problems
from stream_rec.datasets.split import split_by_time
from stream_rec.datasets.types import Dataset, Interaction, Session
from stream_rec.errors import UserError

log = logging.getLogger("stream_rec.datasets")
MAX_EVENT_BYTES = 64 * 1024
POLL_MS = 1000


def read_kafka_window(topic: str, settings: Settings, window_ms: int,
                      holdout_fraction: float, now_ms: int | None = None,
                      items_topic: str | None = None) -> Dataset:
    """Events of ``topic`` with timestamps in [now - window, now], split by time."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    raw = _read_topic(topic, settings, start_ms=now - window_ms)
    problems = Problems(f"kafka:{topic}")
    seen: set[str] = set()
    events: list[Event] = []
    for where, value in raw:
        try:
            event = parse_message(value, MAX_EVENT_BYTES)
        except InvalidEvent as exc:
            problems.add(where, exc.reason)
            continue
        if isinstance(event, ForgetUser):
            # A shopper's messages share a partition, so everything read so far for this
            # shopper came before the request: drop it from training (privacy).
            events = [e for e in events if e.user_id != event.user_id]
            continue
        if isinstance(event, Impression):  # what was shown is no interaction to learn from
            continue
        if event.event_id in seen or not now - window_ms <= event.ts_ms <= now:
            continue
        seen.add(event.event_id)
        events.append(event)
    problems.report()
    if not events:
        raise UserError(f"no valid events on topic {topic!r} in the last {window_ms} ms "
                        f"(broker {settings.broker})")
    sessions = sessions_from_events(events)
    train, test = split_by_time(sessions, holdout_fraction)
    if not train:
        raise UserError(f"topic {topic!r}: too few events to hold some out for testing")
    items = _read_catalog(items_topic or settings.items_topic, settings)
    for event in events:  # a price seen on an event fills in for a catalog without one
        if event.price is not None:
            items.setdefault(event.item_id, {}).setdefault("price", f"{event.price:g}")
    return Dataset(name=f"kafka:{topic}", train=tuple(train), test=tuple(test), items=items)


def sessions_from_events(events: list[Event]) -> list[Session]:
    """Group by (user, session_id); without a session id, split on 30 minutes of silence."""
    groups: dict[tuple[str, str], list[Event]] = defaultdict(list)
    for event in events:
        groups[(event.user_id, event.session_id or "")].append(event)
    sessions: list[Session] = []
    for (user, session_id), group in groups.items():
        group.sort(key=lambda e: e.ts_ms)
        rows = [Interaction(e.item_id, e.type, e.ts_ms, e.user_id) for e in group]
        chunks = [rows] if session_id else list(split_on_gaps(rows))
        for n, chunk in enumerate(chunks):
            sessions.append(Session(session_id or f"{user}-{chunk[0].ts_ms}-{n}", user,
                                    tuple(chunk)))
    sessions.sort(key=lambda s: (s.events[0].ts_ms, s.session_id))
    return sessions


def _read_topic(topic: str, settings: Settings, start_ms: int | None
                ) -> list[tuple[str, bytes | None]]:
    """(partition@offset, value) of every message from ``start_ms`` (None: the beginning) to
    the end offsets seen when reading starts; nothing newer, so the read is bounded."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    try:
        consumer = KafkaConsumer(**kafka_python_config(settings), enable_auto_commit=False,
                                 group_id=None, consumer_timeout_ms=POLL_MS * 10)
    except KafkaError as exc:
        raise UserError(f"cannot reach Kafka at {settings.broker}: {exc}") from None
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            return []
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        end = consumer.end_offsets(tps)
        start: dict[Any, int] = {}
        if start_ms is None:
            start = consumer.beginning_offsets(tps)
        else:
            found = consumer.offsets_for_times({tp: max(0, start_ms) for tp in tps})
            start = {tp: (found[tp].offset if found.get(tp) else end[tp]) for tp in tps}
        for tp in tps:
            consumer.seek(tp, start[tp])
        out: list[tuple[str, bytes | None]] = []
        pending = {tp for tp in tps if start[tp] < end[tp]}
        while pending:
            batch = consumer.poll(timeout_ms=POLL_MS, max_records=10_000)
            if not batch:
                pending = {tp for tp in pending if consumer.position(tp) < end[tp]}
                continue
            for tp, records in batch.items():
                for record in records:
                    if record.offset < end[tp]:
                        key = record.key.decode("utf-8", "replace") if record.key else ""
                        out.append((f"{tp.partition}@{record.offset}|{key}", record.value))
                if consumer.position(tp) >= end[tp]:
                    pending.discard(tp)
        if len(out) > 100_000:
            log.info("read %d messages from %s", len(out), topic)
        return out
    finally:
        consumer.close()


def _read_catalog(topic: str, settings: Settings) -> dict[str, dict[str, str]]:
    """Latest entry per item of the compacted catalog topic; tombstones delist."""
    items: dict[str, dict[str, str]] = {}
    problems = Problems(f"kafka:{topic}")
    for where, value in _read_topic(topic, settings, start_ms=None):
        item_id = where.split("|", 1)[1]
        if not item_id:
            problems.add(where, "catalog message without a key")
            continue
        if value is None:
            items.pop(item_id, None)
            continue
        try:
            entry = parse_catalog_item(item_id, value)
        except InvalidEvent as exc:
            problems.add(where, exc.reason)
            continue
        attrs = dict(entry.attributes)
        if entry.category is not None:
            attrs["category"] = entry.category
        if entry.price is not None:
            attrs["price"] = f"{entry.price:g}"
        items[item_id] = attrs
    problems.report()
    return items


__all__ = ["SESSION_GAP_MS", "read_kafka_window", "sessions_from_events"]
