"""The `stream-rec` console script: parses flags and hands over to one command module.

Each module in ``stream_rec/commands/`` adds one subcommand through
``register(subparsers, settings)`` and keeps its logic in the package, not here; the flags they
share are spelled once in ``stream_rec/commands/_flags.py``. Heavy imports (TensorFlow, Faust)
happen inside the commands so that `stream-rec --help` stays fast and the serving install needs
no TensorFlow.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

from stream_rec import __version__, commands
from stream_rec.commands._flags import Parser, text
from stream_rec.config import Settings, load_settings
from stream_rec.errors import USAGE_EXIT_STATUS, SettingsError, UserError

# The order of the command list: first what a new user runs, then production, then the
# offline work, then the benchmarks. A command module not named here is listed after them.
COMMAND_ORDER = ("demo", "kafka", "storefront", "topics", "worker", "trainer", "model",
                 "experiment", "user", "dlq", "export", "train", "evaluate", "tradeoff", "replay",
                 "bench", "bench_core", "bench_rerank", "bench_api", "bench_retrieval")

DESCRIPTION = text(
    "stream-rec serves streaming, diversity-aware recommendations to an e-commerce "
    "storefront. The shop publishes its shoppers' events (views, clicks, carts, purchases) to "
    "Kafka; the worker keeps each shopper's state and publishes a fresh list after every "
    "event, scored by a trained model and re-ranked to be relevant and diverse; the trainer "
    "retrains the model from the event history and the workers swap to it live.",
    "To start:\n"
    "  stream-rec demo                    everything live on a local Kafka broker,\n"
    "                                     with a web page to watch and click\n"
    "  stream-rec storefront --write DIR  a synthetic shop's history, as a dataset\n"
    "  stream-rec train --data SPEC       train a model, add it to the registry\n"
    "  stream-rec worker                  the streaming worker, for production",
)

EPILOG = text(
    "Settings: every setting has an environment variable, STREAM_REC_<NAME>, and a default "
    "(all of them: docs/operations.md); a command's flags override the environment. A value "
    "a setting cannot take stops the command with one line naming it. "
    "'stream-rec COMMAND --help' shows a command's flags and what each defaults to now.",
    "SPEC names a dataset: sessions:PATH, categories:PATH or events:PATH (a folder, looked up "
    "under STREAM_REC_DATA_DIR when relative) or kafka:TOPIC (the live history).",
)


def _command_modules() -> list[str]:
    found = {m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")}
    return [n for n in COMMAND_ORDER if n in found] + sorted(found - set(COMMAND_ORDER))


def build_parser(settings: Settings | None = None) -> argparse.ArgumentParser:
    """The whole command line; ``settings`` supply the defaults that the help shows."""
    if settings is None:
        try:
            settings = load_settings()
        except SettingsError:
            settings = Settings()  # the help still works; the command itself will say why not
    parser = Parser(prog="stream-rec", description=DESCRIPTION, epilog=EPILOG,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"stream-rec {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages too")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands",
                                required=True)
    for name in _command_modules():
        importlib.import_module(f"{commands.__name__}.{name}").register(sub, settings)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit status (2 for a bad flag, setting or input, with one line)."""
    # The environment is read before any command runs, so that a bad setting stops every
    # command the same way, even one that would not have read it.
    problem: SettingsError | None = None
    try:
        settings = load_settings()
    except SettingsError as exc:
        settings, problem = Settings(), exc
    args = build_parser(settings).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:  # kafka-python says every connection and metadata refresh at INFO
        logging.getLogger("kafka").setLevel(logging.WARNING)
    try:
        if problem is not None:
            raise problem
        code: int = args.func(args)
    except SettingsError as exc:
        print(f"stream-rec: {exc}", file=sys.stderr)
        return USAGE_EXIT_STATUS
    except UserError as exc:
        print(f"stream-rec {args.command}: {exc}", file=sys.stderr)
        return USAGE_EXIT_STATUS
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
