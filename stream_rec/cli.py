"""The `stream-rec` console script: parses flags and hands over to one command module.

Each module in ``stream_rec/commands/`` adds one subcommand through ``register(subparsers)``
and keeps its logic in the package, not here. Heavy imports (TensorFlow, Faust) happen inside
the commands so that `stream-rec --help` stays fast and the serving install needs no TensorFlow.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

from stream_rec import __version__, commands
from stream_rec.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stream-rec", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"stream-rec {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        importlib.import_module(f"{commands.__name__}.{info.name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        code: int = args.func(args)
    except UserError as exc:
        print(f"stream-rec {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
