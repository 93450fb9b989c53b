"""`stream-rec model list|promote VERSION|rollback`: manage the registry's current pointer.

Promote and rollback also announce the new current version on ``model-updates`` so running
workers swap to it (``--no-announce`` to only move the pointer). List shows each version with
what its manifest says: when it was made, the data it was trained on, its offline metrics.
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stream_rec.commands import _flags as f
from stream_rec.config import Settings, load_settings
from stream_rec.errors import UserError


def register(sub: Any, settings: Settings) -> None:
    """Add the ``model`` subcommand."""
    parser = f.add_command(
        sub, "model", "list, promote or roll back model versions",
        "The registry keeps every trained version and a pointer to the current one, which the "
        "workers serve. 'list' marks the current version with * and shows, from each "
        "version's manifest, when it was made, the time span and size of its training data "
        "and its offline metrics on the test split (P@20 and MRR@20, in %); 'promote VERSION' "
        "moves the "
        "pointer to VERSION and 'rollback' back to the version current before it. Both "
        "announce the new current version on the model-updates topic, so that running workers "
        "swap to it without a restart.")
    parser.add_argument("action", choices=["list", "promote", "rollback"],
                        help="what to do with the registry's current pointer")
    parser.add_argument("version", metavar="VERSION", nargs="?",
                        help="the version to promote (see 'stream-rec model list')")
    f.add_registry(parser, settings)
    f.add_broker(parser, settings, "Kafka bootstrap servers for the announcement")
    parser.add_argument("--no-announce", action="store_true",
                        help="move the pointer without telling the workers")
    f.add_json(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """List the versions, or move the current pointer and announce it."""
    from stream_rec.model import ArtifactError, RegistryError, open_registry
    from stream_rec.model.announce import announce_model

    settings = load_settings(registry_dir=args.registry, broker=args.broker)
    registry = open_registry(settings)
    try:
        if args.action == "list":
            current = registry.current()
            rows = [version_row(v, v == current, read_manifest(registry.path(v)))
                    for v in registry.versions()]
            if args.json:
                print(json.dumps({"registry": settings.registry_dir, "versions": rows}))
            elif rows:
                print(format_rows(rows))
            else:
                print(f"no versions in {settings.registry_dir}")
            return 0
        if args.action == "promote":
            if not args.version:
                raise UserError("promote needs a VERSION (see `stream-rec model list`)")
            version = registry.resolve(args.version)
            registry.promote(version)
        else:
            version = registry.rollback()
    except (RegistryError, ArtifactError) as exc:
        raise UserError(str(exc)) from None
    announced = None if args.no_announce else announce_model(registry.path(version), settings)
    if args.json:
        print(json.dumps({"current": version, "announced": announced is not None}))
    else:
        print(f"current model version: {version}" + ("" if announced else " (not announced)"))
    return 0


# The offline metrics `model list` shows, by name without "@K" (the manifest's K is eval_k).
LISTED_METRICS = ("P", "MRR")


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """A version's manifest.json as it is (not verified: listing reads no model files), or
    None when it is missing or unreadable."""
    from stream_rec.model.artifact import MANIFEST

    try:
        doc = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _iso_ms(ms: Any) -> str | None:
    if isinstance(ms, bool) or not isinstance(ms, int | float):
        return None
    try:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return None


def version_row(version: str, current: bool, manifest: dict[str, Any] | None
                ) -> dict[str, Any]:
    """One row of `model list`: the version, whether it is current, and from its manifest the
    creation time, the training data's span and size, and the offline metrics (None where the
    manifest does not say)."""
    manifest = manifest or {}
    training = manifest.get("training")
    span = training.get("data_range") if isinstance(training, dict) else None
    data = None
    if isinstance(span, dict):
        data = {"dataset": span.get("dataset"), "from_ms": span.get("from_ms"),
                "to_ms": span.get("to_ms"), "from": _iso_ms(span.get("from_ms")),
                "to": _iso_ms(span.get("to_ms")), "train_events": span.get("train_events"),
                "synthetic_time": span.get("synthetic_time")}
    figures = manifest.get("metrics")
    metrics = {}
    if isinstance(figures, dict):
        for name, value in figures.items():
            match = re.fullmatch(r"([A-Za-z]+)@(\d+)", str(name))
            if (match and match[1] in LISTED_METRICS and isinstance(value, int | float)
                    and not isinstance(value, bool)):
                metrics[name] = value
    created = manifest.get("created_at")
    return {"version": version, "current": current,
            "created_at": created if isinstance(created, str) else None,
            "data_range": data, "metrics": metrics, "manifest_readable": bool(manifest)}


def format_rows(rows: list[dict[str, Any]]) -> str:
    """The rows as a table; '-' where a manifest does not say."""
    names = sorted({m for row in rows for m in row["metrics"]},
                   key=lambda m: (LISTED_METRICS.index(m.split("@")[0]), m))
    header = ["", "VERSION", "CREATED (UTC)", "TRAINED ON", *[f"{m} %" for m in names]]
    table = [header]
    for row in rows:
        created = row["created_at"] or "-"
        data = row["data_range"]
        if data is None:
            trained = "-" if row["manifest_readable"] else "(manifest unreadable)"
        else:
            days = "..".join((t or "?")[:10] for t in (data["from"], data["to"]))
            size = data["train_events"]
            trained = f"{data['dataset'] or '?'} {days}" + (
                f", {size} events" if isinstance(size, int) else "")
            if data.get("synthetic_time"):
                trained += " (synthetic time)"
        figures = [f"{row['metrics'][m]:.2f}" if m in row["metrics"] else "-" for m in names]
        table.append(["*" if row["current"] else "", row["version"],
                      created.replace("T", " ").removesuffix("+00:00"), trained, *figures])
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) if i < 4 else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(line, widths, strict=True)))
                     .rstrip() for line in table)
