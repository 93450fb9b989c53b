"""The code blocks of docs/*.md that are meant to run do run, and their JSON examples are valid.

Markers, each an HTML comment (invisible once rendered) on the line right before a fenced block:

- ``<!-- run -->`` before a ``bash``/``sh`` or ``python`` block: the block runs and must exit 0.
  The blocks of one page run in page order in one temporary folder, so a block can use what an
  earlier one wrote. ``stream-rec`` and ``python`` are this checkout's; the environment has no
  ``STREAM_REC_*`` variables of the caller, an unreachable broker and state and registry
  folders inside the temporary folder, so no block can reach a real broker or local state.
- ``<!-- run: exit N -->``: the same, but the block must exit with status N.
- ``<!-- output -->`` before the block that follows a run block: every non-empty line of it must
  appear in what the run printed (stdout and stderr together).
- ``<!-- example: NAME -->`` before a ``json`` block: the value validates against
  ``schemas/NAME.schema.json``. docs/integration.md's examples are checked by schema and by the
  code in test_integration_doc.py and are left out here.

Mark only blocks that need no broker and run in a few seconds: this whole file stays well under
half a minute.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from stream_rec.core.events import parse_message

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
BLOCK_TIMEOUT_S = 60
RUN_LANGUAGES = {"bash": "bash", "sh": "bash", "python": "python"}

# A marker comment, then the fenced block on the next line: (marker, language, body).
MARKED_BLOCK = re.compile(
    r"^<!-- (?P<marker>[^>]*?) -->\n```(?P<lang>[\w-]*)\n(?P<body>.*?)^```$",
    re.MULTILINE | re.DOTALL)
ANY_MARKER = re.compile(r"^<!-- (run|output|example)\b.*-->$", re.MULTILINE)


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    marker: str
    lang: str
    body: str

    def where(self) -> str:
        return f"docs/{self.page}:{self.line}"


def marked_blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    return [Block(page.name, text.count("\n", 0, m.start()) + 1, m["marker"].strip(),
                  m["lang"], m["body"])
            for m in MARKED_BLOCK.finditer(text)]


def run_plan(page: Path) -> list[tuple[Block, int, Block | None]]:
    """Each run block of the page, its expected exit status and its output block, if any."""
    blocks = marked_blocks(page)
    plan = []
    for n, block in enumerate(blocks):
        found = re.fullmatch(r"run(?::\s*exit\s+(\d+))?", block.marker)
        if found is None:
            continue
        following = blocks[n + 1] if n + 1 < len(blocks) else None
        output = following if following is not None and following.marker == "output" else None
        plan.append((block, int(found[1] or 0), output))
    return plan


RUN_PAGES = [page for page in PAGES if run_plan(page)]
EXAMPLES = [block for page in PAGES if page.name != "integration.md"
            for block in marked_blocks(page) if block.marker.startswith("example:")]


def block_environment(work: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("STREAM_REC_")}
    bin_dir = work / ".bin"
    bin_dir.mkdir()
    # `stream-rec` and `python` mean this checkout, whatever PATH and the install say.
    for name, command in (("stream-rec", f'"{sys.executable}" -m stream_rec.cli "$@"'),
                          ("python", f'"{sys.executable}" "$@"')):
        shim = bin_dir / name
        shim.write_text(f"#!/bin/sh\nexec {command}\n")
        shim.chmod(0o755)
    env.update(
        PATH=os.pathsep.join([str(bin_dir), env.get("PATH", "")]),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        PYTHONDONTWRITEBYTECODE="1",
        STREAM_REC_BROKER="127.0.0.1:1",  # nothing listens there: no block reaches a broker
        STREAM_REC_STATE_DIR=str(work / "state"),
        STREAM_REC_REGISTRY_DIR=str(work / "registry"),
        STREAM_REC_DATA_DIR=str(ROOT.parent / "shared" / "data"),
    )
    return env


def run_block(block: Block, work: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = work / f".block-{block.line}"
    script.write_text(block.body)
    if RUN_LANGUAGES[block.lang] == "python":
        command = [sys.executable, str(script)]
    else:
        command = ["bash", "-e", "-o", "pipefail", str(script)]
    try:
        return subprocess.run(command, cwd=work, env=env, capture_output=True, text=True,
                              timeout=BLOCK_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        printed = [part.decode(errors="replace") if isinstance(part, bytes) else part or ""
                   for part in (exc.stdout, exc.stderr)]
        pytest.fail(f"{block.where()} ran past {BLOCK_TIMEOUT_S} s:\n{block.body}\n"
                    + "".join(printed))


@pytest.mark.parametrize("page", RUN_PAGES, ids=[page.name for page in RUN_PAGES])
def test_runnable_blocks_run(page: Path, tmp_path: Path) -> None:
    env = block_environment(tmp_path)
    for block, status, output in run_plan(page):
        done = run_block(block, tmp_path, env)
        printed = done.stdout + done.stderr
        report = (f"{block.where()}:\n{textwrap.indent(block.body, '    ')}"
                  f"exited {done.returncode}, printed:\n{textwrap.indent(printed, '    ')}")
        assert done.returncode == status, f"expected exit status {status}; {report}"
        if output is not None:
            for line in filter(None, (line.strip() for line in output.body.splitlines())):
                assert line in printed, f"{output.where()}: {line!r} not printed; {report}"


@pytest.mark.parametrize("block", EXAMPLES, ids=[b.where() for b in EXAMPLES])
def test_json_example_is_a_valid_message(block: Block) -> None:
    name = block.marker.removeprefix("example:").strip()
    schema_file = ROOT / "schemas" / f"{name}.schema.json"
    assert block.lang == "json", f"{block.where()}: an example must be a json block"
    assert schema_file.exists(), f"{block.where()}: no schema {schema_file.name}"
    value = json.loads(block.body)
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(
        value)
    if name == "storefront-event":  # the worker's own validator accepts it too
        parse_message(block.body.encode(), 65536)


def test_markers_sit_on_blocks_the_tests_understand() -> None:
    """A mistyped marker or a marker away from its block would silently test nothing."""
    problems = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        on_blocks = {block.line for block in marked_blocks(page)}
        for marker in ANY_MARKER.finditer(text):
            line = text.count("\n", 0, marker.start()) + 1
            if line not in on_blocks:
                problems.append(f"docs/{page.name}:{line}: marker not right before a fenced block")
        for block in marked_blocks(page):
            kind = block.marker.split(":")[0].strip()
            if kind == "run" and block.lang not in RUN_LANGUAGES:
                problems.append(f"{block.where()}: cannot run a {block.lang!r} block")
            elif kind == "run" and not re.fullmatch(r"run(:\s*exit\s+\d+)?", block.marker):
                problems.append(f"{block.where()}: unknown marker {block.marker!r}")
        outputs = [b for b in marked_blocks(page) if b.marker == "output"]
        runs_with_output = [o for _, _, o in run_plan(page) if o is not None]
        for orphan in set(b.line for b in outputs) - set(o.line for o in runs_with_output):
            problems.append(f"docs/{page.name}:{orphan}: output block without a run block "
                            "right before it")
    assert not problems, "\n".join(problems)


def test_docs_have_runnable_blocks() -> None:
    assert sum(len(run_plan(page)) for page in PAGES) >= 3, "no runnable blocks left in docs/"
