"""`stream-rec dlq tail|replay`: read the dead-letter topic, and re-drive what now passes.

A dead letter (``stream_rec.serving.dead_letter``, ``schemas/dead-letter.schema.json``) holds
the reason a message of the events topic was rejected, a prefix of its value and key (base64),
their full lengths and SHA-256, and where the message was read.

``replay`` sends back to the events topic every dead letter whose value is whole (not cut,
SHA-256 matching) and now passes the event contract (``parse_message``), keyed by the user_id
in the value, as the contract requires: a mis-keyed event is thus fixed by its replay (a key
other than the user_id is what the worker refused). It remembers what it has handled in the
consumer group ``<app_id>-dlq-replay``: offsets committed on the dead-letter topic once the
broker has every replayed message, and, past the committed offset, the offsets handled while
``--reason`` left earlier dead letters for later (in the commit's metadata). A repeat is
harmless anyway: the worker does not apply an event again whose event_id is among the
shopper's last 64 (it sends its list again).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import bisect
import hashlib
import json
import sys
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stream_rec.commands import _flags as f
from stream_rec.commands.topics import (
    consumer_for,
    kafka_errors,
    producer_for,
    read_between,
    require_partitions,
    topic_partitions,
)
from stream_rec.config import Settings, load_settings
from stream_rec.errors import UserError

if TYPE_CHECKING:
    from kafka import KafkaConsumer, TopicPartition
    from kafka.consumer.fetcher import ConsumerRecord

REPLAY_GROUP_SUFFIX = "-dlq-replay"
# The commit metadata that lists the offsets handled past the committed offset. Brokers keep at
# most offset.metadata.max.bytes (4096 by default) of it; ranges that do not fit are dropped,
# and their dead letters may be sent again by a later replay (harmless, see above).
METADATA_PREFIX = "replayed:"
MAX_METADATA_CHARS = 3000
PREVIEW_CHARS = 80

Ranges = list[tuple[int, int]]  # inclusive offset ranges, sorted, not overlapping


def register(sub: Any, settings: Settings) -> None:
    """Add the ``dlq`` subcommand."""
    parser = f.add_command(
        sub, "dlq", "read the dead-letter topic, or replay what now passes",
        "Every message of the events topic that breaks the event contract becomes one dead "
        "letter, with the reason (schemas/dead-letter.schema.json). 'tail' prints them, one "
        "line each; 'replay' sends back to the events topic those whose value now passes the "
        "contract (after the worker was upgraded, or when only the key was wrong), keyed by "
        "their user_id, once each.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", title="actions",
                                    required=True)
    tail = f.add_command(
        actions, "tail", "print dead letters, one line each",
        "Each line: the dead letter's offset, where the message was read "
        "(topic:partition:offset), its key, the reason and the start of its value. Reads "
        "from the first dead letter the topic still holds, or only the last --limit.")
    _add_reason(tail)
    tail.add_argument("--limit", metavar=f.N, type=f.count(1),
                      help="only the last N (matching) dead letters (default: all)")
    tail.add_argument("--follow", action="store_true",
                      help="then keep printing new dead letters as they come, until Ctrl-C")
    f.add_broker(tail, settings)
    f.add_json_lines(tail, "each dead letter, as stored, with its offset")
    tail.set_defaults(func=run_tail)
    replay = f.add_command(
        actions, "replay", "send back the dead letters that now pass the event contract",
        "For each dead letter not handled by an earlier replay: one whose value is whole "
        "and now passes the contract is sent to the events topic, keyed by the user_id in "
        "it (the key the contract requires: a mis-keyed event is fixed this way); one cut "
        "to fit the dead letter, or still invalid, stays, and is counted with its reason. "
        "Events of a shopper forgotten since (a forget-user request on the events topic "
        "after the dead letter) are never sent back: the command reads the events topic "
        "from the oldest such dead letter's time to check. The worker applies a replayed "
        "event after the shopper's later ones.",
        "Replay remembers what it has handled in the consumer group <app_id>-dlq-replay, "
        "committed once the broker has every message it sent: a second run sends nothing "
        "again. Dead letters --reason leaves out stay for a later replay. Should a replay "
        "send one again (--from-start, or a failure before the commit), no harm is done: "
        "the worker does not apply an event twice whose event_id is among the shopper's "
        "last 64. Validity is checked with STREAM_REC_MAX_EVENT_BYTES: run replay with the "
        "workers' environment.")
    _add_reason(replay)
    replay.add_argument("--dry-run", action="store_true",
                        help="say what would be sent, send nothing and remember nothing")
    replay.add_argument("--from-start", action="store_true",
                        help="consider every dead letter again, also those handled before")
    f.add_broker(replay, settings)
    f.add_json(replay, "the counts")
    replay.set_defaults(func=run_replay)


def _add_reason(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", metavar=f.TEXT,
                        help="only dead letters whose reason contains TEXT (any case)")


# --- the dead letter ------------------------------------------------------------------------

class BadDeadLetter(ValueError):
    """A record on the dead-letter topic that is not a dead letter stream-rec wrote."""


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter, decoded: the reason, the kept bytes, and where the message was read."""

    dlq_partition: int
    dlq_offset: int
    reason: str
    value: bytes | None  # the kept prefix of the rejected value (all of it unless truncated)
    value_bytes: int | None
    value_truncated: bool
    value_sha256: str | None
    key: bytes | None
    key_truncated: bool
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    record: dict[str, Any] = field(repr=False, compare=False)

    def source(self) -> str:
        """Where the rejected message was read: ``topic:partition:offset``."""
        return f"{self.topic}:{self.partition}:{self.offset}"

    def to_dict(self) -> dict[str, Any]:
        """The stored record, with the dead letter's own partition and offset in front."""
        return {"dlq_partition": self.dlq_partition, "dlq_offset": self.dlq_offset,
                **self.record}


def _bytes_field(doc: dict[str, Any], name: str) -> bytes | None:
    raw = doc.get(f"{name}_base64")
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise BadDeadLetter(f"{name}_base64 is not a string")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise BadDeadLetter(f"{name}_base64 is not base64") from None


def _int_field(doc: dict[str, Any], name: str, required: bool = True) -> int | None:
    value = doc.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise BadDeadLetter(f"{name} is not an integer")
    return int(value)


def decode_dead_letter(raw: bytes | None, dlq_partition: int = 0,
                       dlq_offset: int = 0) -> DeadLetter:
    """A dead-letter record's value, decoded; ``BadDeadLetter`` when it is not one."""
    if raw is None:
        raise BadDeadLetter("no value")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadDeadLetter(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadDeadLetter("not a JSON object")
    reason = doc.get("reason")
    topic = doc.get("topic")
    if not isinstance(reason, str) or not isinstance(topic, str):
        raise BadDeadLetter("no reason or topic")
    sha = doc.get("raw_sha256")
    return DeadLetter(
        dlq_partition=dlq_partition, dlq_offset=dlq_offset, reason=reason,
        value=_bytes_field(doc, "raw"), value_bytes=_int_field(doc, "raw_bytes", False),
        value_truncated=doc.get("raw_truncated") is True,
        value_sha256=sha if isinstance(sha, str) else None,
        key=_bytes_field(doc, "key"), key_truncated=doc.get("key_truncated") is True,
        topic=topic, partition=_int_field(doc, "partition") or 0,
        offset=_int_field(doc, "offset") or 0,
        timestamp_ms=_int_field(doc, "timestamp_ms", False), record=doc)


def matches(reason: str, text: str | None) -> bool:
    """Whether a dead letter's reason contains ``text`` (any case); no text matches all."""
    return not text or text.casefold() in reason.casefold()


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def preview(data: bytes | None, limit: int = PREVIEW_CHARS) -> str:
    """The start of a value or key, readable: text when it is UTF-8, else base64."""
    if data is None:
        return "(none)"
    try:
        text = _printable(data.decode("utf-8"))
    except UnicodeDecodeError:
        text = "base64:" + base64.b64encode(data[:limit]).decode("ascii")
    return text if len(text) <= limit else text[:limit] + "..."


def format_line(letter: DeadLetter) -> str:
    """One dead letter as one line: offset, source, key, reason, the start of its value."""
    where = (str(letter.dlq_offset) if letter.dlq_partition == 0
             else f"{letter.dlq_partition}:{letter.dlq_offset}")
    value = preview(letter.value)
    if letter.value_truncated:
        value += f" (cut: {letter.value_bytes} bytes in all)"
    return (f"{where}  {letter.source()}  key={preview(letter.key, 40)}  "
            f"{_printable(letter.reason)}  | {value}")


# --- replay decisions (pure) ----------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    """What replay does with one dead letter: ``replay`` (with the key and value to send),
    or leave it as ``truncated``, ``damaged`` or ``invalid`` (``detail`` says why)."""

    kind: str
    detail: str = ""
    key: bytes | None = None
    value: bytes | None = None
    user_id: str | None = None
    forget: bool = False  # the value is a forget-user request


def judge(letter: DeadLetter, max_bytes: int) -> Verdict:
    """Whether ``letter`` can be replayed: its whole value kept, and valid now."""
    from stream_rec.core.events import ForgetUser, InvalidEvent, parse_message

    if letter.value is None:
        return Verdict("invalid", "empty message")
    if letter.value_truncated:
        return Verdict("truncated", f"{len(letter.value)} of {letter.value_bytes} bytes kept")
    if (letter.value_sha256 is not None
            and hashlib.sha256(letter.value).hexdigest() != letter.value_sha256):
        return Verdict("damaged", "the kept value does not match its SHA-256")
    try:
        parsed = parse_message(letter.value, max_bytes)
    except InvalidEvent as exc:
        return Verdict("invalid", exc.reason)
    return Verdict("replay", key=parsed.user_id.encode(), value=letter.value,
                   user_id=parsed.user_id, forget=isinstance(parsed, ForgetUser))


def decode_ranges(metadata: str | None) -> Ranges:
    """The offset ranges a replay's commit metadata lists (anything else: none)."""
    if not metadata or not metadata.startswith(METADATA_PREFIX):
        return []
    out: Ranges = []
    for part in metadata[len(METADATA_PREFIX):].split(","):
        first, _, last = part.partition("-")
        try:
            out.append((int(first), int(last or first)))
        except ValueError:
            return []
    return merge_ranges(out, ())


def merge_ranges(ranges: Iterable[tuple[int, int]], offsets: Iterable[int]) -> Ranges:
    """``ranges`` and ``offsets`` as sorted, merged inclusive ranges."""
    spans = sorted([*ranges, *((o, o) for o in offsets)])
    merged: Ranges = []
    for first, last in spans:
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def in_ranges(offset: int, ranges: Ranges) -> bool:
    """Whether ``offset`` lies in one of ``ranges``."""
    at = bisect.bisect_right(ranges, (offset, sys.maxsize)) - 1
    return at >= 0 and ranges[at][0] <= offset <= ranges[at][1]


def encode_ranges(ranges: Ranges, limit: int = MAX_METADATA_CHARS) -> str:
    """Commit metadata listing ``ranges``, the lowest first, as many as fit in ``limit``."""
    text = METADATA_PREFIX
    for n, (first, last) in enumerate(ranges):
        part = ("," if n else "") + (str(first) if first == last else f"{first}-{last}")
        if len(text) + len(part) > limit:
            break
        text += part
    return text if ranges else ""


def next_checkpoint(end: int, first_left: int | None, handled: Ranges) -> tuple[int, Ranges]:
    """The offset to commit after a replay read up to ``end``: the first dead letter left for
    later (``--reason`` left it out), else ``end``; and the handled ranges past it."""
    commit = end if first_left is None else first_left
    kept = [(max(first, commit), last) for first, last in handled if last >= commit]
    return commit, kept


# --- tail -----------------------------------------------------------------------------------

def run_tail(args: argparse.Namespace) -> int:
    """Print the dead letters (the last --limit), then follow the topic with --follow."""
    settings = load_settings(broker=args.broker)
    with kafka_errors(settings):
        consumer = consumer_for(settings)
        try:
            tps = require_partitions(settings, consumer, settings.dlq_topic)
            begins = consumer.beginning_offsets(tps)
            ends = consumer.end_offsets(tps)
            starts = dict(begins)
            if args.limit and not args.reason:  # the last N of the topic are all there is to read
                starts = {tp: max(begins[tp], ends[tp] - args.limit) for tp in tps}
            kept: deque[str] = deque(maxlen=args.limit)
            shown = 0
            for record in read_between(consumer, {tp: (starts[tp], ends[tp]) for tp in tps}):
                line = _tail_line(record, args.reason, args.json)
                if line is None:
                    continue
                shown += 1
                if args.limit:
                    kept.append(line)
                else:
                    print(line)
            for line in kept:
                print(line)
            if not shown:
                print(f"no dead letters on {settings.dlq_topic}"
                      + (f" with {args.reason!r} in their reason" if args.reason else ""),
                      file=sys.stderr)
            if args.follow:
                sys.stdout.flush()
                _follow(consumer, tps, ends, args.reason, args.json)
        finally:
            consumer.close()
    return 0


def _follow(consumer: KafkaConsumer, tps: list[TopicPartition],
            ends: Mapping[TopicPartition, int], reason: str | None, as_json: bool) -> None:
    consumer.assign(tps)
    consumer.resume(*tps)
    for tp in tps:
        consumer.seek(tp, ends[tp])
    while True:
        for records in consumer.poll(timeout_ms=1000).values():
            for record in records:
                line = _tail_line(record, reason, as_json)
                if line is not None:
                    print(line, flush=True)


def _tail_line(record: ConsumerRecord, reason: str | None, as_json: bool) -> str | None:
    try:
        letter = decode_dead_letter(record.value, record.partition, record.offset)
    except BadDeadLetter as exc:
        text = f"unreadable dead letter: {exc}"
        if not matches(text, reason):
            return None
        if as_json:
            return json.dumps({"dlq_partition": record.partition, "dlq_offset": record.offset,
                               "unreadable": str(exc)})
        return f"{record.offset}  ({text})"
    if not matches(letter.reason, reason):
        return None
    return json.dumps(letter.to_dict()) if as_json else format_line(letter)


# --- replay ---------------------------------------------------------------------------------

def replay_group(app_id: str) -> str:
    """The consumer group whose offsets on the dead-letter topic are replay's checkpoint."""
    return f"{app_id}{REPLAY_GROUP_SUFFIX}"


@dataclass
class ReplayReport:
    """What a replay did with the dead letters it read."""

    replayed: int = 0
    invalid: Counter[str] = field(default_factory=Counter)
    truncated: int = 0
    damaged: int = 0
    unreadable: int = 0
    forgotten: int = 0
    handled_before: int = 0  # by an earlier replay (listed past its committed offset)
    left_for_later: int = 0  # --reason left them out
    checkpoint: dict[int, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The counts as JSON (``invalid``: reason -> count)."""
        return {"replayed": self.replayed, "invalid": dict(self.invalid.most_common()),
                "truncated": self.truncated, "damaged": self.damaged,
                "unreadable": self.unreadable, "forgotten": self.forgotten,
                "handled_before": self.handled_before,
                "left_for_later": self.left_for_later,
                "checkpoint": {str(p): o for p, o in sorted(self.checkpoint.items())}}


@dataclass
class _Candidate:
    letter: DeadLetter
    verdict: Verdict
    time_ms: int  # when the original message was written (or, unknown, its dead letter)


def run_replay(args: argparse.Namespace) -> int:
    """Send back what now passes, remember it, and report what stays."""
    from kafka import TopicPartition
    from kafka.structs import OffsetAndMetadata

    settings = load_settings(broker=args.broker)
    report = ReplayReport()
    group = replay_group(settings.app_id)
    with kafka_errors(settings):
        consumer = consumer_for(settings, group_id=group)
        try:
            tps = require_partitions(settings, consumer, settings.dlq_topic)
            begins = consumer.beginning_offsets(tps)
            ends = consumer.end_offsets(tps)
            starts: dict[TopicPartition, int] = {}
            done: dict[TopicPartition, Ranges] = {}
            for tp in tps:
                committed = None if args.from_start else consumer.committed(tp, metadata=True)
                offset = getattr(committed, "offset", None)
                if offset is None or offset < 0:
                    starts[tp], done[tp] = begins[tp], []
                else:
                    starts[tp] = max(begins[tp], min(offset, ends[tp]))
                    done[tp] = decode_ranges(getattr(committed, "metadata", ""))
            first_left: dict[TopicPartition, int] = {}
            handled: dict[TopicPartition, list[int]] = {tp: [] for tp in tps}
            candidates: list[_Candidate] = []
            for record in read_between(consumer, {tp: (starts[tp], ends[tp]) for tp in tps}):
                tp = TopicPartition(record.topic, record.partition)
                if in_ranges(record.offset, done[tp]):
                    report.handled_before += 1
                    continue
                try:
                    letter: DeadLetter | None = decode_dead_letter(
                        record.value, record.partition, record.offset)
                except BadDeadLetter:
                    letter = None
                if letter is None and not args.reason:
                    report.unreadable += 1
                elif letter is None or not matches(letter.reason, args.reason):
                    report.left_for_later += 1
                    first_left.setdefault(tp, record.offset)
                    continue
                handled[tp].append(record.offset)
                if letter is None:
                    continue
                verdict = judge(letter, settings.max_event_bytes)
                if verdict.kind == "replay":
                    candidates.append(_Candidate(letter, verdict,
                                                 letter.timestamp_ms or record.timestamp))
                elif verdict.kind == "invalid":
                    report.invalid[verdict.detail] += 1
                elif verdict.kind == "truncated":
                    report.truncated += 1
                else:
                    report.damaged += 1
            to_send = _not_forgotten(settings, candidates)
            report.forgotten = len(candidates) - len(to_send)
            report.replayed = len(to_send)
            if args.dry_run:
                for candidate in [] if args.json else to_send:
                    print("would replay " + format_line(candidate.letter))
            else:
                _send(settings, to_send)
                commits = {}
                for tp in tps:
                    commit, kept = next_checkpoint(ends[tp], first_left.get(tp),
                                                   merge_ranges(done[tp], handled[tp]))
                    commits[tp] = OffsetAndMetadata(commit, encode_ranges(kept), -1)
                    report.checkpoint[tp.partition] = commit
                consumer.commit(commits)
        finally:
            consumer.close()
    _print_report(settings, report, args)
    return 0


def _not_forgotten(settings: Settings, candidates: list[_Candidate]) -> list[_Candidate]:
    """The candidates but the events of shoppers with a forget-user request on the events
    topic at or after the time of their message (a forget request itself always goes)."""
    events = [c for c in candidates if not c.verdict.forget]
    if not events:
        return candidates
    forgotten = forget_times(settings, {str(c.verdict.user_id) for c in events},
                             min(c.time_ms for c in events))
    return [c for c in candidates
            if c.verdict.forget or forgotten.get(str(c.verdict.user_id), -1) < c.time_ms]


def forget_times(settings: Settings, users: set[str], since_ms: int) -> dict[str, int]:
    """user_id -> the Kafka time of the last forget-user request for them on the events topic
    from ``since_ms`` on (whatever its key: a mis-keyed request shows the intent as well)."""
    from stream_rec.core.events import ForgetUser, InvalidEvent, parse_message

    out: dict[str, int] = {}
    consumer = consumer_for(settings)
    try:
        tps = topic_partitions(consumer, settings.events_topic)
        if not tps:
            return out
        ends = consumer.end_offsets(tps)
        found = consumer.offsets_for_times({tp: max(0, since_ms) for tp in tps})
        ranges = {tp: (found[tp].offset if found.get(tp) else ends[tp], ends[tp]) for tp in tps}
        for record in read_between(consumer, ranges):
            value = record.value
            # Only a value that names the request (or escapes characters) can be one.
            if value is None or (b"forget_user" not in value and b"\\u" not in value):
                continue
            try:
                parsed = parse_message(value, settings.max_event_bytes)
            except InvalidEvent:
                continue
            if isinstance(parsed, ForgetUser) and parsed.user_id in users:
                out[parsed.user_id] = max(out.get(parsed.user_id, -1), record.timestamp)
    finally:
        consumer.close()
    return out


def _send(settings: Settings, candidates: list[_Candidate]) -> None:
    """Send every candidate to the events topic, in dead-letter order; raise unless the broker
    has them all."""
    if not candidates:
        return
    producer = producer_for(settings)
    try:
        futures = [producer.send(settings.events_topic, key=c.verdict.key, value=c.verdict.value)
                   for c in candidates]
        producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=60)
    except Exception as exc:
        raise UserError(f"replay stopped: the broker did not take every message ({exc}); "
                        "nothing was remembered, so the next replay sends them again (the "
                        "worker drops the repeats by event_id)") from None
    finally:
        producer.close()


def _print_report(settings: Settings, report: ReplayReport, args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps({"dry_run": args.dry_run, "group": replay_group(settings.app_id),
                          **report.to_dict()}))
        return
    verb = "would replay" if args.dry_run else "replayed"
    print(f"{verb} {report.replayed} dead letter(s) to {settings.events_topic}")
    invalid = sum(report.invalid.values())
    if invalid:
        print(f"left {invalid} still invalid:")
        for reason, n in report.invalid.most_common():
            print(f"  {n:6d}  {reason}")
    for n, what in ((report.truncated, "cut to fit the dead letter (the value is not whole)"),
                    (report.damaged, "whose value does not match its SHA-256"),
                    (report.unreadable, "unreadable (not a dead letter)"),
                    (report.forgotten, "of shoppers forgotten since"),
                    (report.left_for_later, "not matching --reason, for a later replay")):
        if n:
            print(f"left {n} {what}")
    if report.handled_before:
        print(f"skipped {report.handled_before} handled by an earlier replay")
    if report.checkpoint:
        where = ", ".join(f"[{p}] {o}" for p, o in sorted(report.checkpoint.items()))
        print(f"remembered in group {replay_group(settings.app_id)}: {settings.dlq_topic} "
              f"handled up to offset {where}")
