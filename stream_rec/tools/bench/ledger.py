"""Send and arrival times per event_id: what lets the benchmark count what it claims.

Every event the bench sends has a unique ``event_id``; every message that comes back (a
recommendation list from the pipeline, or the forwarded event from a passthrough) carries the
same id. The ledger pairs them, so throughput and latency are measured per event, and missing
or duplicated outputs are counted rather than hidden. Pure: no Kafka, no clocks of its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

# The first "event_id" string field of a JSON object: the top-level one in both the event
# contract (json.dumps with spaces) and the worker's compact recommendation message, which
# puts user_id and event_id before the list. Far cheaper than json.loads on a 2 KB list.
_EVENT_ID = re.compile(rb'"event_id"\s*:\s*"((?:[^"\\]|\\.)*)"')
# The worker's own time for a list (``latency_ms``, from its batch being taken to the list
# being made): the last field of a recommendation message.
_OWN_MS = re.compile(rb'"latency_ms"\s*:\s*(-?[0-9][0-9.eE+-]*)\s*}\s*$')


def extract_event_id(value: bytes | None) -> str | None:
    """The ``event_id`` of a JSON message value, or None when it has none.

    Ids with JSON escapes are returned as written (the bench's own ids never need escapes).
    """
    if not value:
        return None
    match = _EVENT_ID.search(value)
    return match.group(1).decode("utf-8", "replace") if match else None


def extract_own_ms(value: bytes | None) -> float | None:
    """A recommendation message's ``latency_ms`` (None for any other message)."""
    match = _OWN_MS.search(value) if value else None
    return float(match.group(1)) if match else None


@dataclass
class Ledger:
    """Times in seconds on one monotonic clock, keyed by event id.

    ``sent`` holds when each event was due to be sent (see ``harness``: at a fixed rate that
    is the schedule, so a client that falls behind cannot hide latency), ``arrived`` when its
    first output reached the client. Later outputs for the same id count as duplicates; outputs
    for ids never sent count as unknown.
    """

    sent: dict[str, float] = field(default_factory=dict)
    arrived: dict[str, float] = field(default_factory=dict)
    duplicates: int = 0
    unknown: int = 0
    # For outputs that say so: when the target's producer created the output (its Kafka
    # timestamp, on the ledger's clock) and the target's own time for it (ms).
    made: dict[str, float] = field(default_factory=dict)
    own_ms: dict[str, float] = field(default_factory=dict)

    def record_send(self, event_id: str, at_s: float) -> None:
        if event_id in self.sent:
            raise ValueError(f"event id {event_id!r} sent twice: ids must be unique per run")
        self.sent[event_id] = at_s

    def record_arrival(self, event_id: str | None, at_s: float) -> None:
        if event_id is None or event_id not in self.sent:
            self.unknown += 1
        elif event_id in self.arrived:
            self.duplicates += 1
        else:
            self.arrived[event_id] = at_s

    def record_made(self, event_id: str | None, at_s: float, own_ms: float | None) -> None:
        """The output's creation time and the target's own time, for a first arrival."""
        if event_id is not None and event_id in self.sent and event_id not in self.made:
            self.made[event_id] = at_s
            if own_ms is not None:
                self.own_ms[event_id] = own_ms

    def missing(self, event_ids: Iterable[str]) -> list[str]:
        """The ids among ``event_ids`` whose output has not arrived (yet)."""
        return [e for e in event_ids if e not in self.arrived]

    def all_arrived(self, event_ids: Iterable[str]) -> bool:
        arrived = self.arrived
        return all(e in arrived for e in event_ids)

    def latencies_ms(self, event_ids: Iterable[str]) -> list[float]:
        """Arrival minus send, in ms, for the ids that have arrived."""
        sent, arrived = self.sent, self.arrived
        return [(arrived[e] - sent[e]) * 1000.0 for e in event_ids if e in arrived]

    def latency_parts_ms(self, event_ids: Iterable[str]) -> dict[str, list[float]]:
        """Each latency in three parts, in ms, for the ids whose output says when it was made
        and how long the target took: ``to_worker`` (due to be sent -> the target began on
        it: the broker, the consumer, the batch window, the batch before it), ``in_worker``
        (the target's own ``latency_ms``) and ``from_worker`` (made -> arrived: the producer's
        linger, the broker, this client's fetch). Creation times are the target's clock:
        the parts are only meaningful on one machine (or synchronised clocks)."""
        parts: dict[str, list[float]] = {"to_worker": [], "in_worker": [], "from_worker": []}
        for e in event_ids:
            if e not in self.arrived or e not in self.made or e not in self.own_ms:
                continue
            own = self.own_ms[e]
            parts["to_worker"].append((self.made[e] - self.sent[e]) * 1000.0 - own)
            parts["in_worker"].append(own)
            parts["from_worker"].append((self.arrived[e] - self.made[e]) * 1000.0)
        return parts

    def span_s(self, event_ids: Iterable[str]) -> float:
        """Seconds from the first send to the last arrival among ``event_ids`` (all arrived)."""
        ids = list(event_ids)
        if not ids:
            return 0.0
        return max(self.arrived[e] for e in ids) - min(self.sent[e] for e in ids)
