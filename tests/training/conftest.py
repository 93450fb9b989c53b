"""A small trained model shared by the training tests (trained once per session, seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.synthetic import make_shop

tf = pytest.importorskip("tensorflow")

SMALL = {"epochs": 6, "batch_size": 128, "negatives": 0, "dim": 32, "max_history": 10,
         "learning_rate": 0.01, "cold_item_rate": 0.15}


@pytest.fixture(scope="session")
def shop():
    """200 known items + 40 items that only appear in test sessions (attributes only)."""
    return make_shop(n_items=240, n_known=200, cold_test_share=0.3, n_train=1500, n_test=300)


@pytest.fixture(scope="session")
def trained(shop, tmp_path_factory):
    """(TrainResult, artifact folder) of the hybrid model on the generated shop."""
    from training.export import export_artifact
    from training.train import TrainConfig, train_model

    result = train_model(shop, TrainConfig(**SMALL), progress=lambda line: None)
    folder: Path = tmp_path_factory.mktemp("artifact") / "v1"
    export_artifact(result, folder, {"version": "v1"})
    return result, folder
