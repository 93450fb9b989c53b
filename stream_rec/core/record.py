"""``@record``: an immutable dataclass for values built several times per event.

``@dataclass(frozen=True)`` makes ``__init__`` set every field through ``object.__setattr__``
(the class's own ``__setattr__`` refuses). At the twenty fields of a shopper's state that is
2.3 us a construction against 0.33 for a plain slotted dataclass, and the worker builds the
state five or six times per event, plus an event, a request and a list. ``@record`` keeps
the immutability where it is checked, by the type checker (``dataclass_transform`` with
``frozen_default``: assigning to a field is a mypy error), and builds instances as a plain
slotted dataclass does. Instances still compare and hash by value, as frozen ones do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True)
def record(cls: type[T]) -> type[T]:
    """A slotted dataclass that mypy treats as frozen and that hashes by value."""
    return dataclass(slots=True, unsafe_hash=True)(cls)
