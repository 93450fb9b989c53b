"""The simulation loop: shoppers browse, see the lists a live worker publishes, and react.

Each simulated shopper (``tools/storefront/shoppers.py``) views an item they like; the worker
publishes a list for that event; the shopper sees its first items (an ``impression`` naming
the list), clicks by the response model (``tools/storefront/response.py``: taste, position
bias, satiation), and may add to cart and buy. Clicks carry ``list_id`` and ``position``
(explicit attribution); add-to-carts and purchases do not, so the worker attributes them
through the click, as the storefront contract describes. A shopper who clicked looks next at
the list made after their last event; one who did not browses on with another view.

Everything goes through Kafka: nothing here reads the worker's state. The ``Ledger`` is what
the simulator itself sent, per arm, which tests compare with the worker's figures.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from kafka import KafkaConsumer, KafkaProducer

from stream_rec.config import Settings
from stream_rec.connection import kafka_python_config
from stream_rec.tools.storefront import Storefront
from stream_rec.tools.storefront.response import CatalogIndex, ResponseModel, react
from stream_rec.tools.storefront.shoppers import Shopper, make_shoppers

NO_ARM = ""  # lists of shoppers outside the experiment


@dataclass(frozen=True)
class SimConfig:
    """How many shoppers and events, the seed, and what is planted."""

    shoppers: int = 300
    events: int = 3000  # interaction events to send (views, clicks, add-to-carts, purchases)
    seed: int = 0
    in_flight: int = 32  # shoppers waiting for a list at the same time
    lift: dict[str, float] = field(default_factory=dict)  # arm -> click multiplier (testing)
    response: ResponseModel = field(default_factory=ResponseModel)
    list_wait_s: float = 120.0  # longest wait for any list before the run fails


@dataclass
class ArmLedger:
    """What the simulator sent for one arm's lists."""

    lists: int = 0  # lists the shoppers looked at (each gets an impression)
    impressed_items: int = 0
    clicks: int = 0
    add_to_carts: int = 0
    purchases: int = 0
    revenue: float = 0.0
    shoppers: set[str] = field(default_factory=set)


@dataclass
class Ledger:
    """What the simulator sent, per arm, and every interaction event id (one list each)."""

    arms: dict[str, ArmLedger] = field(default_factory=dict)
    event_ids: list[str] = field(default_factory=list)
    lists_received: int = 0

    def arm(self, name: str) -> ArmLedger:
        return self.arms.setdefault(name, ArmLedger())


class Simulation:
    """Drives ``config.shoppers`` shoppers against a worker through ``settings``' topics."""

    def __init__(self, settings: Settings, storefront: Storefront, config: SimConfig,
                 progress: Callable[[str], None] = lambda _: None) -> None:
        self.settings, self.storefront, self.config = settings, storefront, config
        self.progress = progress
        self.rng = np.random.default_rng([config.seed, 17])
        catalog = storefront.catalog
        self.index = CatalogIndex.of(catalog)
        self.prices = {item.item_id: item.price for item in catalog.items}
        drawn = make_shoppers(self.rng, catalog, config.shoppers,
                              storefront.config.taste_concentration)
        # Ids of their own, so a simulation never mixes with the storefront's history.
        self.shoppers = tuple(Shopper(f"sim{config.seed}-{s.user_id}", s.taste,
                                      s.favourite_brands) for s in drawn)
        self.chooser = storefront.chooser
        self.ledger = Ledger()
        # Items each shopper saw in their impressions (a view of one would be attributed to
        # its list, being within the attribution window in any simulation).
        self._shown: dict[int, set[str]] = {}
        self.producer = KafkaProducer(**kafka_python_config(settings), acks="all", linger_ms=5)
        self.consumer = KafkaConsumer(settings.recommendations_topic,
                                      **kafka_python_config(settings), group_id=None,
                                      auto_offset_reset="earliest", enable_auto_commit=False)
        self._ts = int(time.time() * 1000)

    def close(self) -> None:
        """Flush what was sent and close both clients."""
        self.producer.flush(timeout=60)
        self.producer.close()
        self.consumer.close()

    def run(self) -> Ledger:
        """Send ``config.events`` interaction events, react to every list awaited, and return
        what was sent once the last awaited list has been reacted to."""
        config = self.config
        waiting: dict[str, int] = {}  # event id -> shopper awaiting the list it makes
        idle = deque(range(len(self.shoppers)))
        sent = 0
        last_list = time.monotonic()
        reported = 0
        while sent < config.events or waiting:
            while idle and len(waiting) < config.in_flight and sent < config.events:
                shopper = idle.popleft()
                waiting[self._browse(shopper)] = shopper
                sent += 1
            for records in self.consumer.poll(timeout_ms=200, max_records=1000).values():
                for record in records:
                    rec = json.loads(record.value)
                    self.ledger.lists_received += 1
                    shopper_index = waiting.pop(rec["event_id"], None)
                    if shopper_index is None:
                        continue  # a list nobody looks at (made after a click or a cart)
                    last_list = time.monotonic()
                    clicked, events = self._react(shopper_index, rec, sent < config.events)
                    sent += events
                    if clicked is not None:
                        waiting[clicked] = shopper_index
                    else:
                        idle.append(shopper_index)
            if time.monotonic() - last_list > config.list_wait_s and waiting:
                raise TimeoutError(f"no list came for {len(waiting)} awaited event(s) within "
                                   f"{config.list_wait_s:.0f} s")
            if sent - reported >= 500:
                reported = sent
                self.progress(f"{sent}/{config.events} events sent")
        self.producer.flush(timeout=60)
        return self.ledger

    # -- what a shopper does ----------------------------------------------------------------
    def _browse(self, shopper_index: int) -> str:
        """A view of an item the shopper likes, found on their own: one they were not just
        shown, so the worker attributes it to no list (and the ledger stays exact)."""
        shopper = self.shoppers[shopper_index]
        catalog = self.storefront.catalog
        shown = self._shown.get(shopper_index, ())
        for _ in range(20):
            category = catalog.categories[int(self.rng.choice(len(catalog.categories),
                                                              p=shopper.taste))]
            item = self.chooser.choose(self.rng, shopper, category)
            if item not in shown:
                break
        else:  # every draw was on the page: a view of it would count as a click
            item = next(i.item_id for i in catalog.items if i.item_id not in shown)
        return self._send(shopper, {"type": "view", "item_id": item})

    def _react(self, shopper_index: int, rec: dict[str, Any], may_go_on: bool
               ) -> tuple[str | None, int]:
        """Show the list, react to it: (the event whose list comes next, or None; events
        sent)."""
        shopper = self.shoppers[shopper_index]
        arm = (rec.get("experiment") or {}).get("arm", NO_ARM)
        items = [i["item_id"] for i in rec["items"]]
        reaction = react(self.rng, self.config.response, shopper, self.index, items,
                         self.config.lift.get(arm, 1.0))
        ledger = self.ledger.arm(arm)
        ledger.shoppers.add(shopper.user_id)
        if not reaction.displayed:
            return None, 0
        self._send(shopper, {"type": "impression", "list_id": rec["list_id"],
                             "item_ids": list(reaction.displayed)}, interaction=False)
        ledger.lists += 1
        ledger.impressed_items += len(reaction.displayed)
        self._shown.setdefault(shopper_index, set()).update(reaction.displayed)
        last: str | None = None
        events = 0
        for position in reaction.clicks:
            last = self._send(shopper, {"type": "click", "item_id": reaction.displayed[position],
                                        "list_id": rec["list_id"], "position": position})
            ledger.clicks += 1
            events += 1
        for position in reaction.carts:
            last = self._send(shopper, {"type": "add_to_cart",
                                        "item_id": reaction.displayed[position]})
            ledger.add_to_carts += 1
            events += 1
        for position in reaction.purchases:
            item = reaction.displayed[position]
            price = self.prices.get(item)
            last = self._send(shopper, {"type": "purchase", "item_id": item, "price": price,
                                        "quantity": 1})
            ledger.purchases += 1
            ledger.revenue += price or 0.0
            events += 1
        return (last if may_go_on else None), events

    def _send(self, shopper: Shopper, fields: dict[str, Any], interaction: bool = True) -> str:
        event_id = uuid.uuid4().hex
        # Strictly increasing times: events of one shopper keep their order in every view.
        self._ts = max(self._ts + 1, int(time.time() * 1000))
        event = {"event_id": event_id, "user_id": shopper.user_id, "ts": self._ts, **fields}
        self.producer.send(self.settings.events_topic, key=shopper.user_id.encode(),
                           value=json.dumps(event).encode())
        if interaction:
            self.ledger.event_ids.append(event_id)
        return event_id


def drain(simulation: Simulation, timeout_s: float) -> None:
    """Read lists until one came for every interaction event sent (the worker caught up)."""
    deadline = time.monotonic() + timeout_s
    ledger = simulation.ledger
    while ledger.lists_received < len(ledger.event_ids):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{ledger.lists_received} lists for {len(ledger.event_ids)} "
                               f"events after {timeout_s:.0f} s")
        for records in simulation.consumer.poll(timeout_ms=500, max_records=5000).values():
            ledger.lists_received += len(records)
