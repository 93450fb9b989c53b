"""Run a stream-rec worker as a child process: used by the demo, the benchmarks and tests.

The child is configured only through ``STREAM_REC_*`` variables (so it is exactly what an
operator's `stream-rec worker` runs), gets its own process group, and is stopped by PID.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stream_rec.config import Settings, env_name, settings_reference
from stream_rec.secret import Secret


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment variables that reproduce ``settings`` in a child process."""
    return {env: _env_value(getattr(settings, name)) for name, env, _, _ in settings_reference()}


def _env_value(value: object) -> str:
    # A secret prints as *** by design; the child needs the value itself.
    return str(value.reveal() if isinstance(value, Secret) else value)


def isolated_settings(settings: Settings, run_id: str, work: Path) -> Settings:
    """Settings whose topics (``RUN_ID.events``, ...), consumer group, state folder and web
    port belong to one run alone, so it shares a broker with anything else."""
    from stream_rec.tools.bench.processes import free_port

    return settings.with_overrides(
        app_id=run_id, events_topic=f"{run_id}.events", dlq_topic=f"{run_id}.dlq",
        items_topic=f"{run_id}.items", recommendations_topic=f"{run_id}.recommendations",
        model_updates_topic=f"{run_id}.models", experiments_topic=f"{run_id}.experiments",
        state_dir=str(work / "state"), web_port=free_port())


READY_STATUSES = ("ok", "degraded")


@dataclass
class WorkerProcess:
    """A `stream-rec worker` child process: start it, wait until healthy, query, stop it."""

    settings: Settings
    log_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()  # flags of `stream-rec worker`, e.g. ("--reset-state",)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.web_host}:{self.settings.web_port}"

    def start(self, wait_s: float = 180.0) -> WorkerProcess:
        env = {**os.environ, **settings_env(self.settings), **self.extra_env}
        env.pop(env_name("kafka_port"), None)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stream_rec.cli", "worker", *self.args], env=env,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        if wait_s:
            try:
                self.wait_healthy(wait_s)
            except BaseException:
                self.kill()  # the caller never gets a handle on a worker that did not come up
                raise
        return self

    def wait_healthy(self, wait_s: float) -> dict[str, Any]:
        """Block until /health says ready: the catalog is loaded and the agent can run, with
        a model ("ok") or on fallback lists because none is servable ("degraded")."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                body: dict[str, Any] = self.get_json("/health/")
                if body.get("status") in READY_STATUSES:
                    return body
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"worker not healthy after {wait_s:.0f} s:\n{self.log_tail()}")

    def get_json(self, path: str, token: str | None = None) -> Any:
        request = urllib.request.Request(self.base_url + path)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def get_text(self, path: str, token: str | None = None) -> str:
        request = urllib.request.Request(self.base_url + path)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(response.read().decode())

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """Graceful stop (SIGTERM, as an orchestrator would), SIGKILL if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return self.kill()

    def kill(self) -> int:
        """SIGKILL: a crash, with no chance to flush or commit anything."""
        assert self.proc is not None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.wait()

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def http_status(url: str, token: str | None = None) -> int:
    """The HTTP status a GET of ``url`` answers with, sending the bearer token if given."""
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
