"""`bench-core` at several catalog sizes, one child process per size, and the costs side by side.

Each size runs in a fresh `stream-rec bench-core --catalog-items N --json` child, so its
resident memory starts from nothing (a million-item catalog measured after a smaller one
would carry the smaller one's heap) and a size that fails says so without losing the others'
numbers. The children's progress goes to stderr as it comes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from stream_rec.errors import UserError
from stream_rec.tools.bench.core_run import CoreOptions
from stream_rec.tools.bench.model import STDERR_FD


def child_argv(options: CoreOptions, n_items: int) -> list[str]:
    """The `stream-rec bench-core` command line that measures one catalog size."""
    argv = [sys.executable, "-m", "stream_rec.cli", "bench-core", "--json",
            "--catalog-items", str(n_items), "--events", str(options.events),
            "--warmup-events", str(options.warmup_events),
            "--train-epochs", str(options.train_epochs),
            "--concurrency", str(options.concurrency), "--seed", str(options.seed)]
    if options.batch is not None:
        argv += ["--batch", str(options.batch)]
    if not options.use_model:
        argv.append("--no-model")
    if not options.hot_swap:
        argv.append("--no-hot-swap")
    return argv


def run_sweep(options: CoreOptions, sizes: Sequence[int]) -> dict[str, Any]:
    """Measure each size in turn (smallest first): the results, CPU relative to the smallest
    size measured, and the sizes that failed (``failed``: size -> why), which do not stop
    the others."""
    points: list[dict[str, Any]] = []
    failed: dict[str, str] = {}
    for n in sorted(set(sizes)):
        print(f"bench-core: catalog of {n:,} items", file=sys.stderr, flush=True)
        done = subprocess.run(child_argv(options, n), stdout=subprocess.PIPE,
                              stderr=STDERR_FD, text=True, check=False)
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            failed[str(n)] = f"exit {done.returncode}: its error is on stderr above"
            print(f"bench-core: {n:,} items failed ({failed[str(n)]})", file=sys.stderr,
                  flush=True)
            continue
        points.append(json.loads(lines[-1]))
    if not points:
        raise UserError("bench-core failed at every catalog size")
    base = points[0]["cpu_us_per_event_total"]
    return {"catalog_sweep": points,
            "cpu_ratio_vs_smallest": {str(p["catalog_items"]): round(
                p["cpu_us_per_event_total"] / base, 2) if base else None for p in points},
            "failed": failed}


def format_sweep(result: dict[str, Any]) -> str:
    """One line per catalog size, for a terminal (``--json`` prints the object instead)."""
    lines = [f"{'items':>9} {'cpu us/ev':>9} {'x':>5} {'retrieval':>9} {'scoring':>8} "
             f"{'rerank':>7} {'load s':>7} {'catalog s':>9} {'rss MB':>7} {'swap MB':>8}"]
    for p in result["catalog_sweep"]:
        stages = p.get("stages_us") or {}
        swap = p.get("hot_swap") or {}
        ratio = result["cpu_ratio_vs_smallest"].get(str(p["catalog_items"]))
        lines.append(
            f"{p['catalog_items']:>9,} {p['cpu_us_per_event_total']:>9.1f} {ratio or 0:>5.2f} "
            f"{stages.get('retrieval', 0):>9.1f} {stages.get('scoring', 0):>8.1f} "
            f"{stages.get('reranking', 0):>7.1f} {p.get('model_load_s') or 0:>7.2f} "
            f"{p['catalog_read_s']:>9.2f} {p['rss_mb']['peak_run']:>7.0f} "
            f"{swap.get('peak_rss_mb', 0):>8.0f}")
    lines += [f"{int(n):>9,} failed: {why}" for n, why in result.get("failed", {}).items()]
    return "\n".join(lines)
