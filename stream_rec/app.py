"""The stream-rec Faust app.

``app`` is what `stream-rec worker` and `faust -A stream_rec.app worker` run. It is built by
``create_app`` from ``stream_rec.config`` so that tests and benchmarks can build the same app
against their own broker, state folder and consumer group. Agents, tables and topics live in
``stream_rec/worker/`` and register on this app when the worker starts (autodiscovery).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from weakref import WeakKeyDictionary

import faust

from stream_rec.config import Settings, load_settings
from stream_rec.connection import faust_credentials
from stream_rec.errors import SettingsError
from stream_rec.worker.faust_compat import App, Worker
from stream_rec.worker.security import faust_web_options, refuse_open_http

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, discover: Sequence[str] = ()) -> faust.App:
    """A Faust app whose tables live in RocksDB (through rocksdict) with Kafka changelogs."""
    if settings.processing_guarantee != "at_least_once":
        log.warning("processing_guarantee=%s is not supported: it lost state updates in the "
                    "crash test (docs/operations.md)", settings.processing_guarantee)
    refuse_open_http(settings)  # before anything binds: an open API must be chosen, not a default
    app = App(
        settings.app_id,
        broker=f"kafka://{settings.broker.replace(',', ';')}",
        broker_credentials=faust_credentials(settings),
        store="rocksdb://",
        datadir=str(Path(settings.state_dir).expanduser()),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        table_standby_replicas=settings.standby_replicas,
        processing_guarantee=settings.processing_guarantee,
        # A partition the group never committed is read from its first offset (and rewound
        # there after a rebalance, see faust_compat.RewindingConsumer): no event is skipped.
        consumer_auto_offset_reset="earliest",
        # One produce request per list is the largest per-event cost after scoring; a few ms
        # of linger lets a batch's lists, state and changelog writes share requests.
        producer_linger=settings.producer_linger_ms / 1000.0,
        # A list is ~2 KB and a state record ~3 KB: aiokafka's default 16 KB batch fills after a
        # handful and goes out in a request of its own. 256 KB batches cut the produce requests
        # (and their socket writes) per event; measured +6-10 % events/s (docs/performance.md).
        producer_max_batch_size=256 * 1024,
        # Faust's default of 20 minutes (aiokafka's request timeout, which is also how long a
        # batch is retried) let a worker whose broker stayed away wait that long, its lists
        # unsent, before it exited to be restarted. aiokafka 0.14 has no separate delivery
        # timeout: this bounds both.
        producer_request_timeout=settings.produce_timeout_s,
        # A worker that died without leaving holds its partitions until the session times out
        # (Faust's default 60 s); heartbeats come often enough that three can be missed.
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 10),
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        # Only the API's own routes, every one but /health/ behind the token (security.py).
        **faust_web_options(settings),
        autodiscover=list(discover) if discover else False,
        # Faust also scans ``origin``; naming the worker package keeps it from importing all of
        # stream_rec (benchmark apps and tools included).
        origin=discover[0] if discover else None,
        Worker=Worker,
    )
    app.stop_timeout_s = settings.stop_timeout_s
    app.fetch_min_bytes = settings.fetch_min_bytes
    app.fetch_max_wait_ms = settings.fetch_max_wait_ms
    _made_with[app] = settings  # what its agents, tables and views are built from
    return app


_made_with: WeakKeyDictionary[faust.App, Settings] = WeakKeyDictionary()


def app_settings(app: faust.App) -> Settings:
    """The settings ``app`` was made with by ``create_app``."""
    try:
        return _made_with[app]
    except KeyError:
        raise TypeError("this Faust app was not made by stream_rec.app.create_app") from None


def rocksdb_options(settings: Settings) -> dict[str, int]:
    """Store options for one table: bounded memtables and block cache per partition.

    A fresh dict per table, because Faust's RocksDB store pops keys from the one it gets.
    """
    mb = 1024 * 1024
    return {"write_buffer_size": settings.rocksdb_write_buffer_mb * mb,
            "max_write_buffer_number": 2,
            "block_cache_size": settings.rocksdb_block_cache_mb * mb,
            "block_cache_compressed_size": settings.rocksdb_block_cache_mb * mb}


def _settings_or_exit() -> Settings:
    """The environment's settings; one line and exit status 2 when one cannot be used (a bare
    `faust -A stream_rec.app worker` gets here without the CLI's own check)."""
    try:
        return load_settings()
    except SettingsError as exc:
        sys.stderr.write(f"stream-rec: {exc}\n")
        raise SystemExit(2) from None


settings = _settings_or_exit()
app = create_app(settings, discover=["stream_rec.worker"])
