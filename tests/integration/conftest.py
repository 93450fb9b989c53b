"""Integration fixtures that cost real time: a small model trained for real on jdata2018."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def trained_registry(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """A registry whose current version is a real (short) TensorFlow training run, exported
    to ONNX: one epoch over jdata2018 with its item attributes."""
    pytest.importorskip("tensorflow")
    registry = tmp_path_factory.mktemp("registry")
    for args in (["train", "--data", f"events:{data_dir / 'jdata2018'}", "--registry",
                  str(registry), "--epochs", "1", "--no-evaluate"],
                 ["model", "promote", "latest", "--registry", str(registry), "--no-announce"]):
        result = subprocess.run([sys.executable, "-m", "stream_rec.cli", *args],
                                capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr[-3000:]
    return registry
