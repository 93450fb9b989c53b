"""`stream-rec demo --data SPEC` streams a real dataset, runs unattended and exits cleanly.

(The default data, the synthetic storefront, and the live page are in test_demo_page.py.)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import free_port, free_port_pair

pytestmark = pytest.mark.integration


def test_demo_streams_and_stops(tmp_path: Path, trained_registry: Path, data_dir: Path) -> None:
    if os.environ.get("STREAM_REC_BROKER"):
        pytest.skip("the demo starts its own broker")
    port = free_port_pair()
    env = {**os.environ, "STREAM_REC_KAFKA_DATA_DIR": str(tmp_path / "kafka"),
           "STREAM_REC_STATE_DIR": str(tmp_path / "state"),
           "STREAM_REC_WEB_PORT": str(free_port()), "STREAM_REC_DEMO_PORT": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "stream_rec.cli", "demo", "--port", str(port), "--duration", "25",
         "--registry", str(trained_registry), "--rate", "40",
         "--data", f"events:{data_dir / 'jdata2018'}"],
        capture_output=True, text=True, env=env, timeout=400, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    served = [int(n) for n in re.findall(r"lists out (\d+)", result.stdout)]
    assert served and served[-1] > 0, result.stdout
    assert "Serving model" in result.stdout  # the registry's jdata2018 model fits the data
    assert "Stopped the worker." in result.stdout and "Stopped Kafka." in result.stdout
