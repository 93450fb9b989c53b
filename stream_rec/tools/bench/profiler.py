"""Optional: sample the worker with py-spy during the throughput phase (``--profile PATH``).

py-spy is a dev tool, not a dependency (``pip install py-spy``). It attaches to the worker
process by PID, samples 100 times a second without pausing it (``--nonblocking``: no
slow-down, rare torn stacks) and writes when stopped with SIGINT. The format follows the file
name: ``.svg`` a flame graph, ``.json`` speedscope, anything else py-spy's raw collapsed stacks
(one ``frame;frame;... count`` line per stack: easy to group with a few lines of Python).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

from stream_rec.errors import UserError


def py_spy_binary() -> str:
    """The py-spy next to this interpreter, or on PATH; UserError when there is none."""
    local = Path(sys.executable).parent / "py-spy"
    found = str(local) if local.exists() else shutil.which("py-spy")
    if not found:
        raise UserError("--profile needs py-spy: `pip install py-spy` into this environment")
    return found


def profile_format(path: Path) -> str:
    """py-spy's output format for ``path``, chosen by its file extension."""
    return {".svg": "flamegraph", ".json": "speedscope"}.get(path.suffix, "raw")


class Profiler:
    """``start(pid)`` begins sampling; ``stop()`` ends it and leaves the file at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.binary = py_spy_binary()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, pid: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [self.binary, "record", "--pid", str(pid), "--rate", "100", "--nonblocking",
             "--format", profile_format(self.path), "--output", str(self.path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)

    def stop(self, timeout_s: float = 60.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            _, err = self.proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return
        if self.proc.returncode not in (0, -signal.SIGINT) and not self.path.exists():
            raise UserError(f"py-spy failed: {err.decode(errors='replace')[-500:]}")
