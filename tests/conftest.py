"""Shared fixtures: a real Kafka broker and per-test topic names.

The broker named by ``STREAM_REC_BROKER`` is used when set; otherwise the project's own local
broker (stream_rec.tools.broker) is started on a free port in a temporary folder for the test
session and stopped at its end.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from stream_rec.config import load_settings
from stream_rec.tools.broker import LocalBroker
from tests.helpers import free_port_pair

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("STREAM_REC_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, Any, None]:
    """A failed test that ran worker processes shows the end of each worker's log.

    Integration failures are timing-dependent and often seen only on another machine; the
    workers' own account of their rebalances and offsets is what explains them.
    """
    outcome = yield
    report = outcome.get_result()
    tmp_path = getattr(item, "funcargs", {}).get("tmp_path")
    if not report.failed or not isinstance(tmp_path, Path):
        return
    logs = sorted(tmp_path.glob("*.log"))
    texts = {log.name: log.read_text(errors="replace") for log in logs}
    for name, text in texts.items():
        report.sections.append((f"worker log {name} (last 6000 chars)", text[-6000:]))
    # Last, so that a report cut in the middle still shows it: every worker's rebalances,
    # resume offsets and warnings, from start to end.
    for name, text in texts.items():
        lines = [line[:300] for line in text.splitlines() if _NOTABLE.search(line)]
        report.sections.append((f"worker log {name}: rebalances and warnings",
                                "\n".join(lines[-80:])))


_NOTABLE = re.compile(r"\[(WARNING|ERROR|CRITICAL)\]|resuming at committed|never reached|"
                      r"Executing _on_partitions_assigned|Revoking previously|generation id \d")


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address ("host:port") of a real Kafka broker."""
    external = os.environ.get("STREAM_REC_BROKER")
    if external:
        yield external
        return
    settings = load_settings(kafka_port=free_port_pair(), kafka_controller_port=0)
    local = LocalBroker(settings, data_dir=tmp_path_factory.mktemp("kafka"))
    local.start(timeout_s=180)
    try:
        yield local.bootstrap
    finally:
        local.stop()


@pytest.fixture
def new_topic(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """``new_topic(prefix)`` gives a topic name no other test uses."""
    test = request.node.name.replace("[", "-").replace("]", "")[:40]

    def make(prefix: str) -> str:
        return f"{prefix}.{test}.{uuid.uuid4().hex[:8]}"

    return make


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared real datasets; tests that need them skip when the folder is absent."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"real datasets not found at {DATA_DIR}")
    return DATA_DIR
