"""`stream-rec demo`: stream-rec on the embedded default, a local Kafka broker on 127.0.0.1.

Starts the broker (unless one already answers), creates the topics, and keeps them up until
Ctrl-C or ``duration_s``; a broker it started, it stops again on the way out.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from stream_rec.broker import LocalBroker
from stream_rec.config import Settings
from stream_rec.topics import ensure_topics

log = logging.getLogger(__name__)


def run_demo(settings: Settings, duration_s: float | None = None) -> int:
    broker = LocalBroker(settings)
    was_running = broker.status().running
    status = broker.start()
    settings = settings.with_overrides(broker=status.bootstrap)
    ensure_topics(settings)
    print(f"Kafka {settings.kafka_version} is up at {status.bootstrap} with stream-rec's topics "
          f"({settings.events_topic}, {settings.items_topic}, {settings.recommendations_topic}).",
          flush=True)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        print("Press Ctrl-C to stop." if duration_s is None else f"Running for {duration_s:.0f} s.",
              flush=True)
        stop.wait(duration_s)
    finally:
        signal.signal(signal.SIGINT, previous)
        if not was_running:
            broker.stop()
            print("Stopped Kafka.", flush=True)
    return 0
