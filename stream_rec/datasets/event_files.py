"""Reader for the ``events:PATH`` format: an event log plus an item attribute table.

``events_train.csv`` and ``events_test.csv`` have a header naming at least ``timestamp`` (ISO
8601 or epoch ms), ``user_id``, ``item_id`` and ``event``; ``session_id`` is optional. Without
it, a shopper's session ends after 30 minutes of silence. ``items.csv`` has ``item_id`` and
any attribute columns (category, brand, shop, price, ...), all kept as raw strings.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from stream_rec.core.events import InvalidEvent, parse_timestamp
from stream_rec.datasets.event_names import contract_type
from stream_rec.datasets.problems import Problems, read_lines, require_folder
from stream_rec.datasets.types import Dataset, Interaction, Session
from stream_rec.errors import UserError

SESSION_GAP_MS = 30 * 60 * 1000
_ALIASES = {
    "timestamp": ("timestamp", "ts", "time"),
    "user_id": ("user_id", "user"),
    "session_id": ("session_id", "session"),
    "item_id": ("item_id", "item"),
    "event": ("event", "type", "event_type"),
}


def read_events_format(folder: Path) -> Dataset:
    """The ``events:PATH`` dataset: train and test event logs plus the optional item table."""
    require_folder(folder, "events")
    train = read_event_log(folder / "events_train.csv")
    test = read_event_log(folder / "events_test.csv")
    items = read_item_table(folder / "items.csv") if (folder / "items.csv").exists() else {}
    if not train:
        raise UserError(f"no training events in {folder / 'events_train.csv'}")
    return Dataset(name=folder.name, train=tuple(train), test=tuple(test), items=items)


def timestamp_ms(raw: str) -> int:
    """Epoch ms from ISO 8601 or a number (seconds when it has 10 digits or fewer)."""
    text = raw.strip()
    if text.replace(".", "", 1).isdigit():
        value = float(text)
        return parse_timestamp(value * 1000 if value < 1e11 else value)
    return parse_timestamp(text)


def read_event_log(path: Path) -> list[Session]:
    """One event-log CSV as shopper sessions, oldest first; malformed rows skipped and reported."""
    problems = Problems(str(path))
    rows = list(csv.reader(read_lines(path)))
    if not rows:
        raise UserError(f"event file {path} is empty")
    column = _columns(rows[0], path)
    width = len(rows[0])
    by_session: dict[str, list[tuple[int, int, Interaction]]] = defaultdict(list)
    for number, row in enumerate(rows[1:], start=2):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != width:
            problems.add(f"line {number}", f"expected {width} fields, got {len(row)}")
            continue
        event_type = contract_type(row[column["event"]])
        if event_type is None:
            problems.add(f"line {number}", f"unknown event {row[column['event']]!r}")
            continue
        user, item = row[column["user_id"]].strip(), row[column["item_id"]].strip()
        if not user or not item:
            problems.add(f"line {number}", "empty user_id or item_id")
            continue
        try:
            ts = timestamp_ms(row[column["timestamp"]])
        except InvalidEvent as exc:
            problems.add(f"line {number}", exc.reason)
            continue
        session = row[column["session_id"]].strip() if "session_id" in column else ""
        key = f"{user}\x1f{session}" if session else f"{user}\x1f"
        by_session[key].append((ts, number, Interaction(item, event_type, ts, user)))
    problems.report()
    return _sessions(by_session)


def _columns(header: list[str], path: Path) -> dict[str, int]:
    names = [h.strip().lower() for h in header]
    found: dict[str, int] = {}
    for key, aliases in _ALIASES.items():
        for alias in aliases:
            if alias in names:
                found[key] = names.index(alias)
                break
    missing = [k for k in ("timestamp", "user_id", "item_id", "event") if k not in found]
    if missing:
        raise UserError(f"event file {path} lacks column(s) {', '.join(missing)} in its header")
    return found


def _sessions(groups: dict[str, list[tuple[int, int, Interaction]]]) -> list[Session]:
    """Sort each group by time; split session-less groups on 30-minute gaps; order by start."""
    sessions: list[Session] = []
    for key, rows in groups.items():
        rows.sort(key=lambda r: (r[0], r[1]))
        user, session_id = key.split("\x1f", 1)
        events = [r[2] for r in rows]
        for n, chunk in enumerate(split_on_gaps(events) if not session_id else [events]):
            sid = session_id or f"{user}-{n}"
            sessions.append(Session(sid, user, tuple(chunk)))
    sessions.sort(key=lambda s: (s.events[0].ts_ms, s.session_id))
    return sessions


def split_on_gaps(events: list[Interaction]) -> Iterable[list[Interaction]]:
    """A shopper's time-ordered events cut into sessions wherever 30 minutes pass without one."""
    chunk: list[Interaction] = []
    for event in events:
        if chunk and event.ts_ms - chunk[-1].ts_ms > SESSION_GAP_MS:
            yield chunk
            chunk = []
        chunk.append(event)
    if chunk:
        yield chunk


def read_item_table(path: Path) -> dict[str, dict[str, str]]:
    """item_id -> {attribute: raw value}; empty values are left out (unknown)."""
    problems = Problems(str(path))
    rows = list(csv.reader(read_lines(path)))
    if not rows:
        return {}
    names = [h.strip() for h in rows[0]]
    lowered = [n.lower() for n in names]
    if "item_id" not in lowered:
        raise UserError(f"item file {path} has no item_id column in its header")
    id_col = lowered.index("item_id")
    items: dict[str, dict[str, str]] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(names) or not row[id_col].strip():
            problems.add(f"line {number}", f"expected {len(names)} fields with an item_id")
            continue
        items[row[id_col].strip()] = {
            lowered[c]: v.strip() for c, v in enumerate(row) if c != id_col and v.strip()
        }
    problems.report()
    return items
