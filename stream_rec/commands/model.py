"""`stream-rec model list|promote VERSION|rollback`: manage the registry's current pointer.

Promote and rollback also announce the new current version on ``model-updates`` so running
workers swap to it (``--no-announce`` to only move the pointer).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from stream_rec.commands import _flags as f
from stream_rec.config import Settings, load_settings
from stream_rec.errors import UserError


def register(sub: Any, settings: Settings) -> None:
    """Add the ``model`` subcommand."""
    parser = f.add_command(
        sub, "model", "list, promote or roll back model versions",
        "The registry keeps every trained version and a pointer to the current one, which the "
        "workers serve. 'list' marks the current version with *; 'promote VERSION' moves the "
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
            rows = [{"version": v, "current": v == current} for v in registry.versions()]
            if args.json:
                print(json.dumps({"registry": settings.registry_dir, "versions": rows}))
            else:
                for row in rows:
                    print(("* " if row["current"] else "  ") + str(row["version"]))
                if not rows:
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
