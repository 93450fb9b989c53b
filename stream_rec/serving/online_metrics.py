"""Online metrics: what shoppers did with the lists they were shown, per group of lists.

A group is the model version, re-ranking policy and experiment arm that made a list
(``core/attribution.group_key``). Each partition of the events topic has one record in the
``online-metrics`` table: the figures of every group, and the offset (with the topic-id tag)
up to which they include that partition's messages. A message counts when its offset is past
the record's and it is not a storefront's retry of an event already applied (a repeated
``event_id`` at another offset). Crashing between the state write and the metrics write, in
either order, then neither loses nor double counts a message: a message the state already has
but the record not still counts (its offset is past the record's); a message the record has is
never counted again, whatever the state says.

Per-partition records add up across workers, restarts and rebalances: each partition has one
owner at a time, and its record moves with it through the changelog.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from stream_rec.core.distinct import REGISTERS, add_items, estimate, merge, new_sketch

FIGURES: tuple[str, ...] = (
    "lists",  # lists published
    "impressions",  # impressions received
    "impressed_items",  # items displayed, summed over impressions
    "clicks",  # views and clicks attributed to a list
    "add_to_carts",
    "purchases",
    "revenue",  # price x quantity (quantity 1 when absent) of attributed purchases with a price
    "position_sum",  # over attributed clicks that name or imply a position
    "positioned_clicks",
    "ild_sum",  # ILD of impressed lists (core/tally.list_diversity), over those with a pair
    "ild_lists",
    "categories_sum",  # distinct categories of impressed lists, summed over impressions
)


@dataclass
class PartitionMetrics:
    """One partition's record: figures by group, and how far into the partition they go."""

    offset: int = -1  # the last offset counted
    topic: str = ""  # the topic-id tag the offset counts in ("" = unknown)
    groups: dict[str, dict[str, float]] = field(default_factory=dict)
    # Per group, a sketch of the distinct items impressed (core/distinct.py): adding an item
    # twice changes nothing, so it needs no offset guard.
    sketches: dict[str, bytearray] = field(default_factory=dict)

    def counts(self, offset: int, topic: str) -> bool:
        """Whether a message at ``offset`` of ``topic`` is past what this record holds."""
        if self.topic and topic and self.topic != topic:
            return True  # a topic created anew: its offsets restart
        return offset > self.offset

    def add(self, group: str, figure: str, amount: float = 1.0) -> None:
        """Add to one figure of one group."""
        figures = self.groups.setdefault(group, dict.fromkeys(FIGURES, 0.0))
        figures[figure] = figures.get(figure, 0.0) + amount

    def impressed(self, group: str, items: Iterable[str]) -> None:
        """Add items to the group's distinct-items sketch."""
        sketch = self.sketches.get(group)
        if sketch is None:
            sketch = self.sketches[group] = new_sketch()
        add_items(sketch, items)

    def advance(self, offset: int, topic: str) -> None:
        """Record that messages up to ``offset`` of ``topic`` are counted."""
        if topic != self.topic and topic:
            self.topic, self.offset = topic, offset
        else:
            self.offset = max(self.offset, offset)

    def encode(self) -> bytes:
        """The table value."""
        doc: dict[str, Any] = {"v": 1, "o": self.offset, "t": self.topic, "g": self.groups}
        if self.sketches:
            doc["d"] = {g: base64.b64encode(bytes(s)).decode("ascii")
                        for g, s in self.sketches.items()}
        return orjson.dumps(doc)


def decode_partition_metrics(raw: bytes | None) -> PartitionMetrics:
    """A stored record (an empty one for None); an unreadable record starts afresh."""
    if not raw:
        return PartitionMetrics()
    try:
        doc: Any = orjson.loads(raw)
        groups = {str(g): {str(k): float(v) for k, v in figures.items()}
                  for g, figures in doc["g"].items()}
        sketches = {str(g): bytearray(base64.b64decode(text))
                    for g, text in doc.get("d", {}).items()}
        return PartitionMetrics(int(doc["o"]), str(doc.get("t", "")), groups,
                                {g: s for g, s in sketches.items() if len(s) == REGISTERS})
    except (ValueError, KeyError, TypeError, AttributeError, orjson.JSONDecodeError,
            binascii.Error):
        return PartitionMetrics()


def metrics_key(partition: int) -> bytes:
    """The table key of a partition's record."""
    return f"partition-{partition}".encode()


def add_up(records: list[PartitionMetrics]) -> dict[str, dict[str, float]]:
    """Figures by group, summed over partitions, with ``distinct_items`` (approximate: a
    HyperLogLog estimate, about 3 % off) where impressions came."""
    total: dict[str, dict[str, float]] = {}
    sketches: dict[str, bytearray] = {}
    for record in records:
        for group, figures in record.groups.items():
            into = total.setdefault(group, dict.fromkeys(FIGURES, 0.0))
            for name, value in figures.items():
                into[name] = into.get(name, 0.0) + value
        for group, sketch in record.sketches.items():
            merge(sketches.setdefault(group, new_sketch()), sketch)
    for group, sketch in sketches.items():
        total.setdefault(group, dict.fromkeys(FIGURES, 0.0))["distinct_items"] = round(
            estimate(sketch))
    return total
