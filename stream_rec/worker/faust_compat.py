"""The one place stream-rec reaches into Faust internals, and why.

Faust decides which RocksDB partition a table read/write uses, and which changelog partition
a write goes to, from the "current event" (a context variable). ``stream.take_events`` hands
over a batch that mixes partitions while the current event stays at the last message, so a
table write for an earlier shopper would land in the wrong partition. ``acting_for`` makes one
message current for this task only. It deliberately leaves ``Stream.current_event`` alone:
the take buffer, filling concurrently, reads that attribute to collect new messages.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from faust.streams import _current_event


@contextmanager
def acting_for(event: Any) -> Iterator[None]:
    """Make ``event`` Faust's current event inside the block (for table partitioning)."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)
