"""TableWriter: RocksDB first, changelog records in order, one kept offset per partition.

The stores are real RocksDB partitions (rocksdict, as Faust opens them); the producer is a
recorder whose deliveries the test completes, so the order of sends and what happens on a
delivery or a failure can be checked. tests/integration/test_table_changelog.py runs the same
writer in a real worker against a real broker.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from rocksdict import Options, Rdict

from stream_rec.worker.state_folder import OFFSET_KEY
from stream_rec.worker.table_io import TableWriter, read


class Store:
    """The part of Faust's RocksDB store the writer uses, over real RocksDB partitions."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._dbs: dict[int, Rdict] = {}

    def _db_for_partition(self, partition: int) -> Rdict:
        if partition not in self._dbs:
            self._dbs[partition] = Rdict(str(self.folder / f"p{partition}"),
                                         options=Options(raw_mode=True))
        return self._dbs[partition]

    def set_persisted_offset(self, tp: Any, offset: int) -> None:
        self._db_for_partition(tp.partition).put(OFFSET_KEY, str(offset).encode())


class Table:
    def __init__(self, name: str, folder: Path) -> None:
        self.changelog_topic_name = f"{name}-changelog"
        self.data = Store(folder)
        self.verified: list[str] = []

    def _verify_source_topic_partitions(self, topic: str) -> None:
        self.verified.append(topic)


class Producer:
    """Records each send and hands back a future the test completes."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None, int, asyncio.Future[Any]]] = []

    async def send(self, topic: str, key: bytes, value: bytes | None, partition: int,
                   timestamp: Any, headers: Any) -> asyncio.Future[Any]:
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.sent.append((topic, key, value, partition, delivery))
        return delivery


class App:
    def __init__(self, in_transaction: bool = False) -> None:
        self.producer = Producer()
        self.in_transaction = in_transaction


class Delivered:
    def __init__(self, offset: int) -> None:
        self.offset = offset


def kept_offset(table: Table, partition: int) -> int | None:
    raw = table.data._db_for_partition(partition).get(OFFSET_KEY)
    return None if raw is None else int(raw)


def test_writes_rocksdb_then_sends_in_order_and_keeps_each_partitions_last_offset(
        tmp_path: Path) -> None:
    async def run() -> None:
        app = App()
        deliveries: list[asyncio.Future[Any]] = []
        state, latest = Table("state", tmp_path / "s"), Table("latest", tmp_path / "l")
        state.data._db_for_partition(1).put(b"gone", b"old")
        writer = TableWriter(app, "events", deliveries.append)
        await writer.write([(state, [(0, b"a", b"A1"), (1, b"b", b"B1"), (0, b"c", b"C1"),
                                     (1, b"gone", None)]),
                            (latest, [(0, b"a", b"LA")])])
        # RocksDB holds the batch before any record is delivered.
        assert read(state, 0, b"a") == b"A1" and read(state, 0, b"c") == b"C1"
        assert read(state, 1, b"b") == b"B1" and read(state, 1, b"gone") is None
        assert read(latest, 0, b"a") == b"LA"
        assert state.verified == ["events"]
        sent = [(t, k, v, p) for t, k, v, p, _ in app.producer.sent]
        assert sent == [("state-changelog", b"a", b"A1", 0), ("state-changelog", b"b", b"B1", 1),
                        ("state-changelog", b"c", b"C1", 0),
                        ("state-changelog", b"gone", None, 1),
                        ("latest-changelog", b"a", b"LA", 0)]
        assert kept_offset(state, 0) is None  # nothing delivered yet
        for offset, (*_, delivery) in enumerate(app.producer.sent):
            delivery.set_result(Delivered(100 + offset))
        await asyncio.sleep(0)  # done callbacks run on the loop
        assert len(deliveries) == 5  # every record is checked for failure
        assert kept_offset(state, 0) == 102 and kept_offset(state, 1) == 103
        assert kept_offset(latest, 0) == 104

    asyncio.run(run())


def test_a_failed_or_unowned_partition_keeps_its_offset(tmp_path: Path) -> None:
    async def run() -> None:
        app = App()
        failures: list[BaseException] = []
        table = Table("state", tmp_path)

        def on_delivery(delivery: asyncio.Future[Any]) -> None:
            error = delivery.exception()
            if error is not None:
                failures.append(error)

        writer = TableWriter(app, "events", on_delivery)
        await writer.write([(table, [(0, b"a", b"1"), (1, b"b", b"2")])])
        first, second = (s[-1] for s in app.producer.sent)
        first.set_exception(RuntimeError("refused"))
        table.data._dbs.pop(1).close()  # partition 1 was handed to another worker meanwhile
        second.set_result(Delivered(7))
        await asyncio.sleep(0)
        assert [str(e) for e in failures] == ["refused"]
        assert kept_offset(table, 0) is None
        assert 1 not in table.data._dbs  # not opened again (it would hold the lock)

    asyncio.run(run())


@pytest.mark.parametrize("value", [b"v", None])
def test_exactly_once_goes_through_faust(tmp_path: Path, value: bytes | None) -> None:
    class FaustTable(dict[bytes, bytes]):
        changelog_topic_name = "t-changelog"

    async def run() -> None:
        app = App(in_transaction=True)
        table = FaustTable({b"k": b"old"})
        await TableWriter(app, "events", lambda d: None).write([(table, [(0, b"k", value)])])
        assert table.get(b"k") == value and not app.producer.sent

    asyncio.run(run())
