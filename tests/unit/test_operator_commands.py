"""The operator commands without a broker: flags, dead letters, checkpoints, rows and checks."""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from stream_rec.cli import build_parser, main
from stream_rec.commands import dlq, export, topics, user
from stream_rec.commands.model import format_rows, version_row
from stream_rec.config import Settings
from stream_rec.errors import UserError
from stream_rec.serving.dead_letter import MAX_RAW_BYTES, Message, dead_letter
from tests.unit.test_cli import VOCABULARY

ROOT = Path(__file__).resolve().parents[2]


def parse(*argv: str) -> argparse.Namespace:
    return build_parser(Settings()).parse_args(argv)


# --- flags ----------------------------------------------------------------------------------

def test_the_commands_parse_their_flags() -> None:
    args = parse("topics", "create", "--broker", "k1:9092,k2:9092", "--json")
    assert (args.command, args.action, args.broker, args.json) == ("topics", "create",
                                                                   "k1:9092,k2:9092", True)
    assert parse("topics", "list").func is topics.run_list
    args = parse("user", "show", "u-1", "--json")
    assert (args.action, args.user_id, args.json, args.func) == ("show", "u-1", True,
                                                                  user.run_show)
    args = parse("user", "forget", "u-1", "--request-id", "gdpr-7")
    assert (args.user_id, args.request_id, args.func) == ("u-1", "gdpr-7", user.run_forget)
    args = parse("dlq", "tail", "--reason", "missing", "--limit", "5", "--follow", "--json")
    assert (args.reason, args.limit, args.follow, args.json) == ("missing", 5, True, True)
    args = parse("dlq", "replay", "--reason", "key", "--dry-run", "--from-start")
    assert (args.reason, args.dry_run, args.from_start, args.func) == ("key", True, True,
                                                                      dlq.run_replay)
    args = parse("export", "--out", "lists.jsonl")
    assert (args.out, args.func) == ("lists.jsonl", export.run)


@pytest.mark.parametrize("argv", [
    ("dlq", "tail", "--limit", "0"),
    ("dlq", "replay", "--follow"),
    ("export",),
    ("user",),
    ("user", "show"),
    ("topics", "drop"),
])
def test_a_bad_command_line_is_one_line_and_status_2(argv: tuple[str, ...],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        parse(*argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "see '" in err


def _leaf_parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser(Settings())
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(p: argparse.ArgumentParser, path: str) -> None:
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            found[path] = p
        for action in subs:
            for name, child in action.choices.items():
                walk(child, f"{path} {name}".strip())

    walk(parser, "")
    return {k: v for k, v in found.items() if k.split()[0] in ("topics", "user", "dlq",
                                                                "export", "model")}


def test_the_new_flags_use_the_shared_words() -> None:
    leaves = _leaf_parsers()
    assert set(leaves) == {"topics create", "topics list", "user show", "user forget",
                           "dlq tail", "dlq replay", "export", "model"}
    for name, parser in leaves.items():
        page = parser.format_help()
        assert page.split("\n\n")[1].strip(), f"{name} has no description"
        for action in parser._actions:
            if action.option_strings and action.metavar:
                assert action.metavar in VOCABULARY, (name, action.option_strings)
            if "--broker" in action.option_strings:
                assert action.metavar == "HOST:PORT"


def test_topics_create_reports_created_and_existing(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    created: list[Settings] = []

    def fake_ensure_topics(settings: Settings) -> list[str]:
        created.append(settings)
        return [settings.events_topic]

    monkeypatch.setattr("stream_rec.topics.ensure_topics", fake_ensure_topics)
    monkeypatch.setenv("STREAM_REC_PARTITIONS", "6")
    assert main(["topics", "create", "--broker", "kafka:9093"]) == 0
    out = capsys.readouterr().out
    assert created[0].broker == "kafka:9093"
    assert "created storefront.events (6 partition(s), delete)" in out
    assert "already there, left as they are: recommendations, storefront.events.dlq" in out
    assert main(["topics", "create", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["created"] == ["storefront.events"] and "storefront.items" in doc["existing"]


# --- topics list ----------------------------------------------------------------------------

def test_expected_topics_cover_the_created_topics_and_the_changelogs() -> None:
    settings = Settings(partitions=4, app_id="shop", replication_factor=3)
    expected = {t.role: t for t in topics.expected_topics(settings)}
    assert expected["events"].layout == topics.Layout(4, "delete", 3)
    assert expected["dlq"].layout.partitions == 1
    assert expected["items"].layout.cleanup_policy == "compact"
    assert expected["user-state"].name == "shop-user-state-changelog"
    assert expected["latest-recs"].layout == topics.Layout(4, "compact", 3)
    assert expected["latest-recs"].created_by == "worker"


def test_topic_checks_flag_what_differs() -> None:
    settings = Settings(partitions=4)
    expected = topics.expected_topics(settings)
    layout = {t.name: t.layout for t in expected}
    found = dict(layout)
    found[settings.events_topic] = topics.Layout(4, "compact", 1)  # compacted: loses events
    found[settings.recommendations_topic] = topics.Layout(6, "delete", 1)
    del found[settings.items_topic]
    del found["stream-rec-online-metrics-changelog"]
    checks = {c.expected.role: c for c in topics.check_topics(expected, found)}
    assert checks["events"].problems == ["cleanup.policy compact, expected delete"]
    assert checks["recommendations"].problems == [
        "6 partition(s), expected 4", "6 partition(s) but the events topic has 4"]
    assert checks["items"].problems == ["missing: run 'stream-rec topics create'"]
    assert not checks["online-metrics"].problems and "worker creates" in checks[
        "online-metrics"].note
    assert not checks["user-state"].problems and checks["user-state"].found is not None
    table = topics.format_checks(list(checks.values()))
    row = next(line for line in table.splitlines() if line.startswith("recommendations"))
    assert "6 [4]" in row and "expected 4" in row
    assert checks["events"].to_dict()["found"] == {"partitions": 4,
                                                   "cleanup_policy": "compact", "replicas": 1}


def test_replicas_below_the_setting_are_flagged() -> None:
    expected = [t for t in topics.expected_topics(Settings(replication_factor=3))
                if t.role == "dlq"]
    [check] = topics.check_topics(expected, {expected[0].name: topics.Layout(1, "delete", 1)})
    assert check.problems == ["1 replica(s), expected 3"]


# --- user -----------------------------------------------------------------------------------

@pytest.mark.parametrize("partitions", [1, 2, 4, 12])
def test_key_partition_is_the_clients_default_partitioner(partitions: int) -> None:
    from aiokafka.partitioner import DefaultPartitioner

    for key in (b"u1", b"u-123", "shopper-ü".encode(), b"x" * 300):
        every = list(range(partitions))
        assert user.key_partition(key, partitions) == DefaultPartitioner()(key, every, every)
    order = user.search_order(b"u1", partitions)
    assert sorted(order) == list(range(partitions)) and order[0] == user.key_partition(
        b"u1", partitions)


def test_a_forget_request_is_what_the_worker_accepts() -> None:
    from stream_rec.core.events import ForgetUser, parse_message

    key, value = user.forget_request("u-123", "gdpr-1", 65536)
    assert key == b"u-123"
    assert json.loads(value) == {"type": "forget_user", "user_id": "u-123",
                                 "request_id": "gdpr-1"}
    assert parse_message(value, 65536) == ForgetUser("u-123", "gdpr-1")
    _, value = user.forget_request("u-123", None, 65536)
    assert json.loads(value)["request_id"].startswith("stream-rec-")
    with pytest.raises(UserError, match="control characters"):
        user.forget_request("u\n1", None, 65536)
    with pytest.raises(UserError, match="1..256 characters"):
        user.forget_request("u" * 300, None, 65536)


def test_a_list_is_shown_in_a_few_lines() -> None:
    assert user.format_list(None) == "latest list: none yet"
    text = user.format_list({"event_id": "e1", "generated_at": "2026-01-01T00:00:00.000Z",
                             "model_version": "v1", "fallback": False,
                             "policy": {"method": "dpp", "param": 0.15},
                             "experiment": {"id": "x", "arm": "a", "version": 1},
                             "items": [{"item_id": "i1", "score": 0.5, "reason": "r"}]})
    assert text.splitlines() == [
        "latest list: for event e1, generated 2026-01-01T00:00:00.000Z, model v1, policy "
        "dpp:0.15, experiment x arm a", "   1. i1  0.5000  r"]


# --- dead letters ---------------------------------------------------------------------------

def _letter(reason: str, value: bytes | None, key: bytes | None = b"u1", offset: int = 7,
            **changes: Any) -> dlq.DeadLetter:
    message = Message(key=key, value=value, topic="storefront.events", partition=2,
                      offset=offset, timestamp_ms=1_750_000_000_000)
    doc = json.loads(dead_letter(reason, message))
    doc.update(changes)
    return dlq.decode_dead_letter(json.dumps(doc).encode(), 0, 41)


EVENT = {"event_id": "e1", "user_id": "u4", "item_id": "i1", "type": "view",
         "ts": 1_750_000_000_000}


def test_a_dead_letter_decodes_as_the_worker_wrote_it() -> None:
    value = json.dumps(EVENT).encode()
    letter = _letter("message key 'x' is not the event's user_id 'u4'", value, key=b"x")
    assert (letter.value, letter.key, letter.value_truncated) == (value, b"x", False)
    assert letter.source() == "storefront.events:2:7"
    assert letter.timestamp_ms == 1_750_000_000_000 and letter.value_bytes == len(value)
    assert letter.to_dict()["dlq_offset"] == 41 and letter.to_dict()["raw_sha256"]
    # The schema allows a timestamp written as a float.
    assert _letter("r", b"v", timestamp_ms=1_750_000_000_000.0).timestamp_ms == 1_750_000_000_000
    assert _letter("r", None, key=None).value is None


@pytest.mark.parametrize(("raw", "why"), [
    (b"not json", "not JSON"),
    (b"[1]", "not a JSON object"),
    (b'{"reason": "r"}', "no reason or topic"),
    (b'{"reason": "r", "topic": "t", "raw_base64": "***", "partition": 0, "offset": 0}',
     "raw_base64 is not base64"),
    (b'{"reason": "r", "topic": "t", "raw_base64": null, "partition": "0", "offset": 0}',
     "partition is not an integer"),
    (None, "no value"),
])
def test_a_record_that_is_no_dead_letter_is_refused(raw: bytes | None, why: str) -> None:
    with pytest.raises(dlq.BadDeadLetter, match=why):
        dlq.decode_dead_letter(raw)


def test_a_valid_miskeyed_event_is_replayed_under_its_user_id() -> None:
    value = json.dumps(EVENT).encode()
    verdict = dlq.judge(_letter("message key 'x' ...", value, key=b"x"), 65536)
    assert (verdict.kind, verdict.key, verdict.value, verdict.forget) == ("replay", b"u4",
                                                                           value, False)
    forget = json.dumps({"type": "forget_user", "user_id": "u4"}).encode()
    assert dlq.judge(_letter("internal error: KeyError", forget), 65536).forget


def test_what_replay_leaves() -> None:
    invalid = dlq.judge(_letter("missing field 'ts'", b'{"type": "view"}'), 65536)
    assert (invalid.kind, invalid.detail) == ("invalid", "missing field 'event_id'")
    assert dlq.judge(_letter("empty message", None), 65536).kind == "invalid"
    huge = json.dumps({**EVENT, "context": {"pad": "x" * MAX_RAW_BYTES}}).encode()
    cut = dlq.judge(_letter("too big", huge), 10 * MAX_RAW_BYTES)
    assert cut.kind == "truncated" and f"of {len(huge)} bytes" in cut.detail
    value = json.dumps(EVENT).encode()
    tampered = base64.b64encode(value.replace(b"i1", b"i2")).decode()
    assert dlq.judge(_letter("r", value, raw_base64=tampered), 65536).kind == "damaged"
    # A value the worker refuses for its size stays: replay checks with the same limit.
    assert dlq.judge(_letter("r", value), 10).kind == "invalid"


def test_a_dead_letter_is_one_readable_line() -> None:
    value = json.dumps(EVENT).encode()
    line = dlq.format_line(_letter("missing field 'ts'", value))
    assert line.startswith("41  storefront.events:2:7  key=u1  missing field 'ts'  | {")
    assert line.endswith("...") and len(line) < 200
    assert "base64:AP8=" in dlq.format_line(_letter("not UTF-8", b"\x00\xff"))
    assert "\\n" in dlq.preview(b"a\nb") and dlq.preview(None) == "(none)"
    huge = b"x" * (MAX_RAW_BYTES + 10)
    assert f"(cut: {len(huge)} bytes in all)" in dlq.format_line(_letter("big", huge))


def test_reason_filter_is_a_substring_in_any_case() -> None:
    assert dlq.matches("Missing field 'ts'", "missing FIELD")
    assert dlq.matches("anything", None) and dlq.matches("anything", "")
    assert not dlq.matches("missing field 'ts'", "key")


# --- the replay checkpoint ------------------------------------------------------------------

def test_offset_ranges_merge_and_round_trip() -> None:
    ranges = dlq.merge_ranges([(10, 12)], [13, 5, 20, 21, 11])
    assert ranges == [(5, 5), (10, 13), (20, 21)]
    assert [o for o in range(25) if dlq.in_ranges(o, ranges)] == [5, 10, 11, 12, 13, 20, 21]
    assert not dlq.in_ranges(0, [])
    text = dlq.encode_ranges(ranges)
    assert text == "replayed:5,10-13,20-21" and dlq.decode_ranges(text) == ranges
    assert dlq.encode_ranges([]) == "" and dlq.decode_ranges("") == []
    assert dlq.decode_ranges("something else") == [] == dlq.decode_ranges("replayed:x")
    many = [(n * 3, n * 3) for n in range(2000)]
    cut = dlq.encode_ranges(many, limit=100)
    assert len(cut) <= 100 and dlq.decode_ranges(cut) == many[:len(dlq.decode_ranges(cut))]


def test_the_checkpoint_stops_at_what_reason_left_out() -> None:
    # Read 0..9; offset 4 was left out by --reason; 0-3 and 5-9 were handled.
    commit, kept = dlq.next_checkpoint(10, 4, dlq.merge_ranges([], [0, 1, 2, 3, 5, 6, 7, 8, 9]))
    assert (commit, kept) == (4, [(5, 9)])
    # Nothing left out: everything read is behind the committed offset.
    assert dlq.next_checkpoint(10, None, [(0, 9)]) == (10, [])
    # A range that straddles the committed offset keeps only its part past it.
    assert dlq.next_checkpoint(10, 3, [(1, 6)]) == (3, [(3, 6)])


def test_the_report_as_json() -> None:
    report = dlq.ReplayReport(replayed=2, truncated=1, checkpoint={0: 12})
    report.invalid["missing field 'ts'"] += 3
    assert report.to_dict() == {
        "replayed": 2, "invalid": {"missing field 'ts'": 3}, "truncated": 1, "damaged": 0,
        "unreadable": 0, "forgotten": 0, "handled_before": 0, "left_for_later": 0,
        "checkpoint": {"0": 12}}
    assert dlq.replay_group("shop") == "shop-dlq-replay"


# --- export ---------------------------------------------------------------------------------

def test_export_keeps_each_keys_latest_record_and_drops_tombstones() -> None:
    records = [(b"u1", False, 0), (b"u2", False, 1), (b"u1", False, 2), (b"u2", True, 3),
               (None, False, 4), (b"u3", True, 5), (b"u3", False, 6)]
    assert export.latest_offsets(records) == {b"u1": 2, b"u3": 6}


# --- model list -----------------------------------------------------------------------------

def _manifest(version: str, metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": version, "created_at": "2026-01-02T03:04:05+00:00", "files": {},
        "training": {"data": "events:x", "data_range": {
            "dataset": "storefront", "from_ms": 1767225600000, "to_ms": 1767830400000,
            "train_events": 14104, "synthetic_time": False}}}
    if metrics is not None:
        doc["metrics"] = metrics
    return doc


def test_a_model_row_carries_the_manifests_facts() -> None:
    row = version_row("20260102T030405Z", True, _manifest(
        "20260102T030405Z", {"P@20": 76.28, "MRR@20": 40.03, "NDCG@20": 48.3, "n_cases": 9,
                             "cold_targets": {"P@20": 11.1}}))
    assert row == {
        "version": "20260102T030405Z", "current": True,
        "created_at": "2026-01-02T03:04:05+00:00",
        "data_range": {"dataset": "storefront", "from_ms": 1767225600000,
                       "to_ms": 1767830400000, "from": "2026-01-01T00:00:00Z",
                       "to": "2026-01-08T00:00:00Z", "train_events": 14104,
                       "synthetic_time": False},
        "metrics": {"P@20": 76.28, "MRR@20": 40.03}, "manifest_readable": True}
    bare = version_row("20260101T000000Z", False, None)
    assert bare["data_range"] is None and bare["metrics"] == {} and not bare["manifest_readable"]


def test_model_list_shows_each_version_from_its_manifest(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for version, metrics in (("20260101T000000Z", None),
                             ("20260102T030405Z", {"P@20": 76.281, "MRR@20": 40.0327})):
        (tmp_path / version).mkdir()
        (tmp_path / version / "manifest.json").write_text(json.dumps(_manifest(version,
                                                                               metrics)))
    (tmp_path / "CURRENT.json").write_text(json.dumps({"version": "20260102T030405Z",
                                                       "history": []}))
    assert main(["model", "list", "--registry", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["versions"]
    assert [(r["version"], r["current"]) for r in rows] == [("20260101T000000Z", False),
                                                            ("20260102T030405Z", True)]
    assert rows[1]["metrics"] == {"P@20": 76.281, "MRR@20": 40.0327}
    assert rows[0]["data_range"]["train_events"] == 14104
    assert main(["model", "list", "--registry", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["VERSION", "CREATED", "(UTC)", "TRAINED", "ON", "P@20", "%",
                                "MRR@20", "%"]
    assert lines[2].startswith("*  20260102T030405Z  2026-01-02 03:04:05")
    assert "storefront 2026-01-01..2026-01-08, 14104 events" in lines[2]
    assert lines[2].split()[-2:] == ["76.28", "40.03"] and lines[1].split()[-2:] == ["-", "-"]


def test_model_rows_without_metrics_have_no_metric_columns() -> None:
    table = format_rows([version_row("20260101T000000Z", False, _manifest("x"))])
    assert "P@20" not in table and "14104 events" in table


def test_the_dead_letter_hash_is_over_the_whole_value() -> None:
    # What judge() relies on to call a kept value whole.
    value = b"x" * 10
    letter = _letter("r", value)
    assert letter.value_sha256 == hashlib.sha256(value).hexdigest()
