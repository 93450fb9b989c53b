"""`stream-rec model list|promote VERSION|rollback`: manage the registry's current pointer.

Promote and rollback also announce the new current version on ``model-updates`` so running
workers swap to it (``--no-announce`` to only move the pointer).
"""

from __future__ import annotations

import argparse
import json

from stream_rec.config import load_settings
from stream_rec.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("model", help="list, promote or roll back model versions")
    parser.add_argument("action", choices=["list", "promote", "rollback"])
    parser.add_argument("version", nargs="?", help="version to promote")
    parser.add_argument("--registry", help="registry folder (default: settings.registry_dir)")
    parser.add_argument("--broker", help="Kafka bootstrap servers for the announcement")
    parser.add_argument("--no-announce", action="store_true",
                        help="move the pointer without telling the workers")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stream_rec.model import ArtifactError, FileRegistry, RegistryError
    from stream_rec.model.announce import announce_model

    settings = load_settings(registry_dir=args.registry, broker=args.broker)
    registry = FileRegistry(settings.registry_dir)
    try:
        if args.action == "list":
            current = registry.current()
            rows = [{"version": v, "current": v == current} for v in registry.versions()]
            if args.json:
                print(json.dumps({"registry": str(registry.root), "versions": rows}))
            else:
                for row in rows:
                    print(("* " if row["current"] else "  ") + str(row["version"]))
                if not rows:
                    print(f"no versions in {registry.root}")
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
