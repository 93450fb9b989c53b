"""What the recommender takes in and gives out: a request per event, a list per request."""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from dataclasses import field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np
import orjson
from numpy.typing import NDArray

from stream_rec.core.experiments import ExperimentTag
from stream_rec.core.record import record
from stream_rec.core.rounding import round6
from stream_rec.core.state import UserState
from stream_rec.rerank import RerankPolicy

# Why an item is on a list, in words a shop can show.
REASON_SIMILAR = "similar to your recent items"
REASON_TRENDING = "trending now"
REASON_NEW = "new in the catalog"
REASON_CATEGORY = "popular in a category you like"
REASON_RECENT = "you looked at this recently"
REASONS: tuple[str, ...] = (REASON_SIMILAR, REASON_TRENDING, REASON_NEW, REASON_CATEGORY,
                            REASON_RECENT)
REASON_CODE = {reason: str(k) for k, reason in enumerate(REASONS)}


@record
class RecRequest:
    """One list to make: for this shopper, in this state, after this event."""

    user_id: str
    event_id: str
    state: UserState
    received_ms: float  # time.time() * 1000 when the event was taken off the topic
    policy: RerankPolicy | None = None  # None: the configured default
    experiment: ExperimentTag | None = None  # the experiment arm that chose ``policy``
    model: str | None = None  # the model version the arm asks for (None: the served one)
    list_id: str | None = None  # names the list (``list_id_for``); None: a random one


def list_id_for(topic: str, partition: int, offset: int) -> str:
    """The id of the list made for the event message at (``topic``, ``partition``,
    ``offset``); ``topic`` is the topic-id digest where known (a topic created anew starts its
    offsets again), else the name. The same for every re-delivery of that message: a list
    published again after a crash carries the id of the one the shopper may already be
    looking at, so impressions and clicks that name it still find it, and consumers can drop
    the repeat. A storefront's retry of an event is another message, hence another list."""
    key = f"{topic}\x1f{partition}\x1f{offset}".encode()
    return hashlib.blake2b(key, digest_size=16).hexdigest()


@record
class Pool:
    """The candidates a list was picked from, best score first (eligible ones only, bounded):
    kept with the shopper's latest list so a request can re-rank them with other filters, a
    length or a policy, without scoring again (``serving/request_lists.py``)."""

    ids: tuple[str, ...]
    scores: NDArray[np.float32]
    reasons: str  # one code per item: an index into REASONS

    def encode(self) -> bytes:
        """The pool as a JSON object (scores as base64 float32: a third of their text)."""
        return orjson.dumps({"ids": self.ids, "r": self.reasons, "s": base64.b64encode(
            np.ascontiguousarray(self.scores, dtype="<f4").tobytes()).decode("ascii")})

    @classmethod
    def decode(cls, doc: Any) -> Pool:
        """A pool from its JSON object; ValueError when it is not one."""
        try:
            raw_ids, reasons = doc["ids"], doc["r"]
            scores = np.frombuffer(base64.b64decode(doc["s"], validate=True),
                                   dtype="<f4").astype(np.float32)
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise ValueError(f"unreadable candidate pool: {exc}") from None
        if (not isinstance(raw_ids, list) or not all(isinstance(i, str) for i in raw_ids)
                or not isinstance(reasons, str) or not reasons.isascii()
                or not reasons.isdigit() and reasons):
            raise ValueError("unreadable candidate pool: ids must be strings, reasons digits")
        ids = tuple(raw_ids)
        if not len(ids) == len(scores) == len(reasons):
            raise ValueError("unreadable candidate pool: ids, scores and reasons differ")
        return cls(ids, scores, reasons)


def with_pool(message: bytes, pool: Pool | None) -> bytes:
    """The ``latest-recs`` value: the published message with the pool as its last key."""
    if pool is None:
        return message
    return message[:-1] + b',"pool":' + pool.encode() + b"}"


def without_pool(value: bytes) -> bytes:
    """The published message from a ``latest-recs`` value (the pool is its last key, and the
    bytes ``,"pool":`` cannot occur inside a JSON string, whose quotes are escaped)."""
    cut = value.rfind(b',"pool":')
    return value if cut < 0 else value[:cut] + b"}"


class RecItem(NamedTuple):
    """One recommended item (a named tuple: a batch makes thousands, and building one took
    0.68 us as a frozen dataclass against 0.24 us as a named tuple)."""

    item_id: str
    score: float
    reason: str


@record
class RecList:
    """A re-ranked list for one event, as published."""

    user_id: str
    event_id: str
    items: tuple[RecItem, ...]
    model_version: str | None
    policy: RerankPolicy
    fallback: bool
    generated_at_ms: float
    latency_ms: float
    # Names this list for impressions and attribution (``list_id_for``).
    list_id: str = field(default_factory=lambda: secrets.token_hex(16))
    experiment: ExperimentTag | None = None
    pool: Pool | None = None  # kept with the latest list, not published

    def to_dict(self) -> dict[str, Any]:
        """The message on the recommendations topic (see docs/integration.md)."""
        return {
            "user_id": self.user_id,
            "event_id": self.event_id,
            "list_id": self.list_id,
            "experiment": None if self.experiment is None else
            {"id": self.experiment.id, "arm": self.experiment.arm,
             "version": self.experiment.version},
            "items": [{"item_id": i.item_id, "score": round6(i.score), "reason": i.reason}
                      for i in self.items],
            "model_version": self.model_version,
            "policy": self.policy.to_dict(),
            "fallback": self.fallback,
            "generated_at": datetime.fromtimestamp(self.generated_at_ms / 1000, UTC)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "latency_ms": round(self.latency_ms, 3),
        }
