"""`stream-rec worker`: run the Faust worker (the same as `faust -A stream_rec.app worker`)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from stream_rec.config import env_name
from stream_rec.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("worker", help="run the streaming worker")
    parser.add_argument("--broker", help="Kafka bootstrap servers")
    parser.add_argument("--registry", dest="registry_dir", help="model registry folder")
    parser.add_argument("--state-dir", help="RocksDB state folder")
    parser.add_argument("--web-port", type=int, help="HTTP port")
    parser.add_argument("--partitions", type=int, help="partitions of events/recommendations")
    parser.add_argument("--app-id", help="consumer group / changelog prefix")
    parser.add_argument("--reset-state", action="store_true",
                        help="discard the local state folder's tables and rebuild them from "
                        "the changelog topics (after the broker lost them, see "
                        "docs/operations.md)")
    parser.add_argument("-l", "--loglevel", default="info", help="log level")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # The app is configured from the environment when stream_rec.app is imported, so flags
    # become STREAM_REC_* variables first (flags override the environment).
    for name in ("broker", "registry_dir", "state_dir", "web_port", "partitions", "app_id"):
        value = getattr(args, name)
        if value is not None:
            os.environ[env_name(name)] = str(value)
    from stream_rec.app import app, settings

    # Faust's autodiscovery only logs a module that fails to import, and the worker would run
    # on without its agents, never healthy. Importing them here stops it at once instead.
    for module in ("agents", "views"):
        importlib.import_module(f"stream_rec.worker.{module}")
    # Faust's own check of the state against the broker stops the worker with a traceback
    # that says nothing of what to do; this one names the folder, the cause and the fix.
    from stream_rec.worker.state_folder import check_local_state, reset_local_state

    if args.reset_state:
        print(f"stream-rec worker: {reset_local_state(settings)}", file=sys.stderr, flush=True)
    elif (problem := check_local_state(settings)) is not None:
        raise UserError(problem)
    sys.argv = ["stream-rec", "worker", "--loglevel", args.loglevel,
                "--web-port", str(settings.web_port), "--web-host", settings.web_host]
    app.main()
