"""Measured processes: how the bench starts, checks and stops them (by PID, never by name)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from stream_rec.tools.bench.harness import BenchError


class Target(Protocol):
    """One measured process: where its events go in and its outputs come out."""

    name: str
    in_topic: str
    out_topic: str
    partitions: int

    @property
    def pid(self) -> int | None: ...
    def start(self) -> None: ...
    def check_alive(self) -> None: ...
    def stop(self) -> None: ...


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, chars: int = 3000) -> str:
    """The last ``chars`` characters of a process's log file (empty when it cannot be read)."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


@dataclass
class ChildProcess:
    """A child in its own session (so Ctrl-C reaches only the bench), logging to a file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(f"{self.name} exited with {self.proc.returncode}; its log "
                             f"({self.log_path}) ends:\n{log_tail(self.log_path)}")

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM, then SIGKILL to its process group if it has not exited in ``timeout_s``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
