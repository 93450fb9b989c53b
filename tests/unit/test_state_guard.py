"""The decision whether a local state folder can still be restored from the broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_rec.config import load_settings
from stream_rec.worker.state_folder import OFFSET_KEY, persisted_offsets, tables_dir
from stream_rec.worker.state_guard import (
    Applied,
    TablePartition,
    changelog_sizes,
    changelog_topic,
    mismatch_message,
    state_mismatch,
    table_partitions,
)

LOG = "shop-user-state-changelog"


def test_state_behind_or_at_the_broker_is_restorable() -> None:
    applied = [Applied(LOG, 0, persisted=41, end=42), Applied(LOG, 1, persisted=0, end=9)]
    assert state_mismatch("c1", "c1", applied) is None
    assert state_mismatch(None, "c1", applied) is None  # a folder from before the check
    assert state_mismatch("c1", "c1", []) is None


@pytest.mark.parametrize(("persisted", "end"), [(42, 42), (41, 0), (0, 0), (10**6, 5)])
def test_a_partition_that_applied_what_the_broker_no_longer_has_is_ahead(
        persisted: int, end: int) -> None:
    cause = state_mismatch("c1", "c1", [Applied(LOG, 0, 3, 9), Applied(LOG, 3, persisted, end)])
    assert cause is not None
    assert f"{LOG}[3] up to offset {persisted}" in cause
    assert f"ends at offset {end}" in cause


def test_every_partition_ahead_is_counted_and_the_first_named() -> None:
    cause = state_mismatch(None, "c1", [Applied(LOG, p, 5, 0) for p in (2, 0, 1)])
    assert cause is not None
    assert f"{LOG}[0]" in cause and "2 more partition(s)" in cause


def test_another_cluster_is_a_mismatch_even_with_offsets_in_range() -> None:
    cause = state_mismatch("old-cluster", "new-cluster", [Applied(LOG, 0, 1, 100)])
    assert cause is not None
    assert "old-cluster" in cause and "new-cluster" in cause


def test_the_message_names_the_folder_the_cause_and_the_fix_on_one_line() -> None:
    line = mismatch_message(Path("/var/state/v1/tables"), "it holds more than the broker")
    assert "\n" not in line
    assert "/var/state/v1/tables" in line
    assert "it holds more than the broker" in line
    assert "stream-rec worker --reset-state" in line
    assert "lost" in line


def test_table_partitions_are_found_by_faust_folder_names() -> None:
    names = ["user-state-0.db", "user-state-11.db", "latest-recs-3.db", "user-state-backups",
             "odd.db", "x-1.db.tmp", "my-table-name-2.db"]
    assert table_partitions(names) == {
        TablePartition("user-state", 0): "user-state-0.db",
        TablePartition("user-state", 11): "user-state-11.db",
        TablePartition("latest-recs", 3): "latest-recs-3.db",
        TablePartition("my-table-name", 2): "my-table-name-2.db",
    }
    assert changelog_topic("shop", "user-state") == LOG


def test_changelog_sizes_are_offset_spans() -> None:
    assert changelog_sizes({LOG: [(0, 10), (4, 6), (7, 7)], "other": []}) == {LOG: 12, "other": 0}


def test_the_tables_folder_is_where_faust_keeps_tables(tmp_path: Path) -> None:
    from stream_rec.app import create_app

    settings = load_settings({}, state_dir=str(tmp_path / "state"))
    assert Path(create_app(settings).conf.tabledir) == tables_dir(settings)


def test_applied_offsets_are_read_from_rocksdb_partitions(tmp_path: Path) -> None:
    from rocksdict import Options, Rdict

    tables = tmp_path / "tables"
    tables.mkdir()
    for name, offset in (("user-state-0.db", b"41"), ("latest-recs-1.db", b"7"),
                         ("user-state-2.db", None)):
        db = Rdict(str(tables / name), options=Options(raw_mode=True))
        db.put(b"some-shopper", b"{}")
        if offset is not None:
            db.put(OFFSET_KEY, offset)
        db.close()
    (tables / "user-state-3.db").mkdir()  # not a database: left to Faust
    assert persisted_offsets(tables) == {TablePartition("user-state", 0): 41,
                                         TablePartition("latest-recs", 1): 7}
    assert persisted_offsets(tmp_path / "missing") == {}
