"""`stream-rec storefront` without ``--write``: the storefront's catalog and live shoppers
into a broker, for a worker (say, the docker compose one) that has no storefront of its own."""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType

from stream_rec.config import Settings
from stream_rec.offline.progress import Progress
from stream_rec.offline.replay import RateLimiter, catalog_messages
from stream_rec.tools.demo.traffic import EventSender, Shoppers, storefront_traffic
from stream_rec.tools.storefront import Storefront
from stream_rec.topics import ensure_topics


def stream_storefront(settings: Settings, storefront: Storefront, rate: float,
                      duration_s: float | None) -> int:
    """Publish the catalog, then live events at ``rate``/s until ``duration_s`` or a signal."""
    from stream_rec.datasets import Dataset

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    ensure_topics(settings)  # a broker that auto-creates topics would not compact the catalog
    sender = EventSender(settings, Shoppers())
    try:
        catalog = Dataset("storefront", (), (), storefront.catalog.attributes())
        for key, value in catalog_messages(catalog):
            sender.producer.send(settings.items_topic, key=key, value=value)
        sender.producer.flush(timeout=60)
        print(f"published {len(catalog.items)} items to {settings.items_topic}", flush=True)
        progress = Progress(None, f"storefront -> {settings.events_topic}", every_s=10.0)
        limiter = RateLimiter(rate)
        deadline = None if duration_s is None else time.monotonic() + duration_s
        for event in storefront_traffic(storefront, sender.shoppers):
            if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                break
            limiter.wait()
            sender.send_traffic(event)
            progress.update()
        progress.close()
    finally:
        sender.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
