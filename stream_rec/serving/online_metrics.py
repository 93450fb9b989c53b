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

from dataclasses import dataclass, field
from typing import Any

import orjson

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
)


@dataclass
class PartitionMetrics:
    """One partition's record: figures by group, and how far into the partition they go."""

    offset: int = -1  # the last offset counted
    topic: str = ""  # the topic-id tag the offset counts in ("" = unknown)
    groups: dict[str, dict[str, float]] = field(default_factory=dict)

    def counts(self, offset: int, topic: str) -> bool:
        """Whether a message at ``offset`` of ``topic`` is past what this record holds."""
        if self.topic and topic and self.topic != topic:
            return True  # a topic created anew: its offsets restart
        return offset > self.offset

    def add(self, group: str, figure: str, amount: float = 1.0) -> None:
        """Add to one figure of one group."""
        figures = self.groups.setdefault(group, dict.fromkeys(FIGURES, 0.0))
        figures[figure] = figures.get(figure, 0.0) + amount

    def advance(self, offset: int, topic: str) -> None:
        """Record that messages up to ``offset`` of ``topic`` are counted."""
        if topic != self.topic and topic:
            self.topic, self.offset = topic, offset
        else:
            self.offset = max(self.offset, offset)

    def encode(self) -> bytes:
        """The table value."""
        return orjson.dumps({"v": 1, "o": self.offset, "t": self.topic, "g": self.groups})


def decode_partition_metrics(raw: bytes | None) -> PartitionMetrics:
    """A stored record (an empty one for None); an unreadable record starts afresh."""
    if not raw:
        return PartitionMetrics()
    try:
        doc: Any = orjson.loads(raw)
        groups = {str(g): {str(k): float(v) for k, v in figures.items()}
                  for g, figures in doc["g"].items()}
        return PartitionMetrics(int(doc["o"]), str(doc.get("t", "")), groups)
    except (ValueError, KeyError, TypeError, AttributeError, orjson.JSONDecodeError):
        return PartitionMetrics()


def metrics_key(partition: int) -> bytes:
    """The table key of a partition's record."""
    return f"partition-{partition}".encode()


def add_up(records: list[PartitionMetrics]) -> dict[str, dict[str, float]]:
    """Figures by group, summed over partitions."""
    total: dict[str, dict[str, float]] = {}
    for record in records:
        for group, figures in record.groups.items():
            into = total.setdefault(group, dict.fromkeys(FIGURES, 0.0))
            for name, value in figures.items():
                into[name] = into.get(name, 0.0) + value
    return total
