"""Compact, versioned bytes for ``UserState`` (the RocksDB table value).

JSON with one-letter keys keeps it debuggable with any Kafka tool; the profile vector is
float16 in base64 (2 bytes a dimension) because it dominates the size otherwise. orjson does
the (de)serialising: state is read and written once per event, on the hot path. No pickle:
state read back from a changelog is data, never code.
"""

from __future__ import annotations

import base64
import re
from itertools import repeat
from typing import Any

import orjson

from stream_rec.core.events import EVENT_TYPES
from stream_rec.core.state import DIGEST_CHARS, HistoryEntry, UserState, inactive_since

FORMAT_VERSION = 2
# Version 1 kept ``shown`` as [item, count] pairs under "s"; it is still read (a worker
# upgraded in place restores its shoppers from records the old version wrote).
READABLE_VERSIONS = (1, 2)


class StateDecodeError(ValueError):
    """Stored state is unreadable (corrupt or from an unknown format version)."""


def encode_state(state: UserState) -> bytes:
    """The shopper's state as the compact JSON bytes the ``user-state`` table stores."""
    doc: dict[str, Any] = {
        "v": FORMAT_VERSION,
        "h": [[h.item_id, h.type_code, h.ts_ms] for h in state.history],
        "c": [[c, s] for c, s in state.category_affinity],
        "b": list(state.purchased),
        "s": list(state.shown_items),
        "sn": list(state.shown_counts),
        "e": "".join(state.seen_events),
        "n": state.n_events,
        "t": state.last_ts_ms,
    }
    if state.source[0] >= 0:
        doc["o"] = list(state.source)
        if state.source_topic:  # an optional key: readers that predate it ignore it
            doc["ot"] = state.source_topic
    if state.active_ms:
        doc["a"] = state.active_ms
    if state.retries:
        doc["r"] = list(state.retries)
    if state.sent_lists:  # attribution: optional keys, so readers that predate them ignore them
        doc["ls"] = [list(entry) for entry in state.sent_lists]
    if state.impressed:
        doc["im"] = [[lid, group, ts, list(items), offset]
                     for lid, group, ts, items, offset in state.impressed]
    if state.clicks:
        doc["ck"] = [list(entry) for entry in state.clicks]
    if state.tallies:
        doc["x"] = [[key, list(figures)] for key, figures in state.tallies]
    if state.profile:
        doc["p"] = base64.b64encode(state.profile).decode("ascii")
        doc["m"] = state.profile_model
    return orjson.dumps(doc)


def decode_state(raw: bytes | None) -> UserState:
    """The shopper's state from table bytes (none: a new shopper); StateDecodeError if bad."""
    if not raw:
        return UserState()
    try:
        doc = orjson.loads(raw)
        version = doc.get("v")
        if version not in READABLE_VERSIONS:
            raise StateDecodeError(f"unknown state format version {version!r}")
        digests = doc["e"]
        history = doc["h"]
        if not set(map(len, history)) <= {3}:
            raise StateDecodeError("unreadable user state: a history entry is not 3 fields")
        if version == 1:
            shown_items, shown_counts = (tuple(x) for x in zip(*doc["s"], strict=True)) \
                if doc["s"] else ((), ())
        else:
            shown_items, shown_counts = tuple(doc["s"]), tuple(doc["sn"])
            if len(shown_items) != len(shown_counts):
                raise StateDecodeError("unreadable user state: shown items and counts differ")
        return UserState(
            # tuple.__new__ skips namedtuple._make's per-entry checks (lengths checked above).
            history=tuple(map(tuple.__new__, repeat(HistoryEntry), history)),
            category_affinity=tuple(map(tuple, doc["c"])),
            purchased=tuple(doc["b"]),
            shown_items=shown_items,
            shown_counts=shown_counts,
            seen_events=tuple(digests[k:k + DIGEST_CHARS]
                              for k in range(0, len(digests), DIGEST_CHARS)),
            profile=base64.b64decode(doc["p"]) if "p" in doc else b"",
            profile_model=str(doc.get("m", "")),
            n_events=int(doc["n"]),
            last_ts_ms=int(doc["t"]),
            source=(int(doc["o"][0]), int(doc["o"][1])) if "o" in doc else (-1, -1),
            source_topic=str(doc.get("ot", "")),
            active_ms=int(doc.get("a", 0)),
            retries=tuple(map(int, doc.get("r", ()))),
            sent_lists=tuple((str(lid), str(group)) for lid, group in doc.get("ls", ())),
            # The offsets came later: entries written without one read as -1 (unknown).
            impressed=tuple((str(e[0]), str(e[1]), int(e[2]), tuple(map(str, e[3])),
                             int(e[4]) if len(e) > 4 else -1) for e in doc.get("im", ())),
            clicks=tuple((str(e[0]), str(e[1]), int(e[2]), int(e[3]) if len(e) > 3 else -1)
                         for e in doc.get("ck", ())),
            tallies=tuple((str(key), tuple(map(float, figures)))
                          for key, figures in doc.get("x", ())),
        )
    except StateDecodeError:
        raise
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
        raise StateDecodeError(f"unreadable user state: {exc}") from exc


def stored_activity_ms(raw: bytes) -> int:
    """``inactive_since(decode_state(raw))`` read from the keys "a" (active_ms) and "t"
    (last_ts_ms) alone, for the expiry sweep, which looks at every stored shopper in turn:
    about a microsecond a record against 12-40 us for a full decode. A match cannot come from
    inside a string (a quote there is escaped) nor from a nested object (the record has none),
    so the last one is the key; both keys follow the long lists, so the search runs from the
    end. A record this encoder did not write, or without them as plain integers, is decoded
    in full (and raises ``StateDecodeError`` when unreadable); the rest of a record is not
    checked here."""
    if raw.startswith(b'{"v":'):
        at = raw.rfind(b',"a":')
        if at < 0:
            last = _integer_at(raw, raw.rfind(b',"t":'))
            if last is not None:
                return last
        else:
            active = _integer_at(raw, at)
            if active:
                return active
    return inactive_since(decode_state(raw))


_KEYED_INTEGER = re.compile(rb',"[a-z]":(-?[0-9]+)[,}]')


def _integer_at(raw: bytes, at: int) -> int | None:
    """The plain integer of the one-letter key found at ``at`` (None: -1, or not a plain
    integer there)."""
    if at < 0:
        return None
    match = _KEYED_INTEGER.match(raw, at)
    return int(match.group(1)) if match is not None else None


def state_summary(state: UserState) -> dict[str, Any]:
    """A shopper's state as readable JSON (the worker's ``/users/ID/state/`` and
    ``stream-rec user show``): history, purchases, affinities, items shown."""
    return {
        "history": [{"item_id": h.item_id, "type": EVENT_TYPES[h.type_code], "ts": h.ts_ms}
                    for h in state.history],
        "purchased": list(state.purchased),
        "category_affinity": dict(state.category_affinity),
        "shown": dict(state.shown),
        "n_events": state.n_events,
        "last_ts": state.last_ts_ms,
        "profile_model": state.profile_model or None,
    }
