"""The dead-letter record: why a message was rejected, its bytes and where it came from.

A record always fits in one Kafka message: the raw value and key are cut to a bounded prefix
(their full length and SHA-256 say what they were), because a rejected message may be as large
as the broker accepts and base64 makes it a third larger still.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

# Bytes of a rejected value (and key) kept in its dead letter. Base64 makes the value's part
# at most 342 KiB: the record stays far below Kafka's default 1 MiB message limit.
MAX_RAW_BYTES = 256 * 1024
MAX_KEY_BYTES = 4 * 1024
MAX_REASON_CHARS = 1000


@dataclass(frozen=True, slots=True)
class Message:
    """One message of the events topic as the consumer handed it over."""

    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None
    generation: int = 0  # the consumer group generation it was read in


def dead_letter(reason: str, message: Message) -> bytes:
    """The JSON value sent to the dead-letter topic for ``message``."""
    doc: dict[str, Any] = {"reason": reason[:MAX_REASON_CHARS] or "rejected"}
    doc.update(_bytes_fields("raw", message.value, MAX_RAW_BYTES))
    doc.update(_bytes_fields("key", message.key, MAX_KEY_BYTES))
    doc.update(topic=message.topic, partition=message.partition, offset=message.offset,
               timestamp_ms=message.timestamp_ms)
    return orjson.dumps(doc)


def _bytes_fields(name: str, data: bytes | None, limit: int) -> dict[str, Any]:
    """``<name>_base64`` (a prefix of at most ``limit`` bytes), the full length, whether it
    was cut, and the SHA-256 of all of it (to match the record against the original)."""
    if data is None:
        return {f"{name}_base64": None}
    kept = data[:limit]
    return {f"{name}_base64": base64.b64encode(kept).decode("ascii"),
            f"{name}_bytes": len(data), f"{name}_truncated": len(kept) < len(data),
            f"{name}_sha256": hashlib.sha256(data).hexdigest()}
