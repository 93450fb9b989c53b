"""The bench stops waiting for a worker whose events agent keeps failing (/health/ says so)."""

from __future__ import annotations

import io
import time
import urllib.error
from pathlib import Path

import pytest

from stream_rec.config import load_settings
from stream_rec.tools.bench.harness import BenchError
from stream_rec.tools.bench.pipeline import FAILING_FOR_S, PipelineTarget, _error_body
from stream_rec.tools.bench.workload import Workload


def _target(tmp_path: Path) -> PipelineTarget:
    return PipelineTarget(load_settings({}), Workload("w", (), (), {}), tmp_path)


def test_a_worker_failing_long_enough_stops_the_wait(tmp_path: Path) -> None:
    target = _target(tmp_path)
    target.check_alive()  # not started, not failing: nothing to say
    target._failure = "PartitionsMismatch: 0 partitions"
    target._failing_since = time.monotonic() - FAILING_FOR_S / 2
    target.check_alive()  # a crash the agent may recover from
    target._failing_since = time.monotonic() - FAILING_FOR_S - 1
    with pytest.raises(BenchError, match="keeps failing .PartitionsMismatch"):
        target.check_alive()


def test_the_body_of_a_503_is_read() -> None:
    error = urllib.error.HTTPError("http://x/health/", 503, "unavailable", {},  # type: ignore[arg-type]
                                   io.BytesIO(b'{"status": "failing", "detail": "boom"}'))
    assert _error_body(error) == {"status": "failing", "detail": "boom"}
    assert _error_body(ConnectionRefusedError()) is None
