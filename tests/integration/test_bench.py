"""`stream-rec bench` counts what it claims: every event's output matched by event_id.

Small runs on the real broker with a made-up sessions dataset (the real worker serving its
fallback lists). No assertion here is about speed: the numbers only have to be present, sane
and consistent with each other.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest

from stream_rec.config import load_settings
from stream_rec.serving.stage_clock import STAGES
from stream_rec.tools.bench.benchmark import BenchPlan, run_benchmark
from stream_rec.tools.bench.report import RESULT_KEYS
from stream_rec.tools.bench.topics import delete_run_topics, run_marker
from stream_rec.tools.bench.workload import load_workload
from tests.integration.worker_fixtures import TopicReader

pytestmark = pytest.mark.integration
TARGETS = ("pipeline", "faust_passthrough", "aiokafka_passthrough")


@pytest.fixture
def sessions_spec(tmp_path: Path) -> str:
    """A small dataset in the ``sessions`` format: 400 sessions over 1,000 items."""
    folder = tmp_path / "shop"
    folder.mkdir()
    rng = random.Random(7)
    lines = [" ".join(str(rng.randrange(1, 1000)) for _ in range(rng.randrange(2, 8)))
             for _ in range(400)]
    (folder / "train_sessions.txt").write_text("\n".join(lines) + "\n")
    (folder / "test.tsv").write_text("prefix\ttarget\n1 2 3\t4\n5 6\t7\n")
    return f"sessions:{folder}"


def test_every_event_is_matched_once_and_the_numbers_are_consistent(
        broker: str, sessions_spec: str, tmp_path: Path) -> None:
    # A batch window: Faust's take_events path end to end (the other tests run the default).
    settings = load_settings({}, broker=broker, partitions=2, batch_wait_ms=5)
    workload = load_workload(sessions_spec, settings)
    plan = BenchPlan(events=300, rate=200.0, latency_events=150, warmup_events=30,
                     concurrency=50, data=sessions_spec)
    run_id = uuid.uuid4().hex[:8]
    registry = tmp_path / "no-model"
    registry.mkdir()
    try:
        bench = run_benchmark(plan, settings, workload, run_id, tmp_path / "work", registry)
        recs = TopicReader(broker, f"{run_marker(run_id)}-pipeline.recs")
        published = recs.wait_for(lambda v: len(v) >= 480, 60)
        recs.close()
    finally:
        delete_run_topics(settings, run_id)

    sent = {"pipeline": 30 + 300 + 150, "faust_passthrough": 330, "aiokafka_passthrough": 330}
    for name in TARGETS:
        checks = bench.targets[name].checks
        assert checks == {"sent": sent[name], "matched": sent[name], "missing": 0,
                          "duplicates": 0, "unknown": 0}, name

    # Independently of the bench's own parser: every list on the topic, decoded in full.
    ids = Counter(r["event_id"] for r in published)
    assert len(ids) == 480 and set(ids.values()) == {1}
    assert {i.split(":")[1] for i in ids} == {"warmup", "throughput", "latency"}
    assert all(r["user_id"] and len(r["items"]) <= 20 for r in published)

    result = bench.result
    assert tuple(result)[:len(RESULT_KEYS)] == RESULT_KEYS
    assert result["events"] == 300 and result["offered_rate"] == 200.0
    for key in ("pipeline_events_per_s", "faust_passthrough_events_per_s",
                "aiokafka_passthrough_events_per_s"):
        assert result[key] > 0
    assert result["ratio_vs_faust"] == pytest.approx(
        result["pipeline_events_per_s"] / result["faust_passthrough_events_per_s"], abs=1e-3)
    latency = result["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
    # Every latency-phase list says how long the worker took; the parts add up to the
    # latency, so their medians cannot exceed its p99 and the worker's own share is positive.
    parts = result["latency_parts_ms"]
    assert set(parts) == {"to_worker", "in_worker", "from_worker"}
    assert 0 < parts["in_worker"]["p50"] <= latency["p99"]
    assert parts["from_worker"]["p50"] > 0
    assert len(bench.targets["pipeline"].latency_parts["in_worker"]) == 150
    assert result["catalog_items"] == len(workload.catalog)
    assert (result["candidates"], result["k"]) == (200, 20)
    assert result["worker_rss_mb"]["peak"] >= result["worker_rss_mb"]["current"] > 0
    assert set(result["stages_us"]) == set(STAGES)
    assert all(v is None or v >= 0 for v in result["stages_us"].values())


def test_cli_prints_exactly_one_json_object(broker: str, sessions_spec: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "stream_rec.cli", "bench", "--broker", broker,
         "--data", sessions_spec, "--events", "100", "--latency-events", "50",
         "--warmup-events", "10", "--rate", "100", "--no-model", "--targets", "pipeline",
         "--state-users", "3000", "--json"],
        capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)  # one object, nothing else on stdout
    assert tuple(result)[: len(RESULT_KEYS)] == RESULT_KEYS
    assert result["pipeline_events_per_s"] > 0
    assert result["faust_passthrough_events_per_s"] is None and result["ratio_vs_faust"] is None
    assert result["state_users"] == 3000
    assert 0 < result["state_bytes_per_user"] <= result["state_max_bytes_per_user"]
    assert result["rocksdb_bytes"] > 0
    assert "pipeline throughput" in out.stderr  # progress goes to stderr


def test_soak_reports_lag_memory_and_counts(broker: str, sessions_spec: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "stream_rec.cli", "bench", "--broker", broker,
         "--data", sessions_spec, "--soak", "12s", "--rate", "40", "--sample", "3",
         "--warmup-events", "10", "--no-model", "--json"],
        capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    soak = json.loads(out.stdout)
    why = f"{soak}\n{out.stderr[-3000:]}"  # a failure on a busy machine must say what it saw
    assert soak["events_in"] == 480 == soak["recommendations_out"], why
    assert len(soak["lag"]) >= 3, why
    assert all(s["committed_lag"] is None or s["committed_lag"] >= 0 for s in soak["lag"]), why
    assert soak["lag"][-1]["in_flight"] == 0, why
    assert soak["rss_mb"]["start"] > 0 and soak["rss_mb"]["end"] > 0, why


@pytest.mark.slow
def test_full_bench_with_the_real_catalog_and_model(broker: str, data_dir: Path) -> None:
    """The documented run: diginetica's 43,097 items and a served model (trained for one
    epoch into ~/.cache/stream-rec/bench-model on first use, ~10 minutes on 2 cores)."""
    out = subprocess.run(
        [sys.executable, "-m", "stream_rec.cli", "bench", "--broker", broker,
         "--data", f"sessions:{data_dir / 'diginetica'}", "--events", "3000",
         "--latency-events", "1000", "--json"],
        capture_output=True, text=True, timeout=3600, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert tuple(result)[:len(RESULT_KEYS)] == RESULT_KEYS
    assert result["catalog_items"] == 43_097
    assert "model served: none" not in out.stderr
    assert all(result[k] > 0 for k in ("pipeline_events_per_s", "faust_passthrough_events_per_s",
                                       "aiokafka_passthrough_events_per_s"))


def test_hot_swap_under_traffic_reports_memory_and_keeps_every_event(
        broker: str, data_dir: Path, trained_registry: Path) -> None:
    """The worker swaps to a staged copy of its model while events flow; the caller's
    registry is not touched, and every event sent during the swap gets its list."""
    from stream_rec.model.registry import FileRegistry

    registry = FileRegistry(trained_registry)
    versions, current = registry.versions(), registry.current()
    out = subprocess.run(
        [sys.executable, "-m", "stream_rec.cli", "bench", "--broker", broker,
         "--data", f"events:{data_dir / 'jdata2018'}", "--registry", str(trained_registry),
         "--targets", "pipeline", "--events", "100", "--latency-events", "0",
         "--warmup-events", "20", "--rate", "50", "--hot-swap", "--json"],
        capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    swap = json.loads(out.stdout)["hot_swap"]
    why = f"{swap}\n{out.stderr[-3000:]}"
    assert swap["version"].startswith(f"{current}-swap"), why
    assert swap["events"] >= 200 and swap["latency_ms"]["p99"] > 0, why  # two rounds at least
    assert swap["swap_s"] > 0 and swap["rss_before_mb"] > 0, why
    if swap["peak_since_announcement"]:
        assert swap["peak_rss_mb"] >= swap["rss_before_mb"], why
    assert swap["rss_after_mb"] > 0, why
    assert (registry.versions(), registry.current()) == (versions, current)
