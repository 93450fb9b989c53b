"""The demo's storefront traffic: who is shopping, and the one producer all events go through.

Shoppers a person clicks for on the page become *driven*: the synthetic traffic leaves them
alone from then on, so every change to their list comes from the person's own clicks. The
check and the send happen under one lock, so no synthetic event can slip in after a click.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from stream_rec.config import Settings
from stream_rec.offline.replay import RateLimiter
from stream_rec.tools.storefront import LiveTraffic, Storefront


def now_ms() -> int:
    """The wall clock in epoch milliseconds: send times and the events' ``ts``."""
    return int(time.time() * 1000)


class Shoppers:
    """Thread-safe tally of the shoppers the demo has sent events for."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[int, int]] = {}  # user_id -> (events, last event ms)
        self._driven: set[str] = set()

    def saw(self, user_id: str) -> None:
        """Count an event sent now (send time, not event time: replayed events are old)."""
        with self._lock:
            count, _ = self._seen.get(user_id, (0, 0))
            self._seen[user_id] = (count + 1, now_ms())

    def drive(self, user_id: str) -> None:
        with self._lock:
            self._driven.add(user_id)

    def __contains__(self, user_id: object) -> bool:
        """True for a driven shopper (so ``LiveTraffic.next_step(skip=shoppers)`` works)."""
        with self._lock:
            return user_id in self._driven

    def active(self, limit: int, since_ms: int) -> list[dict[str, Any]]:
        """Shoppers with an event since ``since_ms`` plus every driven one, by user id."""
        with self._lock:
            recent = sorted(((last, u, n) for u, (n, last) in self._seen.items()
                             if last >= since_ms or u in self._driven), reverse=True)[:limit]
            rows = [{"user_id": u, "events": n, "last_ms": last, "driven": u in self._driven}
                    for last, u, n in recent]
        return sorted(rows, key=lambda r: str(r["user_id"]))


class EventSender:
    """One kafka-python producer for the synthetic traffic and the page's clicks."""

    def __init__(self, settings: Settings, shoppers: Shoppers) -> None:
        from kafka import KafkaProducer

        from stream_rec.connection import kafka_python_config

        self.topic = settings.events_topic
        self.shoppers = shoppers
        self.producer = KafkaProducer(**kafka_python_config(settings), linger_ms=5)
        self._lock = threading.Lock()

    def send_traffic(self, event: dict[str, Any]) -> bool:
        """Send unless the shopper is driven from the page; False when skipped."""
        with self._lock:
            if event["user_id"] in self.shoppers:
                return False
            self._send(event)
        return True

    def send_click(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.shoppers.drive(event["user_id"])
            self._send(event)
        self.producer.flush(timeout=10)  # the person is waiting for the list to react

    def close(self) -> None:
        self.producer.close(timeout=10)

    def _send(self, event: dict[str, Any]) -> None:
        self.producer.send(self.topic, key=event["user_id"].encode(),
                           value=json.dumps(event).encode())
        self.shoppers.saw(event["user_id"])


def storefront_traffic(storefront: Storefront, shoppers: Shoppers,
                       concurrent: int = 12) -> Iterator[dict[str, Any]]:
    """Live sessions of the storefront's shoppers, stamped now, with ids unique to this run."""
    run = uuid.uuid4().hex[:12]
    traffic = LiveTraffic(storefront, seed=int(run, 16), concurrent=concurrent)
    n = 0
    while True:
        step = traffic.next_step(skip=shoppers)
        n += 1
        yield {"event_id": f"storefront:{run}:{n}", "user_id": step.user_id,
               "item_id": step.item_id, "type": step.type, "ts": now_ms(),
               "session_id": step.session_id}


def stream_traffic(sender: EventSender, events: Iterator[dict[str, Any]], rate: float,
                   stop: threading.Event) -> None:
    """Send ``events`` at ``rate`` per second until they run out or ``stop`` is set."""
    limiter = RateLimiter(rate)
    for event in events:
        if stop.is_set():
            return
        limiter.wait()
        sender.send_traffic(event)
