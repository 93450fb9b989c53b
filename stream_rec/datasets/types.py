"""The in-memory shape every dataset reader produces, whatever the source format.

Events keep raw string ids and the contract's event type names, never model indices, so the
same data can train one model version and be scored by another.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

ItemAttributes = Mapping[str, Mapping[str, str]]  # item_id -> {attribute name: raw value}


class Interaction(NamedTuple):
    """One shopper action: raw item id, contract event type, epoch ms, shopper id."""

    item_id: str
    event_type: str
    ts_ms: int
    user_id: str


@dataclass(frozen=True)
class Session:
    """Consecutive actions of one shopper, oldest first."""

    session_id: str
    user_id: str
    events: tuple[Interaction, ...]

    def __len__(self) -> int:
        return len(self.events)


@dataclass(frozen=True)
class TestCase:
    """Next-item prediction: the history so far (oldest first) and the action that followed."""

    history: tuple[Interaction, ...]
    target: Interaction


@dataclass(frozen=True)
class Dataset:
    """A train/test split plus what is known about the items.

    ``explicit_cases`` holds test cases exactly as a file listed them (the ``sessions`` format);
    otherwise the cases are every prefix -> next action of each test session.
    """

    name: str
    train: tuple[Session, ...]
    test: tuple[Session, ...]
    items: dict[str, dict[str, str]] = field(default_factory=dict)
    explicit_cases: tuple[TestCase, ...] | None = None
    synthetic_time: bool = False  # True when the source has no timestamps (ts_ms made up)

    def test_cases(self) -> list[TestCase]:
        if self.explicit_cases is not None:
            return list(self.explicit_cases)
        return list(iter_cases(self.test))

    def attribute_names(self) -> list[str]:
        """Attribute columns known for the items, sorted for a stable order."""
        names: set[str] = set()
        for attrs in self.items.values():
            names.update(attrs)
        return sorted(names)

    def time_range_ms(self) -> tuple[int, int] | None:
        """(first, last) timestamp of the training events, None without training events."""
        stamps = [e.ts_ms for s in self.train for e in s.events]
        if not stamps:
            return None
        return min(stamps), max(stamps)

    def summary(self) -> dict[str, int]:
        return {
            "train_sessions": len(self.train),
            "train_events": sum(len(s) for s in self.train),
            "test_sessions": len(self.test),
            "test_cases": len(self.test_cases()),
            "items_with_attributes": len(self.items),
        }


def iter_cases(sessions: tuple[Session, ...] | list[Session]) -> Iterator[TestCase]:
    """Every prefix -> next action of every session (repeats kept: they count)."""
    for session in sessions:
        events = session.events
        for t in range(1, len(events)):
            yield TestCase(events[:t], events[t])
