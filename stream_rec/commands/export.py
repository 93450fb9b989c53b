"""`stream-rec export --out FILE`: every shopper's latest recommendation list, as JSON lines.

The lists come from the changelog topic of the worker's ``latest-recs`` table: the latest
record of each shopper, tombstones (forgotten or expired shoppers) left out. Each partition is
read twice, first for the offset of each key's latest record and then for those records, so
that memory holds keys, not lists.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson

from stream_rec.commands import _flags as f
from stream_rec.commands.topics import consumer_for, kafka_errors, read_between, require_partitions
from stream_rec.config import Settings, load_settings

if TYPE_CHECKING:
    from kafka import KafkaConsumer
    from kafka.consumer.fetcher import ConsumerRecord


def register(sub: Any, settings: Settings) -> None:
    """Add the ``export`` subcommand."""
    parser = f.add_command(
        sub, "export", "write every shopper's latest list as JSON lines",
        "One line per shopper who has a list: the recommendation message the worker last "
        "sent them, as published (schemas/recommendation.schema.json), read from the "
        "changelog topic of the worker's latest-recs table, so no worker needs to run. "
        "Forgotten and expired shoppers are left out. Prints the count on stderr.")
    parser.add_argument("--out", metavar=f.FILE, required=True,
                        help="the file to write (replaced only once it is complete); '-' "
                             "for stdout")
    f.add_broker(parser, settings)
    parser.set_defaults(func=run)


def latest_offsets(records: Iterable[tuple[bytes | None, bool, int]]) -> dict[bytes, int]:
    """Key -> offset of its latest record, for (key, is_tombstone, offset) in offset order;
    keys whose latest record is a tombstone (or that have no key) are left out."""
    latest: dict[bytes, int] = {}
    for key, tombstone, offset in records:
        if key is None:
            continue
        if tombstone:
            latest.pop(key, None)
        else:
            latest[key] = offset
    return latest


def export_lists(consumer: KafkaConsumer, topic: str, partitions: list[Any],
                 write: Callable[[bytes], object]) -> tuple[int, int]:
    """Write each key's latest list on ``topic`` as one JSON line; (written, unreadable)."""
    from stream_rec.serving.lists import without_pool

    written = unreadable = 0
    for tp in partitions:
        start = consumer.beginning_offsets([tp])[tp]
        end = consumer.end_offsets([tp])[tp]
        keep = latest_offsets((r.key, r.value is None, r.offset)
                              for r in read_between(consumer, {tp: (start, end)}))
        wanted = set(keep.values())
        if not wanted:
            continue
        record: ConsumerRecord
        for record in read_between(consumer, {tp: (start, max(wanted) + 1)}):
            if record.offset not in wanted:
                continue
            try:  # the message as published: the table keeps the candidate pool beside it
                doc = orjson.loads(without_pool(record.value))
            except orjson.JSONDecodeError:
                unreadable += 1
                continue
            if not isinstance(doc, dict):
                unreadable += 1
                continue
            write(orjson.dumps(doc) + b"\n")
            written += 1
    return written, unreadable


def run(args: argparse.Namespace) -> int:
    """Write the lists to --out (atomically) and say how many."""
    from stream_rec.worker.state_guard import changelog_topic

    settings = load_settings(broker=args.broker)
    topic = changelog_topic(settings.app_id, "latest-recs")
    with kafka_errors(settings):
        consumer = consumer_for(settings)
        try:
            tps = require_partitions(settings, consumer, topic,
                                     f"no worker of app {settings.app_id!r} has run there "
                                     "(STREAM_REC_APP_ID)")
            if args.out == "-":
                out = sys.stdout.buffer
                written, unreadable = export_lists(consumer, topic, tps, out.write)
                out.flush()
            else:
                with _replacing(Path(args.out)) as file:
                    written, unreadable = export_lists(consumer, topic, tps, file.write)
        finally:
            consumer.close()
    where = "stdout" if args.out == "-" else args.out
    print(f"wrote {written} list(s) to {where} from {topic}"
          + (f"; left out {unreadable} unreadable record(s)" if unreadable else ""),
          file=sys.stderr)
    return 0


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[BinaryIO]:
    """A file next to ``path`` that replaces it once written whole (removed on failure)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
