"""Whether a worker's local state folder can still be restored from its broker.

The RocksDB tables in the state folder are a cache of the changelog topics: each table
partition remembers the changelog offset it has applied up to. When the broker loses those
topics (it was reset, its data folder removed, the topics deleted and recreated), the local
state is ahead of everything the broker holds, and Faust's recovery stops the worker with a
``ConsistencyError`` traceback that does not say what to do. The worker checks before Faust
starts (``stream_rec/worker/state_folder.py`` gathers the facts; this module decides, without
I/O) and stops with one line naming the folder, the cause and the fix instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

# Faust names a table partition's RocksDB folder "<table>-<partition>.db".
_PARTITION_DB = re.compile(r"^(?P<table>.+)-(?P<partition>\d+)\.db$")


@dataclass(frozen=True)
class TablePartition:
    """One partition of one local table, as its RocksDB folder's name gives it."""

    table: str
    partition: int


@dataclass(frozen=True)
class Applied:
    """How far one local table partition got, and where its changelog ends on the broker."""

    changelog: str
    partition: int
    persisted: int  # offset of the last changelog message the local partition has applied
    end: int  # the changelog partition's end offset (0 when the topic or partition is gone)


def table_partitions(names: Iterable[str]) -> dict[TablePartition, str]:
    """The table partitions among the names in a tables folder (others are left out)."""
    found: dict[TablePartition, str] = {}
    for name in names:
        match = _PARTITION_DB.match(name)
        if match:
            found[TablePartition(match["table"], int(match["partition"]))] = name
    return found


# The worker's tables (stream_rec/worker/agents.py): keyed like the events topic, each with a
# compacted changelog of the events topic's partition count (``topics.changelog_specs``).
WORKER_TABLES = ("user-state", "latest-recs", "online-metrics")


def changelog_topic(app_id: str, table: str) -> str:
    """Faust's changelog topic of ``table`` in the app ``app_id``."""
    return f"{app_id}-{table}-changelog"


def state_mismatch(saved_cluster: str | None, cluster: str,
                   applied: Iterable[Applied]) -> str | None:
    """Why the local state cannot be restored from this broker, or None when it can.

    ``saved_cluster`` is the id of the Kafka cluster the state was last used with (None when
    unknown). A changelog offset only grows, so a local partition that has applied offset P
    of a changelog that now ends at or before P has data the broker no longer holds.
    """
    if saved_cluster is not None and saved_cluster != cluster:
        return (f"it was built from Kafka cluster {saved_cluster} and the broker is now "
                f"cluster {cluster}, as after the broker's data was reset")
    ahead = sorted((a for a in applied if a.persisted >= a.end),
                   key=lambda a: (a.changelog, a.partition))
    if not ahead:
        return None
    first = ahead[0]
    more = f" (and {len(ahead) - 1} more partition(s))" if len(ahead) > 1 else ""
    return (f"it holds changelog {first.changelog}[{first.partition}] up to offset "
            f"{first.persisted}, but the broker's copy ends at offset {first.end}{more}, "
            "as after the topic was deleted or emptied")


def mismatch_message(tables: Path, cause: str) -> str:
    """The one line a worker stops with when its state cannot be restored."""
    return (f"the local state in {tables} cannot be restored from this broker: {cause}. "
            "Start the worker once with `stream-rec worker --reset-state` to discard it and "
            "rebuild it from what the changelog topics still hold (anything only the local "
            "state held is lost: those shoppers start afresh)")


def changelog_sizes(applied_ranges: Mapping[str, Iterable[tuple[int, int]]]) -> dict[str, int]:
    """Messages each changelog still spans: the sum of (end - beginning) over its partitions
    (an upper bound: compaction leaves gaps)."""
    return {topic: sum(max(0, end - begin) for begin, end in ranges)
            for topic, ranges in applied_ranges.items()}
