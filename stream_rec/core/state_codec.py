"""Compact, versioned bytes for ``UserState`` (the RocksDB table value).

JSON with one-letter keys keeps it debuggable with any Kafka tool; the profile vector is
float16 in base64 (2 bytes a dimension) because it dominates the size otherwise. orjson does
the (de)serialising: state is read and written once per event, on the hot path. No pickle:
state read back from a changelog is data, never code.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from stream_rec.core.state import DIGEST_CHARS, HistoryEntry, UserState

FORMAT_VERSION = 1


class StateDecodeError(ValueError):
    """Stored state is unreadable (corrupt or from an unknown format version)."""


def encode_state(state: UserState) -> bytes:
    doc: dict[str, Any] = {
        "v": FORMAT_VERSION,
        "h": [[h.item_id, h.type_code, h.ts_ms] for h in state.history],
        "c": [[c, s] for c, s in state.category_affinity],
        "b": list(state.purchased),
        "s": [[i, n] for i, n in state.shown],
        "e": "".join(state.seen_events),
        "n": state.n_events,
        "t": state.last_ts_ms,
    }
    if state.source[0] >= 0:
        doc["o"] = list(state.source)
    if state.profile:
        doc["p"] = base64.b64encode(state.profile).decode("ascii")
        doc["m"] = state.profile_model
    return orjson.dumps(doc)


def decode_state(raw: bytes | None) -> UserState:
    if not raw:
        return UserState()
    try:
        doc = orjson.loads(raw)
        if doc.get("v") != FORMAT_VERSION:
            raise StateDecodeError(f"unknown state format version {doc.get('v')!r}")
        digests = doc["e"]
        return UserState(
            history=tuple(map(HistoryEntry._make, doc["h"])),
            category_affinity=tuple(map(tuple, doc["c"])),
            purchased=tuple(doc["b"]),
            shown=tuple(map(tuple, doc["s"])),
            seen_events=tuple(digests[k:k + DIGEST_CHARS]
                              for k in range(0, len(digests), DIGEST_CHARS)),
            profile=base64.b64decode(doc["p"]) if "p" in doc else b"",
            profile_model=str(doc.get("m", "")),
            n_events=int(doc["n"]),
            last_ts_ms=int(doc["t"]),
            source=(int(doc["o"][0]), int(doc["o"][1])) if "o" in doc else (-1, -1),
        )
    except StateDecodeError:
        raise
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
        raise StateDecodeError(f"unreadable user state: {exc}") from exc
