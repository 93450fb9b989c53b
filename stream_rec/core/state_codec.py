"""Compact, versioned bytes for ``UserState`` (the RocksDB table value).

JSON with one-letter keys keeps it debuggable with any Kafka tool; the profile vector is
float16 in base64 (2 bytes a dimension) because it dominates the size otherwise. No pickle:
state read back from a changelog is data, never code.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np

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
    if state.profile:
        vector = np.asarray(state.profile, dtype=np.float16).tobytes()
        doc["p"] = base64.b64encode(vector).decode("ascii")
        doc["m"] = state.profile_model
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode_state(raw: bytes | None) -> UserState:
    if not raw:
        return UserState()
    try:
        doc = json.loads(raw)
        if doc.get("v") != FORMAT_VERSION:
            raise StateDecodeError(f"unknown state format version {doc.get('v')!r}")
        digests = doc["e"]
        profile: tuple[float, ...] = ()
        if "p" in doc:
            vector = np.frombuffer(base64.b64decode(doc["p"]), dtype=np.float16)
            profile = tuple(float(x) for x in vector)
        return UserState(
            history=tuple(HistoryEntry(str(i), int(t), int(ts)) for i, t, ts in doc["h"]),
            category_affinity=tuple((str(c), float(s)) for c, s in doc["c"]),
            purchased=tuple(str(i) for i in doc["b"]),
            shown=tuple((str(i), int(n)) for i, n in doc["s"]),
            seen_events=tuple(digests[k:k + DIGEST_CHARS]
                              for k in range(0, len(digests), DIGEST_CHARS)),
            profile=profile,
            profile_model=str(doc.get("m", "")),
            n_events=int(doc["n"]),
            last_ts_ms=int(doc["t"]),
        )
    except StateDecodeError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise StateDecodeError(f"unreadable user state: {exc}") from exc
