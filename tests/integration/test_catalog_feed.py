"""Unusable catalog messages already on the compacted topic cannot keep a worker down.

Every worker reads ``storefront.items`` from its first offset at each start, and compaction
keeps the latest message of every key for good: one message the worker could not take would
stop every worker at every start. Here the topic holds such messages before the worker ever
starts; it must come up healthy, count and log each of them, and recommend.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from aiokafka import ConsumerRecord

from stream_rec.config import load_settings
from stream_rec.tools.worker_process import WorkerProcess
from stream_rec.worker.feeds import tail_topic
from tests.integration.worker_fixtures import TopicReader, event_bytes, isolated_settings, produce

pytestmark = pytest.mark.integration

GOOD = [(f"item-{i}".encode(), json.dumps({"category": f"c{i % 3}", "price": 5 + i}).encode())
        for i in range(30)]
UNUSABLE = [
    (b"sku-huge-price", b'{"category": "c1", "price": ' + str(10**400).encode() + b"}"),
    (b"sku-nan", b'{"category": "c1", "price": NaN}'),
    (b"sku-nested", b'{"brand": {"a": [1, {"b": null}]}}'),
    (b"sku-surrogate", b'{"category": "\\ud800"}'),
    (b"sku-not-utf8", b'{"category": "caf\xe9"}'),
    (b"sku-list", b"[1, 2, 3]"),
    (b"sku-deep", b"[" * 5000 + b"]" * 5000),
    (b"\xff\xfe-key", b'{"category": "c1"}'),
]


def test_worker_starts_on_a_catalog_holding_unusable_messages(broker: str, new_topic,
                                                               tmp_path: Path) -> None:
    settings = isolated_settings(broker, new_topic, tmp_path)
    produce(broker, settings.items_topic, [*GOOD[:10], *UNUSABLE, *GOOD[10:]])
    recs = TopicReader(broker, settings.recommendations_topic)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        health = worker.get_json("/health/")
        assert health["catalog_items"] == len(GOOD), health
        metrics = worker.get_text("/metrics/")
        assert f"stream_rec_catalog_rejected_total {float(len(UNUSABLE))}\n" in metrics

        events = [{"event_id": f"e{n}", "user_id": f"u{n % 4}", "item_id": f"item-{n}",
                   "type": "click", "ts": 1_750_000_000_000 + n} for n in range(12)]
        produce(broker, settings.events_topic, [event_bytes(e) for e in events])
        lists = recs.wait_for(lambda v: {r["event_id"] for r in v} >= {e["event_id"]
                                                                       for e in events}, 120)
        listed = {i["item_id"] for r in lists for i in r["items"]}
        assert listed and listed <= {key.decode() for key, _ in GOOD}
        # Each message is named by where it is, so an operator can find and replace it.
        log = worker.log_tail(200_000)
        for offset in range(10, 10 + len(UNUSABLE)):
            assert re.search(rf"catalog message \S+\[0\]@{offset} \(key .*\) rejected", log), \
                offset
    finally:
        worker.stop()
        recs.close()


def test_a_record_whose_handler_fails_costs_that_record_not_the_feed(broker: str,
                                                                      new_topic) -> None:
    """The feeds' own wall, for handlers other than the catalog's (model announcements)."""
    topic = new_topic("feed")
    produce(broker, topic, [(b"k%d" % n, b"v%d" % n) for n in range(5)])
    seen: list[bytes] = []

    async def handler(record: ConsumerRecord) -> None:
        if record.value == b"v1":
            raise RuntimeError("this record breaks the handler")
        seen.append(record.value)

    async def run() -> None:
        caught_up = asyncio.Event()
        feed = asyncio.ensure_future(tail_topic(load_settings({}, broker=broker), topic, handler,
                                                from_beginning=True, caught_up=caught_up))
        waiting = asyncio.ensure_future(caught_up.wait())
        try:  # caught up, or the feed ended (which it must not)
            await asyncio.wait({feed, waiting}, timeout=120,
                               return_when=asyncio.FIRST_COMPLETED)
            assert not feed.done(), feed.exception()
            assert caught_up.is_set()
        finally:
            feed.cancel()
            waiting.cancel()

    asyncio.run(run())
    assert seen == [b"v0", b"v2", b"v3", b"v4"]
