"""`stream-rec train` then `stream-rec evaluate --json`, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.training.synthetic import make_shop, write_events_folder

pytest.importorskip("tensorflow")
ROOT = Path(__file__).resolve().parents[2]
SMALL_ENV = {"STREAM_REC_EMBEDDING_DIM": "16", "STREAM_REC_TRAIN_BATCH_SIZE": "128",
             "STREAM_REC_TRAIN_NEGATIVES": "64", "STREAM_REC_LEARNING_RATE": "0.01",
             "STREAM_REC_MAX_HISTORY": "8", "STREAM_REC_EVAL_BATCH_SIZE": "64"}


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **SMALL_ENV, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run([sys.executable, "-m", "stream_rec.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def test_train_then_evaluate_json(tmp_path):
    data = write_events_folder(make_shop(n_items=60, n_categories=6, n_train=300, n_test=40),
                               tmp_path / "shop")
    registry = tmp_path / "registry"
    trained = _cli("train", "--data", f"events:{data}", "--registry", str(registry),
                   "--epochs", "3")
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "model version" in trained.stdout and "offline metrics" in trained.stdout
    assert "epoch 3/3" in trained.stderr  # progress goes to stderr
    out = _cli("evaluate", "--model", "latest", "--registry", str(registry),
               "--data", f"events:{data}", "--k", "10", "--json", "--threads", "1")
    assert out.returncode == 0, out.stderr[-2000:]
    metrics = json.loads(out.stdout)  # stdout holds exactly one JSON object
    for key in ("n_cases", "P@10", "MRR@10", "NDCG@10", "catalog_coverage@10", "ILD@10",
                "categories@10"):
        assert key in metrics, key
    assert metrics["n_cases"] == 40 * 5
    assert metrics["P@10"] > 3 * 100 * 10 / 60
    reranked = _cli("evaluate", "--model", "latest", "--registry", str(registry), "--data",
                    f"events:{data}", "--k", "10", "--json", "--rerank", "dpp", "--theta",
                    "0.9", "--threads", "1")
    assert reranked.returncode == 0, reranked.stderr[-2000:]
    diverse = json.loads(reranked.stdout)
    assert diverse["rerank"] == {"method": "dpp", "param": 0.9}
    assert diverse["ILD@10"] > metrics["ILD@10"]


def test_clear_error_for_a_missing_dataset(tmp_path):
    out = _cli("train", "--data", f"sessions:{tmp_path / 'nothing'}", "--registry",
               str(tmp_path / "r"))
    assert out.returncode == 2
    assert "does not exist" in out.stderr
    assert "Traceback" not in out.stderr


def test_trainer_once_runs_on_the_settings_without_every(tmp_path, monkeypatch):
    import training.retrain
    from stream_rec.cli import main

    calls = []

    def fake_run_trainer(load, data_spec, registry, settings, config, every_ms, once=False,
                         announce=True):
        calls.append((data_spec, registry.root, every_ms, once, announce))
        return 0

    monkeypatch.setattr(training.retrain, "run_trainer", fake_run_trainer)
    for name in [n for n in os.environ if n.startswith("STREAM_REC_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("STREAM_REC_RETRAIN_EVERY_MS", "21600000")
    assert main(["trainer", "--once", "--registry", str(tmp_path / "r"), "--no-announce"]) == 0
    assert calls == [("kafka:storefront.events", tmp_path / "r", 21_600_000, True, False)]
    calls.clear()
    assert main(["trainer", "--once", "--every", "2h", "--registry", str(tmp_path)]) == 0
    assert calls[0][2] == 7_200_000
