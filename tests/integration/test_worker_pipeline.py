"""The worker end to end on a real broker: validation, DLQ, state, lists, HTTP, restarts.

Replays the jdata2018 test events as a storefront would send them, mixed with malformed
messages and retried (duplicate) events.
"""

from __future__ import annotations

import base64
import csv
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from stream_rec.tools.worker_process import WorkerProcess
from tests.integration.worker_fixtures import TopicReader, event_bytes, isolated_settings, produce

pytestmark = pytest.mark.integration

TYPE_OF = {"view": "view", "purchase": "purchase", "follow": "add_to_cart", "comment": "click"}

MALFORMED: list[tuple[bytes, str]] = [
    (b"not json at all", "bad JSON"),
    (b"\xff\xfe\xfd", "not UTF-8"),
    (b"[1, 2, 3]", "expected a JSON object"),
    (json.dumps({"event_id": "m1", "user_id": "u", "item_id": "i", "type": "like",
                 "ts": 1_700_000_000_000}).encode(), "unknown event type"),
    (json.dumps({"event_id": "m2", "user_id": "u", "type": "view",
                 "ts": 1_700_000_000_000}).encode(), "missing field 'item_id'"),
    (json.dumps({"event_id": "m3", "user_id": ["u"], "item_id": "i", "type": "view",
                 "ts": 1_700_000_000_000}).encode(), "must be a string"),
    (json.dumps({"event_id": "m4", "user_id": "u", "item_id": "i", "type": "view",
                 "ts": -1}).encode(), "outside"),
    (b'{"pad": "' + b"x" * 70_000 + b'"}', "exceeds"),
    (b"[" * 3000 + b"]" * 3000, "nested too deeply"),
]


def _jdata_events(data_dir: Path) -> list[dict[str, Any]]:
    with open(data_dir / "jdata2018" / "events_test.csv", newline="") as fh:
        return [{"event_id": f"jd-{n}", "user_id": row["user_id"], "item_id": row["item_id"],
                 "type": TYPE_OF[row["event"]], "ts": row["timestamp"].replace(" ", "T"),
                 "session_id": row["session_id"]}
                for n, row in enumerate(csv.DictReader(fh))]


def _catalog(data_dir: Path) -> list[tuple[bytes, bytes]]:
    with open(data_dir / "jdata2018" / "items.csv", newline="") as fh:
        return [(row.pop("item_id").encode(), json.dumps(row).encode())
                for row in csv.DictReader(fh)]


def test_replay_with_malformed_and_duplicate_events(broker: str, new_topic, tmp_path: Path,
                                                    data_dir: Path,
                                                    trained_registry: Path) -> None:
    settings = isolated_settings(broker, new_topic, tmp_path,
                                 registry_dir=str(trained_registry))
    events = _jdata_events(data_dir)
    produce(broker, settings.items_topic, _catalog(data_dir))
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    recs = TopicReader(broker, settings.recommendations_topic)
    dlq = TopicReader(broker, settings.dlq_topic)
    try:
        messages = []
        for n, event in enumerate(events):
            messages.append(event_bytes(event))
            if n % 250 == 0:  # a retrying storefront sends some events twice
                messages.append(event_bytes(event))
            if n % (len(events) // len(MALFORMED)) == 0 and n // 251 < len(MALFORMED):
                messages.append((b"bad-user", MALFORMED[n // 251][0]))
        sent_malformed = [m for k, m in messages if k == b"bad-user"]
        produce(broker, settings.events_topic, messages)
        valid_ids = {e["event_id"] for e in events}
        recs.wait_for(lambda v: {r["event_id"] for r in v} >= valid_ids, 300,
                      alive=lambda: _alive(worker))
        dlq.wait_for(lambda v: len(v) >= len(sent_malformed), 60)
        state = worker.get_json(f"/users/{events[0]['user_id']}/state/")
        latest = worker.get_json(f"/users/{events[-1]['user_id']}/recommendations/")
    finally:
        worker.stop()
        recs.close()
        dlq.close()

    by_event: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in recs.values:
        by_event[rec["event_id"]].append(rec)
    # exactly the valid events got lists (duplicates may repeat a list; nothing else appears)
    assert set(by_event) == valid_ids
    # a list never holds what the shopper had bought by then
    bought: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if event["type"] == "purchase":
            bought[event["user_id"]].add(event["item_id"])
        for rec in by_event[event["event_id"]]:
            assert rec["user_id"] == event["user_id"]
            listed = {i["item_id"] for i in rec["items"]}
            assert not listed & bought[event["user_id"]], event
            assert len(rec["items"]) <= settings.list_length
            assert rec["policy"]["method"] in {"dpp", "mmr", "none"}
            assert rec["model_version"] and not rec["fallback"]
    assert sum(len(r) for r in by_event.values()) >= len(events)
    # every malformed message is in the DLQ, with a reason and its exact bytes
    assert len(dlq.values) == len(sent_malformed)
    assert sorted(base64.b64decode(d["raw_base64"]) for d in dlq.values) == sorted(sent_malformed)
    for record, (_, reason) in zip(sorted(dlq.values, key=lambda d: d["offset"]), MALFORMED,
                                   strict=False):
        assert reason in record["reason"]
        assert record["topic"] == settings.events_topic and record["offset"] >= 0
    # state and the HTTP API agree with what was sent
    first_user = events[0]["user_id"]
    user_events = [e for e in events if e["user_id"] == first_user]
    assert state["n_events"] == len(user_events)
    assert [h["item_id"] for h in state["history"]] == \
        [e["item_id"] for e in user_events][-settings.history_length:]
    last_for_user = [r for r in recs.values if r["user_id"] == events[-1]["user_id"]][-1]
    assert latest == last_for_user


def test_state_survives_restart(broker: str, new_topic, tmp_path: Path) -> None:
    settings = isolated_settings(broker, new_topic, tmp_path)
    produce(broker, settings.items_topic, [(b"shoe-1", b'{"category": "shoes"}'),
                                           (b"bag-1", b'{"category": "bags"}')])

    def click(n: int, item: str) -> tuple[bytes, bytes]:
        return event_bytes({"event_id": f"c{n}", "user_id": "alice", "item_id": item,
                            "type": "purchase" if n == 2 else "click",
                            "ts": 1_700_000_000_000 + n})

    recs = TopicReader(broker, settings.recommendations_topic)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        produce(broker, settings.events_topic, [click(n, "shoe-1") for n in range(3)])
        recs.wait_for(lambda v: len(v) >= 3, 120, alive=lambda: _alive(worker))
        before = worker.get_json("/users/alice/state/")
    finally:
        worker.stop()
    # a new worker process on the same state folder, and then on an empty one (changelog)
    for wipe in (False, True):
        if wipe:
            import shutil

            shutil.rmtree(settings.state_dir)
        worker = WorkerProcess(settings, tmp_path / f"worker-{wipe}.log").start()
        try:
            after = worker.get_json("/users/alice/state/")
        finally:
            worker.stop()
        assert after == before
    assert before["n_events"] == 3 and before["purchased"] == ["shoe-1"]
    recs.close()


def _alive(worker: WorkerProcess) -> None:
    assert worker.proc is not None
    if worker.proc.poll() is not None:
        raise AssertionError(f"worker died:\n{worker.log_tail()}")


def test_forget_user_deletes_state_everywhere_and_survives_restart(broker: str, new_topic,
                                                                   tmp_path: Path) -> None:
    settings = isolated_settings(broker, new_topic, tmp_path, http_token="s3cret")

    def event(n: int, user: str) -> tuple[bytes, bytes]:
        return event_bytes({"event_id": f"{user}-{n}", "user_id": user, "item_id": f"i{n}",
                            "type": "view", "ts": 1_700_000_000_000 + n})

    recs = TopicReader(broker, settings.recommendations_topic)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        produce(broker, settings.events_topic, [event(n, u) for n in range(3)
                                                for u in ("bob", "carol")])
        recs.wait_for(lambda v: len(v) >= 6, 120, alive=lambda: _alive(worker))
        # the API wants the bearer token (health stays open for probes)
        assert _status(worker, "/users/bob/state/", token=None) == 401
        assert _status(worker, "/users/bob/state/", token="wrong") == 401
        assert _status(worker, "/health/", token=None) == 200
        assert worker.get_json("/users/bob/state/", token="s3cret")["n_events"] == 3
        produce(broker, settings.events_topic,
                [(b"bob", json.dumps({"type": "forget_user", "user_id": "bob",
                                      "request_id": "gdpr-1"}).encode())])
        _wait_until(lambda: _status(worker, "/users/bob/state/") == 404, 60)
        # The stored list went too: the API answers as for a shopper never seen.
        forgotten = worker.get_json("/users/bob/recommendations/", token="s3cret")
        assert forgotten["pool"]["kind"] == "new_shopper" and forgotten["pool"]["list_id"] is None
        assert worker.get_json("/users/carol/state/", token="s3cret")["n_events"] == 3
    finally:
        worker.stop()
    import shutil

    shutil.rmtree(settings.state_dir)  # only the changelog is left to restore from
    worker = WorkerProcess(settings, tmp_path / "worker2.log").start()
    try:
        assert _status(worker, "/users/bob/state/") == 404
        # The stored list went too: the API answers as for a shopper never seen.
        forgotten = worker.get_json("/users/bob/recommendations/", token="s3cret")
        assert forgotten["pool"]["kind"] == "new_shopper" and forgotten["pool"]["list_id"] is None
        assert worker.get_json("/users/carol/state/", token="s3cret")["n_events"] == 3
    finally:
        worker.stop()
        recs.close()


def _status(worker: WorkerProcess, path: str, token: str | None = "s3cret") -> int:
    from stream_rec.tools.worker_process import http_status

    return http_status(worker.base_url + path, token)


def _wait_until(condition, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
    import time

    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.5)
