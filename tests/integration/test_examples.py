"""The example producer and consumer in docs/integration.md work against a real worker.

Both scripts run as a storefront would run them (separate processes, configured by flags and
environment variables) against the test broker and a real `stream-rec worker`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from stream_rec.config import Settings
from stream_rec.tools.worker_process import WorkerProcess
from tests.integration.worker_fixtures import isolated_settings

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(script: str, *args: str, env: dict[str, str] | None = None,
                timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True,
                          text=True, timeout=timeout_s, env={**os.environ, **(env or {})},
                          check=False)
    assert done.returncode == 0, f"{script} {args} failed:\n{done.stdout}\n{done.stderr}"
    return done


def wait_for_catalog(worker: WorkerProcess, items: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while worker.get_json("/health/")["catalog_items"] != items:
        assert time.monotonic() < deadline, "the worker never saw the example's catalog"
        time.sleep(0.5)


def metric(worker: WorkerProcess, name: str) -> float:
    for line in worker.get_text("/metrics/").splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics/")


def produce_event(settings: Settings, event_id: str, item: str) -> dict[str, Any]:
    # Broker by flag, topic by environment variable, as the example's docstring says.
    done = run_example("storefront_producer.py", "--broker", settings.broker, "event",
                       "--user", "shopper-7", "--item", item, "--type", "click",
                       "--event-id", event_id, "--session", "s-1",
                       env={"STREAM_REC_EVENTS_TOPIC": settings.events_topic})
    record: dict[str, Any] = json.loads(done.stdout)
    assert record["topic"] == settings.events_topic and record["offset"] >= 0
    return record


def test_producer_and_consumer_examples_against_a_worker(broker: str, new_topic,
                                                         tmp_path: Path) -> None:
    settings = isolated_settings(broker, new_topic, tmp_path)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        for item, category in (("sku-1", "shoes"), ("sku-2", "shoes"), ("sku-3", "hats")):
            run_example("storefront_producer.py", "--broker", broker, "item", item,
                        "--topic", settings.items_topic, "--category", category,
                        "--brand", "acme", "--price", "19.5")
        run_example("storefront_producer.py", "--broker", broker, "item", "sku-3", "--delist",
                    "--topic", settings.items_topic)
        wait_for_catalog(worker, items=2)
        assert metric(worker, "stream_rec_catalog_rejected_total") == 0

        produce_event(settings, "example-event-1", "sku-1")
        env = {"STREAM_REC_BROKER": broker,
               "STREAM_REC_RECOMMENDATIONS_TOPIC": settings.recommendations_topic}
        as_json = run_example("recommendations_consumer.py", "--from-beginning", "--event-id",
                              "example-event-1", "--timeout", "90", "--json", env=env)
        [rec] = [json.loads(line) for line in as_json.stdout.splitlines()]
        assert (rec["user_id"], rec["event_id"]) == ("shopper-7", "example-event-1")
        listed = [i["item_id"] for i in rec["items"]]
        assert listed and "sku-3" not in listed  # delisted by the example's tombstone

        # Re-sending the same event_id (a storefront retry) gets the list again, no new state.
        produce_event(settings, "example-event-1", "sku-1")
        for_people = run_example("recommendations_consumer.py", "--broker", broker, "--topic",
                                 settings.recommendations_topic, "--from-beginning",
                                 "--user", "shopper-7", "--event-id", "example-event-1",
                                 "--timeout", "90")
        line = for_people.stdout.splitlines()[0]
        assert line.startswith("user shopper-7 after event example-event-1, ")
        assert listed[0] in line
        deadline = time.monotonic() + 60
        while metric(worker, "stream_rec_recommendations_total") < 2:
            assert time.monotonic() < deadline, "no list for the re-sent event"
            time.sleep(0.5)
        assert metric(worker, "stream_rec_events_duplicate_total") == 1
        state = worker.get_json("/users/shopper-7/state/")
        assert state["n_events"] == 1

        # The page displays the first item of the event's list: one impression of it.
        shown_before = dict(state["shown"])
        run_example("recommendations_consumer.py", "--from-beginning", "--event-id",
                    "example-event-1", "--timeout", "90", "--impressions", "1",
                    env={**env, "STREAM_REC_EVENTS_TOPIC": settings.events_topic})
        deadline = time.monotonic() + 60
        while metric(worker, "stream_rec_impressions_total") < 1:
            assert time.monotonic() < deadline, "the impression never reached the worker"
            time.sleep(0.5)
        shown = worker.get_json("/users/shopper-7/state/")["shown"]
        assert shown[listed[0]] == shown_before.get(listed[0], 0) + 1
        assert {k: v for k, v in shown.items() if k != listed[0]} == {
            k: v for k, v in shown_before.items() if k != listed[0]}
        assert metric(worker, "stream_rec_recommendations_total") == 2  # no list for it
    finally:
        worker.stop()


def test_consumer_gives_up_after_its_timeout(broker: str, new_topic) -> None:
    topic = new_topic("recs")
    done = subprocess.run([sys.executable, str(EXAMPLES / "recommendations_consumer.py"),
                           "--broker", broker, "--topic", topic, "--event-id", "never",
                           "--timeout", "3"], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 1 and "no list for event never" in done.stderr
