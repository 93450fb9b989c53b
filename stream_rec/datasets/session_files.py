"""Readers for the two session-list formats (no timestamps, no event types: all clicks).

``sessions:PATH`` — ``train_sessions.txt`` (one session per line, item ids separated by spaces,
oldest first) and ``test.tsv`` (header ``prefix<TAB>target``; one next-item case per line).
``categories:PATH`` — ``{train,valid,test}_sessions.tsv`` (header ``session_id<TAB>items``) and
``item_categories.tsv`` (``item_id<TAB>category``); ``valid`` is optional and, when present,
is added to the training sessions (the model keeps no separate validation split).

Neither format has times, so the readers make them up: five minutes between sessions, ten seconds
between clicks, test after train. ``Dataset.synthetic_time`` says so.
"""

from __future__ import annotations

from pathlib import Path

from stream_rec.datasets.problems import Problems, read_lines, require_folder
from stream_rec.datasets.types import Dataset, Interaction, Session, TestCase
from stream_rec.errors import UserError

EPOCH_MS = 1_600_000_000_000  # where made-up time starts (2020-09-13)
SESSION_GAP_MS = 300_000
CLICK_GAP_MS = 10_000


class _Clock:
    """Hands out made-up, strictly increasing session start times."""

    def __init__(self) -> None:
        self.next_ms = EPOCH_MS

    def session(self, session_id: str, items: list[str]) -> Session:
        start = self.next_ms
        self.next_ms += SESSION_GAP_MS + CLICK_GAP_MS * len(items)
        events = tuple(Interaction(item, "click", start + CLICK_GAP_MS * j, session_id)
                       for j, item in enumerate(items))
        return Session(session_id, session_id, events)


def read_sessions_format(folder: Path) -> Dataset:
    """The ``sessions:PATH`` dataset: training sessions plus next-item test cases."""
    require_folder(folder, "sessions")
    clock = _Clock()
    train_path = folder / "train_sessions.txt"
    problems = Problems(str(train_path))
    train: list[Session] = []
    for number, line in enumerate(read_lines(train_path), start=1):
        items = line.split()
        if not items:
            continue
        if any("\t" in i for i in items):
            problems.add(f"line {number}", "unexpected tab")
            continue
        train.append(clock.session(f"train-{number}", items))
    problems.report()
    cases, test = _read_test_cases(folder / "test.tsv", clock)
    if not train:
        raise UserError(f"no training sessions in {train_path}")
    return Dataset(name=folder.name, train=tuple(train), test=tuple(test),
                   explicit_cases=tuple(cases), synthetic_time=True)


def _read_test_cases(path: Path, clock: _Clock) -> tuple[list[TestCase], list[Session]]:
    """The listed cases, plus the sessions they come from (for replay: longest chain wins)."""
    problems = Problems(str(path))
    rows: list[tuple[list[str], str]] = []
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if number == 1 and [f.strip().lower() for f in fields] == ["prefix", "target"]:
            continue
        if len(fields) != 2 or not fields[0].split() or len(fields[1].split()) != 1:
            problems.add(f"line {number}", "expected 'prefix<TAB>target'")
            continue
        rows.append((fields[0].split(), fields[1].strip()))
    problems.report()
    if not rows:
        raise UserError(f"no test cases in {path}")
    groups: list[list[str]] = []
    owner: list[int] = []  # group of each row
    for prefix, target in rows:
        full = [*prefix, target]
        if not groups or groups[-1][: len(full)] != full:
            groups.append(full)
        owner.append(len(groups) - 1)
    test = [clock.session(f"test-{n}", items) for n, items in enumerate(groups, start=1)]
    # Cases get the times of the session they were found in, so replay and evaluation agree.
    cases = [TestCase(test[g].events[: len(prefix)], test[g].events[len(prefix)])
             for (prefix, _), g in zip(rows, owner, strict=True)]
    return cases, test


def read_categories_format(folder: Path) -> Dataset:
    """The ``categories:PATH`` dataset: train (+ valid) and test sessions, item categories."""
    require_folder(folder, "categories")
    clock = _Clock()
    train = _read_session_table(folder / "train_sessions.tsv", clock, required=True)
    train += _read_session_table(folder / "valid_sessions.tsv", clock, required=False)
    test = _read_session_table(folder / "test_sessions.tsv", clock, required=True)
    items = _read_item_categories(folder / "item_categories.tsv")
    if not train:
        raise UserError(f"no training sessions in {folder / 'train_sessions.tsv'}")
    if not any(len(s) > 1 for s in test):
        raise UserError(f"no test session with two or more items in {folder}")
    return Dataset(name=folder.name, train=tuple(train), test=tuple(test), items=items,
                   synthetic_time=True)


def _read_session_table(path: Path, clock: _Clock, required: bool) -> list[Session]:
    if not required and not path.exists():
        return []
    problems = Problems(str(path))
    sessions: list[Session] = []
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if number == 1 and fields[0].strip().lower() == "session_id":
            continue
        if len(fields) != 2 or not fields[0].strip() or not fields[1].split():
            problems.add(f"line {number}", "expected 'session_id<TAB>items'")
            continue
        sessions.append(clock.session(f"{path.stem}-{fields[0].strip()}", fields[1].split()))
    problems.report()
    return sessions


def _read_item_categories(path: Path) -> dict[str, dict[str, str]]:
    problems = Problems(str(path))
    items: dict[str, dict[str, str]] = {}
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split("\t")]
        if number == 1 and fields[0].lower() == "item_id":
            continue
        if len(fields) != 2 or not fields[0] or not fields[1]:
            problems.add(f"line {number}", "expected 'item_id<TAB>category'")
            continue
        items[fields[0]] = {"category": fields[1]}
    problems.report()
    return items
