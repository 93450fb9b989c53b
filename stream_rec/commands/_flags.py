"""The words every `stream-rec` command uses for the same things.

One metavar per kind of value, one way to check it and one way to show its default, so that
``--data`` reads ``SPEC`` and ``--registry`` reads ``DIR`` in every command. A flag that overrides
a setting is checked by that setting's own rule (``stream_rec.config``) and its help shows the
value it falls back to, read from the environment, with the variable that sets it.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shlex
import textwrap
from collections.abc import Callable
from typing import Any, NoReturn

from stream_rec.config import Settings, env_name, parse_setting
from stream_rec.errors import USAGE_EXIT_STATUS, SettingsError
from stream_rec.rerank.policy import DEFAULT_DPP_THETA, DEFAULT_MMR_LAMBDA

# Metavars: what the value is, the same in every command.
SPEC = "SPEC"  # a dataset: sessions:PATH, categories:PATH, events:PATH or kafka:TOPIC
DIR = "DIR"  # a folder
FILE = "FILE"
N = "N"  # a count
S = "S"  # seconds
RATE = "R"  # events per second
DURATION = "DURATION"  # a time with its unit: 90s, 30m, 6h, 7d
PORT = "PORT"
SERVERS = "HOST:PORT"  # Kafka bootstrap servers
FRACTION = "FRACTION"  # a share, 0..1
TOPIC = "TOPIC"
MODEL = "DIR_OR_VERSION"
ARMS = "ARMS"  # name=policy,name=policy
WEIGHTS = "WEIGHTS"  # one number per arm: 50,50
RATES = "RATES"  # rates separated by ',', or auto
ID = "ID"  # an identifier: a shopper's user_id, a request's id
TEXT = "TEXT"  # words to look for, e.g. in a dead letter's reason

SPEC_FORMS = "sessions:PATH, categories:PATH, events:PATH or kafka:TOPIC"
HELP_WIDTH = 78


class Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line, like every other error of stream-rec."""

    def error(self, message: str) -> NoReturn:
        """Print ``PROG: MESSAGE`` and a pointer to the help, and exit with status 2.

        argparse would print the whole usage first; the pointer is shorter and leaves the
        message as the one line a script's log shows.
        """
        self.exit(USAGE_EXIT_STATUS, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def text(*paragraphs: str) -> str:
    """Help text for a description or an epilog: paragraphs filled to the help's width.

    A paragraph with a line that starts with spaces (examples, lists) is kept as written.
    """
    filled = [p if re.search(r"^ ", p, re.MULTILINE) else textwrap.fill(p, HELP_WIDTH)
              for p in paragraphs]
    return "\n\n".join(filled)


def add_command(sub: Any, name: str, summary: str, *paragraphs: str,
                epilog: str | None = None) -> argparse.ArgumentParser:
    """A subcommand with its one-line summary (the command list) and its description."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=summary, description=text(summary[0].upper() + summary[1:] + ".",
                                             *paragraphs),
        epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser


def shown(settings: Settings, name: str, value: Any = None) -> str:
    """``default VALUE, from STREAM_REC_NAME`` for the help of a flag that overrides a setting."""
    value = getattr(settings, name) if value is None else value
    return f"default {value if value != '' else repr('')}, from {env_name(name)}"


def setting(name: str) -> Callable[[str], Any]:
    """An argparse type: the flag's text read and checked as setting ``name`` is."""

    def parse(raw: str) -> Any:
        try:
            return parse_setting(name, raw)
        except SettingsError as exc:
            # argparse puts "argument --flag: " in front of this.
            raise argparse.ArgumentTypeError(f"{shlex.quote(raw)}: expected {exc.expected}"
                                             ) from None

    return parse


def count(at_least: int = 0) -> Callable[[str], int]:
    """An argparse type for a whole number of things, at least ``at_least``."""

    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            value = at_least - 1
        if value < at_least:
            raise argparse.ArgumentTypeError(
                f"{shlex.quote(raw)}: expected an integer >= {at_least}")
        return value

    return parse


def positive(raw: str) -> float:
    """An argparse type for a rate or a time: a finite number above zero."""
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{shlex.quote(raw)}: expected a number > 0")
    return value


def fraction(raw: str) -> float:
    """An argparse type for a share or a weight: a number from 0 to 1."""
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:  # False for NaN too
        raise argparse.ArgumentTypeError(f"{shlex.quote(raw)}: expected a number from 0 to 1")
    return value


def format_ms(ms: int) -> str:
    """A millisecond setting as a DURATION flag would say it: 7d, 1h, 90s."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


# --- flags that mean the same thing in every command that has them ---------------------------

def add_data(parser: argparse.ArgumentParser, help: str, *, required: bool = False,
             forms: str = SPEC_FORMS, default: str | None = None) -> None:
    """``--data SPEC``: the dataset a command reads, and the forms it may take there."""
    parser.add_argument("--data", metavar=SPEC, required=required,
                        help=f"{help}: {forms}" + (f" ({default})" if default else ""))


def add_registry(parser: argparse.ArgumentParser, settings: Settings,
                 help: str = "model registry folder", *, dest: str = "registry",
                 shown_default: str | None = None) -> None:
    """``--registry DIR``: the model registry (the registry_dir setting unless told)."""
    default = shown_default or shown(settings, "registry_dir")
    parser.add_argument("--registry", dest=dest, metavar=DIR,
                        type=setting("registry_dir"), help=f"{help} ({default})")


def add_broker(parser: argparse.ArgumentParser, settings: Settings,
               help: str = "Kafka bootstrap servers", shown_default: str | None = None) -> None:
    """``--broker HOST:PORT``: the Kafka cluster (the broker setting unless told)."""
    default = shown_default or shown(settings, "broker")
    parser.add_argument("--broker", metavar=SERVERS, type=setting("broker"),
                        help=f"{help}, several separated by ',' ({default})")


def add_kafka_port(parser: argparse.ArgumentParser, settings: Settings, help: str) -> None:
    """``--kafka-port PORT``: the local broker's client port; ``--port`` still works."""
    kind = setting("kafka_port")
    parser.add_argument("--kafka-port", dest="kafka_port", metavar=PORT, type=kind,
                        help=f"{help} ({shown(settings, 'kafka_port')})")
    # The flag's first name, kept so that existing scripts run; hidden to keep one name in help.
    parser.add_argument("--port", dest="kafka_port", type=kind, help=argparse.SUPPRESS)


def add_json(parser: argparse.ArgumentParser, what: str = "the result") -> None:
    """``--json``: machine-readable output on stdout, progress staying on stderr."""
    parser.add_argument("--json", action="store_true",
                        help=f"print {what} as one JSON object on stdout")


def add_json_lines(parser: argparse.ArgumentParser, what: str) -> None:
    """``--json``: one JSON object a line on stdout (for output that is a stream of records)."""
    parser.add_argument("--json", action="store_true",
                        help=f"print {what} as JSON lines on stdout, one object a line")


def add_model(parser: argparse.ArgumentParser, settings: Settings) -> None:
    """``--model`` and ``--registry``: the model that offline commands score with."""
    parser.add_argument("--model", default="latest", metavar=MODEL,
                        help="an artifact folder, or a version in the registry, 'current' or "
                             "'latest' (default %(default)s)")
    add_registry(parser, settings, "model registry folder that --model names a version of")


def add_theta_lambda(parser: argparse.ArgumentParser, theta_default: str | None = None) -> None:
    """``--theta`` and ``--lambda``: the parameters of DPP and MMR re-ranking."""
    parser.add_argument("--theta", metavar="THETA", type=fraction,
                        help="DPP's weight of diversity, 0 to 1 "
                             f"({theta_default or f'default {DEFAULT_DPP_THETA:g}'})")
    parser.add_argument("--lambda", dest="lambda_", metavar="LAMBDA", type=fraction,
                        help="MMR's weight of relevance, 0 to 1 (default "
                             f"{DEFAULT_MMR_LAMBDA:g})")


def add_threads(parser: argparse.ArgumentParser) -> None:
    """``--threads``: onnxruntime's threads for offline scoring."""
    parser.add_argument("--threads", metavar=N, type=count(1), default=os.cpu_count() or 1,
                        help="onnxruntime threads (default: the cores, %(default)s)")
