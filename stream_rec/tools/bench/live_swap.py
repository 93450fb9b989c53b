"""A hot swap in the running worker, measured from outside (`stream-rec bench --hot-swap`).

bench-core's ``hot_swap`` loads a second model in its own process; this one asks the real
worker to swap, as a retraining does: a new version is promoted in the registry and announced
on the model-updates topic while shoppers keep clicking, and the bench reads the worker's
resident memory from /proc (the peak since just before the announcement) and waits for
/health to name the new version (set once the old model is let go and the new one's arrays
are the process's own, ``worker.models.swap_to``).

The new version is a copy of the served one under another name: the same files, so the
memory figure is that of two models of this size side by side, whatever their weights. The
copies live in a registry of the bench's own (``stage_registry``), never in the caller's.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stream_rec.config import Settings
from stream_rec.model.announce import announce_model
from stream_rec.model.artifact import MANIFEST, write_json_atomic
from stream_rec.model.registry import FileRegistry
from stream_rec.tools.bench.probes import read_memory, reset_peak


def stage_registry(source: Path, work_dir: Path) -> Path:
    """A registry in ``work_dir`` holding a copy of ``source``'s current version (current)."""
    origin = FileRegistry(source)
    version = origin.resolve(None)
    staged = FileRegistry(work_dir / "swap-registry")
    shutil.copytree(origin.path(version), staged.path(version))
    staged.promote(version)
    return staged.root


def copy_as_new_version(registry: Path, suffix: str) -> str:
    """Copy the current version to ``<version>-<suffix>`` (same files, so their checksums
    hold; only the manifest's version changes), without promoting it; return the name."""
    reg = FileRegistry(registry)
    current = reg.resolve(None)
    version = f"{current}-{suffix}"
    staging = registry / f".staging-{version}"
    shutil.copytree(reg.path(current), staging)
    manifest = json.loads((staging / MANIFEST).read_text(encoding="utf-8"))
    write_json_atomic(staging / MANIFEST, {**manifest, "version": version})
    staging.rename(reg.path(version))
    return version


def served_version(health: Callable[[], Any]) -> str | None:
    """The model version the worker's /health/ names (None while it cannot answer)."""
    try:
        body = health()
    except (OSError, ValueError):
        return None
    version = body.get("model_version") if isinstance(body, dict) else None
    return str(version) if version else None


@dataclass(frozen=True)
class LiveSwap:
    """Where the worker runs and where its models come from."""

    settings: Settings  # the worker's (broker, model-updates topic, registry)
    pid: Callable[[], int | None]
    health: Callable[[], Any]  # the worker's /health/ body
    timeout_s: float = 600.0
    poll_s: float = 0.2

    def __call__(self) -> dict[str, Any]:
        """Promote and announce a copy of the served model, wait until the worker serves it;
        blocking (the bench runs it in a thread while traffic flows)."""
        pid = self.pid()
        if pid is None:
            raise RuntimeError("the worker is not running")
        registry = Path(self.settings.registry_dir)
        version = copy_as_new_version(registry, f"swap{int(time.time())}")
        peak_reset = reset_peak(pid)
        before = read_memory(pid).rss_mb
        started = time.monotonic()
        reg = FileRegistry(registry)
        reg.promote(version)
        announce_model(reg.path(version), self.settings)
        while served_version(self.health) != version:
            if time.monotonic() - started > self.timeout_s:
                raise TimeoutError(f"the worker did not serve model {version} within "
                                   f"{self.timeout_s:.0f} s of its announcement")
            read_memory(pid)  # raises OSError if the worker died meanwhile
            time.sleep(self.poll_s)
        swap_s = time.monotonic() - started
        memory = read_memory(pid)
        return {"version": version, "swap_s": round(swap_s, 2),
                "rss_before_mb": round(before, 1), "peak_rss_mb": round(memory.peak_mb, 1),
                "peak_over_before_mb": round(memory.peak_mb - before, 1),
                # False: Linux would not reset the peak, so it counts from the start
                "peak_since_announcement": peak_reset}
