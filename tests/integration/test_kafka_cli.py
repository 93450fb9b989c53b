"""`stream-rec kafka start|status|stop` on a port of its own: idempotent start, clean stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import free_port_pair

pytestmark = pytest.mark.integration


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stream_rec.cli", "kafka", *args],
                          capture_output=True, text=True, check=False, env=os.environ.copy())


def test_start_twice_status_stop(tmp_path: Path) -> None:
    if os.environ.get("STREAM_REC_BROKER"):
        pytest.skip("an external broker is in use")
    port = str(free_port_pair())
    flags = ["--port", port, "--data-dir", str(tmp_path / "kafka"), "--json"]
    started = _cli("start", *flags)
    try:
        assert started.returncode == 0, started.stderr
        first = json.loads(started.stdout)
        assert first["running"] and first["bootstrap"] == f"127.0.0.1:{port}"
        again = _cli("start", *flags)
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["pid"] == first["pid"]  # harmless: same broker
        status = _cli("status", *flags)
        assert status.returncode == 0 and json.loads(status.stdout)["running"]
    finally:
        stopped = _cli("stop", *flags)
    assert json.loads(stopped.stdout) == {"stopped": True}
    after = _cli("status", *flags)
    assert after.returncode == 1 and not json.loads(after.stdout)["running"]
    assert not Path(f"/proc/{first['pid']}").exists() or \
        Path(f"/proc/{first['pid']}/stat").read_text().split(") ")[-1].startswith("Z")
