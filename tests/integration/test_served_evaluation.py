"""`stream-rec replay --evaluate`: a real worker serves the test split, every list is scored.

The command's figures are checked against a recount made here from the raw recommendations
topic and the dataset's own sessions, by other code than the command's pairing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from stream_rec.config import load_settings
from stream_rec.datasets import load_dataset
from stream_rec.offline.replay import dataset_events

pytestmark = pytest.mark.integration


def _recommendations(broker: str, topic: str, expected: int) -> dict[str, list[str]]:
    """event_id -> the first list's item ids, reading the topic until ``expected`` are in."""
    consumer = KafkaConsumer(topic, bootstrap_servers=broker, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=20_000)
    lists: dict[str, list[str]] = {}
    try:
        for record in consumer:
            message = json.loads(record.value)
            lists.setdefault(message["event_id"], [i["item_id"] for i in message["items"]])
            if len(lists) >= expected:
                break
    finally:
        consumer.close()
    return lists


def test_the_served_lists_are_scored_against_the_next_event(
        broker: str, tmp_path: Path, data_dir: Path, trained_registry: Path) -> None:
    registry = tmp_path / "registry"
    shutil.copytree(trained_registry, registry)
    spec = f"events:{data_dir / 'jdata2018'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_REC_")}
    done = subprocess.run(
        [sys.executable, "-m", "stream_rec.cli", "replay", "--data", spec, "--evaluate",
         "--broker", broker, "--registry", str(registry), "--keep-topics", "--json"],
        env={**env, "STREAM_REC_STATE_DIR": str(tmp_path / "state")},
        capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)

    dataset = load_dataset(spec, load_settings())
    sent = [json.loads(e.value) for e in dataset_events(dataset, "test")]
    assert out["events_sent"] == out["lists_received"] == len(sent)
    assert out["cases_without_list"] == 0 and out["fallback_share"] == 0.0
    assert out["n_cases"] == len(dataset.test_cases())

    # The recount: each session's events in the order they were sent; a case is an event and
    # the one after it in the same session.
    by_session: dict[str, list[dict[str, str]]] = defaultdict(list)
    for event in sent:
        by_session[event["session_id"]].append(event)
    topic = out["topics"].removesuffix("*") + "recommendations"
    lists = _recommendations(broker, topic, len(sent))
    hits = cases = 0
    reciprocal = 0.0
    for events in by_session.values():
        for event, following in zip(events, events[1:], strict=False):
            cases += 1
            listed = lists[event["event_id"]][:20]
            if following["item_id"] in listed:
                hits += 1
                reciprocal += 1.0 / (listed.index(following["item_id"]) + 1)
    assert cases == out["n_cases"]
    assert out["P@20"] == pytest.approx(100.0 * hits / cases, abs=1e-3)
    assert out["MRR@20"] == pytest.approx(100.0 * reciprocal / cases, abs=1e-3)
    assert out["P@20"] > 0 and out["ILD@20"] > 0  # jdata2018 items have categories
