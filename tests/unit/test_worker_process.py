"""A worker process that does not come up is not left running behind the caller's back."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_rec.config import load_settings
from stream_rec.tools.worker_process import WorkerProcess
from tests.helpers import free_port


def test_a_worker_that_never_gets_healthy_is_stopped(tmp_path: Path) -> None:
    # Half a second is far less than a worker needs to import and start (and nothing listens
    # on the broker port, so it could never become healthy anyway).
    settings = load_settings({}, broker=f"127.0.0.1:{free_port()}", web_port=free_port(),
                             state_dir=str(tmp_path / "state"),
                             registry_dir=str(tmp_path / "registry"))
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    with pytest.raises(TimeoutError):
        worker.start(wait_s=0.5)
    assert worker.proc is not None
    assert worker.proc.poll() is not None  # killed, not orphaned
