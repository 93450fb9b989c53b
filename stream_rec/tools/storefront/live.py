"""Endless live traffic from a storefront: a few shoppers shopping at once, interleaved.

Pure and seeded: the caller stamps each step with the time and an event id. Shoppers named in
``skip`` (say, ones a person now drives by hand) get no further steps.
"""

from __future__ import annotations

from collections.abc import Container
from typing import NamedTuple

import numpy as np

from stream_rec.datasets.event_names import contract_type
from stream_rec.tools.storefront.history import Storefront
from stream_rec.tools.storefront.shoppers import shop_session


class LiveStep(NamedTuple):
    """One action of a live shopper: who, in which session, on which item, which event type."""

    user_id: str
    session_id: str
    item_id: str
    type: str  # the event contract's type: view, add_to_cart or purchase


class LiveTraffic:
    """``next_step(skip)`` gives the next action of one of ``concurrent`` open sessions."""

    def __init__(self, storefront: Storefront, seed: int, concurrent: int = 12) -> None:
        if not 1 <= concurrent <= len(storefront.shoppers):
            raise ValueError(f"concurrent must be 1..{len(storefront.shoppers)}")
        self.storefront = storefront
        self.rng = np.random.default_rng([storefront.config.seed, 2, seed])
        self.chooser = storefront.chooser
        self.concurrent = concurrent
        self.open: dict[str, list[LiveStep]] = {}  # user_id -> the session's remaining steps
        self.sessions = 0

    def next_step(self, skip: Container[str] = ()) -> LiveStep:
        for user in [u for u in self.open if u in skip]:
            del self.open[user]
        while len(self.open) < self.concurrent and self._open_session(skip):
            pass
        if not self.open:
            raise RuntimeError("every shopper is skipped: no one left to shop")
        user = list(self.open)[int(self.rng.integers(len(self.open)))]
        steps = self.open[user]
        step = steps.pop(0)
        if not steps:
            del self.open[user]
        return step

    def _open_session(self, skip: Container[str]) -> bool:
        """Start a session for a random idle shopper; False when none is idle."""
        idle = [s for s in self.storefront.shoppers
                if s.user_id not in self.open and s.user_id not in skip]
        if not idle:
            return False
        shopper = idle[int(self.rng.integers(len(idle)))]
        self.sessions += 1
        session_id = f"{shopper.user_id}-live{self.sessions}"
        self.open[shopper.user_id] = [
            LiveStep(shopper.user_id, session_id, item, contract_type(word) or "view")
            for item, word in shop_session(self.rng, self.chooser, shopper,
                                           self.storefront.config.habits)]
        return True
