"""`stream-rec worker`: run the Faust worker (the same as `faust -A stream_rec.app worker`)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any

from stream_rec.commands import _flags as f
from stream_rec.config import Settings, env_name, load_settings
from stream_rec.errors import UserError

# Flags that override a setting of the same name; the worker takes them through the environment.
SETTING_FLAGS = ("broker", "registry_dir", "state_dir", "web_port", "partitions", "app_id")
# The names Faust's worker takes (its --loglevel), checked here so a typo is one line too.
LOG_LEVELS = ("debug", "info", "warn", "error", "crit")


def register(sub: Any, settings: Settings) -> None:
    """Add the ``worker`` subcommand."""
    parser = f.add_command(
        sub, "worker", "run the streaming worker",
        "Reads shoppers' events from Kafka, keeps each shopper's state in RocksDB, and "
        "publishes a re-ranked list after every event, to the recommendations topic and over "
        "HTTP. Start as many as the load needs: workers with the same app id share the "
        "partitions as one consumer group. "
        "Every setting comes from its STREAM_REC_* variable; these flags override the few "
        "that differ most between workers.")
    f.add_broker(parser, settings)
    f.add_registry(parser, settings, dest="registry_dir")
    parser.add_argument("--state-dir", metavar=f.DIR, type=f.setting("state_dir"),
                        help=f"RocksDB state folder ({f.shown(settings, 'state_dir')})")
    parser.add_argument("--web-port", metavar=f.PORT, type=f.setting("web_port"),
                        help=f"port of the HTTP API ({f.shown(settings, 'web_port')})")
    parser.add_argument("--partitions", metavar=f.N, type=f.setting("partitions"),
                        help="partitions of the events and recommendations topics "
                             f"({f.shown(settings, 'partitions')})")
    parser.add_argument("--app-id", metavar="ID", type=f.setting("app_id"),
                        help="consumer group and changelog topic prefix "
                             f"({f.shown(settings, 'app_id')})")
    parser.add_argument("--reset-state", action="store_true",
                        help="discard the local state folder's tables and rebuild them from "
                        "the changelog topics (after the broker lost them, see "
                        "docs/operations.md)")
    parser.add_argument("-l", "--loglevel", metavar="LEVEL", default="info", type=str.lower,
                        choices=LOG_LEVELS,
                        help=f"{', '.join(LOG_LEVELS)} (default %(default)s)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the worker until it is stopped."""
    overrides = {name: getattr(args, name) for name in SETTING_FLAGS}
    # Checked before anything starts: a bad variable or flag is one line, not a Faust traceback.
    load_settings(**overrides)
    # The app is configured from the environment when stream_rec.app is imported, so flags
    # become STREAM_REC_* variables first (flags override the environment).
    for name, value in overrides.items():
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
    # Before Faust starts: it would create its tables' changelogs itself, racing its own
    # first partition assignment on a busy broker (see prepare_worker_topics).
    from stream_rec.topics import prepare_worker_topics

    prepare_worker_topics(settings)
    sys.argv = ["stream-rec", "worker", "--loglevel", args.loglevel,
                "--web-port", str(settings.web_port), "--web-host", settings.web_host]
    app.main()
    return 0
