"""`stream-rec` as a new user meets it: the help of every command, and one-line errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stream_rec.cli import build_parser, main
from stream_rec.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ("demo", "kafka", "storefront", "worker", "trainer", "model", "train", "evaluate",
            "tradeoff", "replay", "bench", "bench-core", "bench-rerank", "bench-api",
            "experiment", "topics", "user", "dlq", "export", "bench-retrieval")
VOCABULARY = {"SPEC", "DIR", "FILE", "N", "S", "R", "DURATION", "PORT", "HOST:PORT", "FRACTION",
              "TOPIC", "DIR_OR_VERSION", "THETA", "LAMBDA", "LEVEL", "ID", "TARGETS", "ARMS",
              "WEIGHTS", "TEXT", "RATES"}
# An option line of argparse's help: "  -l LEVEL, --loglevel LEVEL  help" or "  --json  help".
OPTION = re.compile(r"^  (?:-\w(?: \S+)?, )?(--[\w-]+)(?: (\S+))?(?:\s{2,}|$)")


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_REC_")}
    return {**env, **extra}


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stream_rec.cli", *args], cwd=ROOT,
                          env=_clean_env(**env), capture_output=True, text=True, timeout=120,
                          check=False)


def _words(page: str) -> str:
    return " ".join(page.split())  # the help's line breaks fall wherever the width says


@pytest.fixture(scope="module")
def helps() -> dict[str, str]:
    """The help text of the top level ("") and of every command, as a user runs them."""
    texts = {}
    for command in ("", *COMMANDS):
        done = _cli(*([command] if command else []), "--help")
        assert done.returncode == 0 and not done.stderr, (command, done.stderr)
        texts[command] = done.stdout
    return texts


def test_every_command_is_listed_and_explained(helps: dict[str, str]) -> None:
    top = helps[""]
    for command in COMMANDS:
        summary = re.search(rf"^    {re.escape(command)}\s+(\S.*)$", top, re.MULTILINE)
        wrapped = re.search(rf"^    {re.escape(command)}\n\s+(\S.*)$", top, re.MULTILINE)
        assert summary or wrapped, f"{command} has no one-line help in `stream-rec --help`"
        description = helps[command].split("\n\n")[1]  # after the usage, before the options
        assert not description.startswith(("options:", "positional")), command
        assert len(description.split()) >= 4, f"{command} has no description"


def test_the_top_level_help_is_written_for_users(helps: dict[str, str]) -> None:
    top = helps[""]
    for words in ("stream-rec demo", "stream-rec train --data SPEC", "stream-rec worker",
                  "STREAM_REC_", "docs/operations.md", "kafka:TOPIC"):
        assert words in top, words
    assert "console script" not in top and "``" not in top  # no developer docstring


def test_the_same_flag_has_the_same_metavar_everywhere(helps: dict[str, str]) -> None:
    seen: dict[str, tuple[str, str]] = {}
    for command, page in helps.items():
        for line in page.split("options:", 1)[-1].splitlines():
            match = OPTION.match(line)
            if not match:
                continue
            flag, metavar = match.group(1), match.group(2) or ""
            first = seen.setdefault(flag, (metavar, command))
            assert first[0] == metavar, (
                f"{flag} is {metavar or 'a switch'} in `{command}` but {first[0] or 'a switch'} "
                f"in `{first[1]}`")
    # One word per kind of value, never a name made from the destination (REGISTRY_DIR).
    unknown = {m for m, _ in seen.values() if m and not m.startswith("{")} - VOCABULARY
    assert not unknown, f"metavars outside the shared vocabulary: {sorted(unknown)}"
    assert seen["--data"][0] == "SPEC" and seen["--registry"][0] == "DIR"
    assert seen["--broker"][0] == "HOST:PORT" and seen["--kafka-port"][0] == "PORT"
    assert seen["--k"][0] == "N" and seen["--duration"][0] == "S"


def test_help_shows_values_not_internals(helps: dict[str, str]) -> None:
    for command, page in helps.items():
        assert "settings." not in page and "setting eval_k" not in page, command
    assert "(default 9092, from STREAM_REC_KAFKA_PORT)" in _words(helps["demo"])
    assert "(default 6066, from STREAM_REC_WEB_PORT)" in _words(helps["worker"])


def test_help_defaults_are_the_loaded_settings() -> None:
    done = _cli("worker", "--help", STREAM_REC_PARTITIONS="12")
    assert "(default 12, from STREAM_REC_PARTITIONS)" in _words(done.stdout)


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("STREAM_REC_PARTITIONS", "four", "an integer >= 1"),
    ("STREAM_REC_CANDIDATE_POOL", "-1", "an integer >= 1"),
    ("STREAM_REC_RERANK_POLICY", "dpp:abc", "none, dpp:THETA or mmr:LAMBDA"),
    ("STREAM_REC_WEB_PORT", "70000", "a port number from 1 to 65535"),
    ("STREAM_REC_SECURITY_PROTOCOL", "TLS", "one of PLAINTEXT, SSL"),
])
def test_a_bad_setting_is_one_line_and_status_2(variable: str, value: str,
                                                expected: str) -> None:
    done = _cli("worker", **{variable: value})
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"stream-rec: {variable}={value}: expected "
                                                   f"{expected}"), done.stderr
    assert not done.stdout


@pytest.mark.parametrize(("args", "words"), [
    (("worker", "--partitions", "-3"), "argument --partitions: -3: expected an integer >= 1"),
    (("worker", "--web-port", "70000"), "argument --web-port: 70000: expected a port number"),
    (("demo", "--port", "0"), "argument --port: 0: expected a port number from 1"),
    (("evaluate", "--data", "events:x", "--theta", "1.5"), "expected a number from 0 to 1"),
])
def test_a_bad_flag_is_one_line_and_status_2(args: tuple[str, ...], words: str) -> None:
    done = _cli(*args)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"stream-rec {args[0]}: ") and words in lines[0]
    assert "Traceback" not in done.stderr


def test_a_bad_setting_stops_a_command_in_process(capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_REC_PROMOTION_TOLERANCE", "1.5")
    assert main(["model", "list", "--registry", "nowhere"]) == 2
    assert capsys.readouterr().err == (
        "stream-rec: STREAM_REC_PROMOTION_TOLERANCE=1.5: expected a number from 0 to 1\n")


def test_flags_reach_the_settings_they_override() -> None:
    parser = build_parser(Settings())
    args = parser.parse_args(["worker", "--partitions", "8", "--registry", "r", "--web-port",
                              "7000"])
    assert (args.partitions, args.registry_dir, args.web_port) == (8, "r", 7000)
    assert parser.parse_args(["demo", "--port", "19092"]).kafka_port == 19092  # the old name
    assert parser.parse_args(["demo", "--kafka-port", "19092"]).kafka_port == 19092
    assert parser.parse_args(["kafka", "start", "--port", "19092"]).kafka_port == 19092
    assert parser.parse_args(["worker", "-l", "DEBUG"]).loglevel == "debug"


def test_trainer_needs_no_flags() -> None:
    args = build_parser(Settings()).parse_args(["trainer", "--once"])
    assert args.once and args.every is None and args.window is None and args.data is None


def test_worker_checks_its_flags_before_the_app_reads_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from stream_rec.commands import worker

    monkeypatch.setenv("STREAM_REC_PARTITIONS", "4")
    args = build_parser(Settings()).parse_args(["worker"])
    args.partitions = 0  # as code could pass it; argparse itself refuses it
    with pytest.raises(ValueError, match="STREAM_REC_PARTITIONS=0: expected an integer >= 1"):
        worker.run(args)
    assert os.environ["STREAM_REC_PARTITIONS"] == "4"  # nothing was handed on


def test_bench_names_match_the_benchmark() -> None:
    from stream_rec.commands.bench import BENCH_DATA, TARGETS
    from stream_rec.tools.bench.benchmark import TARGETS as BENCH_TARGETS
    from stream_rec.tools.bench.workload import DEFAULT_DATA

    assert (TARGETS, BENCH_DATA) == (BENCH_TARGETS, DEFAULT_DATA)


def test_help_survives_a_bad_environment() -> None:
    done = _cli("--help", STREAM_REC_WEB_PORT="x")
    assert done.returncode == 0 and "stream-rec demo" in done.stdout
    assert load_settings({}) == Settings()
