"""An experiment started and stopped with the CLI reaches a running worker, no restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stream_rec.tools.worker_process import WorkerProcess, settings_env
from tests.integration.worker_fixtures import TopicReader, event_bytes, isolated_settings, produce

pytestmark = pytest.mark.integration


def _cli(settings, *args: str) -> str:  # type: ignore[no-untyped-def]
    done = subprocess.run([sys.executable, "-m", "stream_rec.cli", "experiment", *args],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, **settings_env(settings)})
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_an_experiment_splits_shoppers_between_its_arms(broker: str, new_topic,
                                                        tmp_path: Path) -> None:
    settings = isolated_settings(broker, new_topic, tmp_path)
    produce(broker, settings.items_topic,
            [(f"i{n}".encode(), json.dumps({"category": f"c{n % 3}"}).encode())
             for n in range(30)])
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    recs = TopicReader(broker, settings.recommendations_topic)
    sent = 0

    def send(prefix: str, users: int) -> set[str]:
        nonlocal sent
        ids = set()
        events = []
        for n in range(users):
            sent += 1
            ids.add(f"{prefix}-{sent}")
            events.append(event_bytes({"event_id": f"{prefix}-{sent}", "user_id": f"u{n}",
                                       "item_id": f"i{n % 30}", "type": "view",
                                       "ts": 1_750_000_000_000 + sent}))
        produce(broker, settings.events_topic, events)
        return ids

    def lists_for(ids: set[str]) -> list[dict]:  # type: ignore[type-arg]
        recs.wait_for(lambda v: ids <= {r["event_id"] for r in v}, 120)
        return [r for r in recs.values if r["event_id"] in ids]

    try:
        assert all(r["experiment"] is None for r in lists_for(send("before", 5)))
        out = _cli(settings, "start", "exp-1", "--arms", "plain=none,diverse=mmr:0.5",
                   "--weights", "1,1", "--json")
        assert json.loads(out)["running"] is True
        # The worker follows the topic on its own: wait until its lists name the experiment.
        deadline = time.monotonic() + 60
        while not any(r["experiment"] for r in lists_for(send("probe", 1))):
            assert time.monotonic() < deadline, "the worker never picked up the experiment"
        in_experiment = lists_for(send("during", 40))
        arms = {r["experiment"]["arm"]: r["policy"]["method"] for r in in_experiment}
        assert arms == {"plain": "none", "diverse": "mmr"}
        # A shopper stays in their arm.
        by_user: dict[str, set[str]] = {}
        for r in in_experiment + lists_for(send("again", 40)):
            by_user.setdefault(r["user_id"], set()).add(r["experiment"]["arm"])
        assert all(len(arms) == 1 for arms in by_user.values())
        listed = json.loads(_cli(settings, "list", "--json"))["experiments"]
        assert [e["id"] for e in listed] == ["exp-1"]

        _cli(settings, "stop", "exp-1")
        deadline = time.monotonic() + 60
        while any(r["experiment"] for r in lists_for(send("after", 3))):
            assert time.monotonic() < deadline, "the worker never stopped the experiment"
        # The online figures count per arm (the gauge is refreshed every 5 s).
        deadline = time.monotonic() + 60
        while 'arm="diverse",experiment="exp-1"' not in worker.get_text("/metrics/"):
            assert time.monotonic() < deadline, "no online figures for the arm"
            time.sleep(0.5)
    finally:
        worker.stop()
        recs.close()


def test_a_model_arm_is_served_beside_the_current_model(broker: str, new_topic, tmp_path: Path,
                                                        data_dir: Path,
                                                        trained_registry: Path) -> None:
    """An arm that pins another model version: its shoppers' lists come from that version,
    the others' from the current one, in one worker, with the cost in memory reported."""
    import shutil

    from tests.integration.test_worker_model import _republish
    from tests.integration.test_worker_pipeline import _catalog, _jdata_events

    registry = tmp_path / "registry"
    shutil.copytree(trained_registry, registry)
    _republish(registry, "arm-v2")  # the same weights under another version name
    settings = isolated_settings(broker, new_topic, tmp_path, registry_dir=str(registry))
    produce(broker, settings.items_topic, _catalog(data_dir))
    _cli(settings, "start", "models", "--arms", "current=dpp:0.15,candidate=dpp:0.15@arm-v2")
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    recs = TopicReader(broker, settings.recommendations_topic)
    try:
        events = _jdata_events(data_dir)[:600]
        produce(broker, settings.events_topic, [event_bytes(e) for e in events])
        wanted = {e["event_id"] for e in events}
        recs.wait_for(lambda v: {r["event_id"] for r in v} >= wanted, 180)
        by_arm: dict[str, set[str]] = {}
        for rec in recs.values:
            by_arm.setdefault(rec["experiment"]["arm"], set()).add(rec["model_version"])
        current = json.loads(worker.get_text("/health/"))["model_version"]
        assert by_arm == {"current": {current}, "candidate": {"arm-v2"}}
        metrics = worker.get_text("/metrics/")
        line = next(m for m in metrics.splitlines()
                    if m.startswith('stream_rec_model_arm_resident_bytes{version="arm-v2"}'))
        assert float(line.split()[-1]) > 0
    finally:
        worker.stop()
        recs.close()
