"""The trainer's promotion gate, on real trained models and a real registry."""

from __future__ import annotations

import pytest

from stream_rec.config import load_settings
from stream_rec.model import FileRegistry
from tests.training.conftest import SMALL
from training.promotion import promotion_decision

tf = pytest.importorskip("tensorflow")


def test_gate_rules():
    assert promotion_decision({"MRR@20": 10.0}, None, "MRR@20", 0.02).promote
    assert promotion_decision({"MRR@20": 9.9}, {"MRR@20": 10.0}, "MRR@20", 0.02).promote
    refused = promotion_decision({"MRR@20": 9.0}, {"MRR@20": 10.0}, "MRR@20", 0.02)
    assert not refused.promote and "9.0000 < 9.8000" in refused.reason
    assert not promotion_decision({}, {"MRR@20": 1.0}, "MRR@20", 0.02).promote


def test_trainer_refuses_a_worse_model_and_keeps_the_current_one(shop, trained, tmp_path):
    from training.retrain import retrain_round
    from training.train import TrainConfig

    _, good = trained
    registry = FileRegistry(tmp_path / "registry")
    registry.publish(good, announce=False)
    settings = load_settings({}, promotion_metric="MRR@20", promotion_tolerance=0.05)
    # next to no learning: a model that is clearly worse than the current one
    bad = TrainConfig(**{**SMALL, "epochs": 1, "learning_rate": 1e-6})
    result = retrain_round(shop, "synthetic", registry, settings, bad, announce=False,
                           warm_start=False, progress=lambda line: None)
    assert not result.decision.promote
    assert result.current_metrics is not None
    assert result.candidate_metrics["MRR@20"] < result.current_metrics["MRR@20"]
    assert registry.current() == "v1"
    assert registry.versions() == ["v1"]  # the refused candidate is not kept
    assert not list(registry.root.glob(".build-*"))


def test_trainer_promotes_a_model_that_is_not_worse(shop, trained, tmp_path):
    from training.retrain import retrain_round
    from training.train import TrainConfig

    _, good = trained
    registry = FileRegistry(tmp_path / "registry")
    registry.publish(good, announce=False)
    settings = load_settings({}, promotion_tolerance=0.05)
    config = TrainConfig(**{**SMALL, "epochs": 2})
    result = retrain_round(shop, "synthetic", registry, settings, config, announce=False,
                           progress=lambda line: None)
    assert result.decision.promote, result.decision.reason
    assert registry.current() == result.candidate_version != "v1"
    manifest = registry.load().manifest
    assert manifest["training"]["warm_start_from"] == "v1"
    assert registry.rollback() == "v1"
