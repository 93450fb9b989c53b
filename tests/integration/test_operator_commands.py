"""The operator commands against a real broker and worker: topics, user, dlq, export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from stream_rec.config import Settings, load_settings
from stream_rec.tools.worker_process import WorkerProcess, settings_env
from tests.integration.worker_fixtures import (
    TopicReader,
    event_bytes,
    isolated_settings,
    produce,
    wait_committed,
)

pytestmark = pytest.mark.integration

TS = 1_750_000_000_000


def _run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stream_rec.cli", *args],
                          capture_output=True, text=True, timeout=180, check=False,
                          env={**os.environ, **settings_env(settings)})


def _ok(settings: Settings, *args: str) -> str:
    done = _run(settings, *args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def _json(settings: Settings, *args: str) -> Any:
    return json.loads(_ok(settings, *args, "--json"))


def _event(n: int, user: str, item: str = "i1", kind: str = "view") -> dict[str, Any]:
    return {"event_id": f"e{n}-{user}", "user_id": user, "item_id": item, "type": kind,
            "ts": TS + n}


def test_topics_create_makes_the_layout_once_and_list_checks_it(broker: str, new_topic,
                                                                tmp_path: Path) -> None:
    settings = load_settings(
        {}, broker=broker, app_id=new_topic("app"), events_topic=new_topic("events"),
        dlq_topic=new_topic("dlq"), items_topic=new_topic("items"),
        recommendations_topic=new_topic("recs"), model_updates_topic=new_topic("models"),
        experiments_topic=new_topic("experiments"), partitions=3)
    first = _json(settings, "topics", "create")
    changelogs = [f"{settings.app_id}-{table}-changelog"
                  for table in ("user-state", "latest-recs", "online-metrics")]
    assert sorted(first["created"]) == sorted([
        settings.events_topic, settings.recommendations_topic, settings.dlq_topic,
        settings.items_topic, settings.model_updates_topic, settings.experiments_topic,
        *changelogs])
    again = _json(settings, "topics", "create")
    assert again["created"] == [] and len(again["existing"]) == 9
    assert "already there" in _ok(settings, "topics", "create")

    listed = _json(settings, "topics", "list")
    assert listed["ok"] is True
    by_role = {t["role"]: t for t in listed["topics"]}
    assert by_role["events"]["found"] == {"partitions": 3, "cleanup_policy": "delete",
                                          "replicas": 1}
    assert by_role["items"]["found"]["cleanup_policy"] == "compact"
    # The tables' changelogs as Faust would make them: the events topic's partitions, compacted.
    assert by_role["user-state"]["found"] == {"partitions": 3, "cleanup_policy": "compact",
                                              "replicas": 1}
    assert not by_role["online-metrics"]["problems"]

    # The same cluster, as a deployment that expects 4 partitions sees it: flagged, status 1.
    other = settings.with_overrides(partitions=4)
    done = _run(other, "topics", "list")
    assert done.returncode == 1, done.stderr
    events_line = next(line for line in done.stdout.splitlines()
                       if line.startswith(settings.events_topic))
    assert "3 partition(s), expected 4" in events_line and "3 [4]" in events_line


def test_a_shopper_is_shown_exported_dead_lettered_replayed_and_forgotten(
        broker: str, new_topic, tmp_path: Path) -> None:
    settings = isolated_settings(broker, new_topic, tmp_path)
    produce(broker, settings.items_topic,
            [(f"i{n}".encode(), json.dumps({"category": f"c{n % 3}"}).encode())
             for n in range(20)])
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    recs = TopicReader(broker, settings.recommendations_topic)
    dead = TopicReader(broker, settings.dlq_topic)

    def lists_for(*event_ids: str) -> None:
        recs.wait_for(lambda v: set(event_ids) <= {r["event_id"] for r in v}, 120)

    def caught_up() -> None:
        wait_committed(broker, settings.app_id, settings.events_topic, 120)

    try:
        good = [_event(1, "u1", "i1"), _event(2, "u1", "i2", "click"), _event(3, "u1", "i3"),
                _event(4, "u2", "i4"), _event(5, "u2", "i5")]
        miskeyed = _event(6, "u4", "i6")
        produce(broker, settings.events_topic, [
            *map(event_bytes, good),
            (b"u3", json.dumps({"event_id": "bad", "user_id": "u3", "item_id": "i1",
                                "type": "view"}).encode()),  # no ts: stays invalid
            (b"somebody-else", json.dumps(miskeyed).encode()),  # valid, keyed wrong
        ])
        lists_for("e3-u1", "e5-u2")
        dead.wait_for(lambda v: len(v) >= 2, 120)
        caught_up()

        # user show: the state and the latest list, from the changelogs.
        shown = _json(settings, "user", "show", "u1")
        assert shown["state"]["n_events"] == 3
        assert [h["item_id"] for h in shown["state"]["history"]][-1] == "i3"
        assert shown["latest"]["user_id"] == "u1" and shown["latest"]["event_id"] == "e3-u1"
        text = _ok(settings, "user", "show", "u1")
        assert "latest list: for event e3-u1" in text and '"n_events": 3' in text
        missing = _run(settings, "user", "show", "nobody")
        assert missing.returncode == 1 and "no state for user 'nobody'" in missing.stderr

        # export: one line per shopper with a list.
        out = tmp_path / "lists.jsonl"
        done = _run(settings, "export", "--out", str(out))
        assert done.returncode == 0 and "wrote 2 list(s)" in done.stderr, done.stderr
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        assert sorted(r["user_id"] for r in lines) == ["u1", "u2"]
        assert {r["event_id"] for r in lines} == {"e3-u1", "e5-u2"}

        # dlq tail: both dead letters, with their reasons; --reason filters.
        tailed = [json.loads(line) for line in _ok(settings, "dlq", "tail", "--json")
                  .splitlines()]
        reasons = {t["reason"] for t in tailed}
        assert len(tailed) == 2 and "missing field 'ts'" in reasons
        assert any("'somebody-else' is not the event's user_id 'u4'" in r for r in reasons)
        assert {t["topic"] for t in tailed} == {settings.events_topic}
        only = _ok(settings, "dlq", "tail", "--reason", "MISSING FIELD").splitlines()
        assert len(only) == 1 and "missing field 'ts'" in only[0] and "key=u3" in only[0]
        assert len(_ok(settings, "dlq", "tail", "--limit", "1").splitlines()) == 1

        # dlq replay: the mis-keyed event goes back keyed by its user_id, once.
        dry = _json(settings, "dlq", "replay", "--dry-run")
        assert (dry["replayed"], dry["invalid"]) == (1, {"missing field 'ts'": 1})
        first = _json(settings, "dlq", "replay")
        assert first["replayed"] == 1 and first["invalid"] == {"missing field 'ts'": 1}
        lists_for("e6-u4")
        second = _json(settings, "dlq", "replay")
        assert second["replayed"] == 0 and second["invalid"] == {}
        caught_up()
        assert _json(settings, "user", "show", "u4")["state"]["n_events"] == 1

        # Replay with --reason leaves the other dead letters for a later run, which then
        # sends nothing twice; a forgotten shopper's dead-lettered event is never sent back.
        produce(broker, settings.events_topic, [  # one key: one partition, in this order
            (b"wrong", b"not json"),
            (b"wrong", json.dumps(_event(7, "u5", "i7")).encode()),
            (b"wrong", json.dumps(_event(8, "u6", "i8")).encode()),
        ])
        dead.wait_for(lambda v: len(v) >= 5, 120)
        forgot = _json(settings, "user", "forget", "u6", "--request-id", "gdpr-1")
        assert forgot["value"] == {"type": "forget_user", "user_id": "u6",
                                   "request_id": "gdpr-1"}
        by_reason = _json(settings, "dlq", "replay", "--reason", "not the event's user_id")
        assert (by_reason["replayed"], by_reason["forgotten"]) == (1, 1)
        assert by_reason["left_for_later"] == 1
        lists_for("e7-u5")
        rest = _json(settings, "dlq", "replay")
        assert rest["replayed"] == rest["forgotten"] == 0 and rest["handled_before"] == 2
        assert list(rest["invalid"]) == [next(r["reason"] for r in dead.values
                                              if r["reason"].startswith("payload"))]

        # user forget: the worker deletes the shopper; show then finds nothing.
        sent = _ok(settings, "user", "forget", "u1")
        assert '"type": "forget_user"' in sent and settings.events_topic in sent
        deadline = time.monotonic() + 120
        while _run(settings, "user", "show", "u1").returncode != 1:
            assert time.monotonic() < deadline, "u1 was never forgotten"
            time.sleep(1)
        done = _run(settings, "export", "--out", "-")
        assert "u1" not in {json.loads(line)["user_id"] for line in done.stdout.splitlines()}
    finally:
        worker.stop()
        recs.close()
        dead.close()
