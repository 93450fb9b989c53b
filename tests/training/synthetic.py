"""A generated shop with a known structure the model must learn.

``n_items`` items in ``n_categories`` categories (item i is in category i % n_categories).
Each item has one fixed successor in its own category; shoppers mostly follow successors
(``follow`` of the time), otherwise jump to a random item. A model that learns the structure
puts the successor at the top; chance level for P@k is k / n_items. Items from ``n_known`` on
never occur in training, have attributes, and succeed each other (same category) in test
sessions, so only their attributes can rank them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stream_rec.datasets import Dataset, Interaction, Session


def successor_table(n_items: int, n_categories: int, seed: int = 0,
                    n_known: int | None = None) -> np.ndarray:
    """succ[i]: the item that follows i, same category, same side of ``n_known``."""
    rng = np.random.default_rng(seed)
    n_known = n_items if n_known is None else n_known
    succ = np.empty(n_items, dtype=np.int64)
    for lo, hi in ((0, n_known), (n_known, n_items)):
        for c in range(n_categories):
            members = np.array([i for i in range(lo, hi) if i % n_categories == c])
            if len(members):
                rng.shuffle(members)
                succ[members] = np.roll(members, -1)
    return succ


def make_shop(n_items: int = 200, n_categories: int = 10, n_train: int = 1500,
              n_test: int = 200, length: int = 6, follow: float = 0.9, seed: int = 0,
              cold_test_share: float = 0.0, n_known: int | None = None) -> Dataset:
    rng = np.random.default_rng(seed)
    n_known = n_items if n_known is None else n_known
    succ = successor_table(n_items, n_categories, seed, n_known)
    types = ["view", "click", "add_to_cart", "purchase"]

    def walk(name: str, start_ms: int, pool: int, offset: int = 0) -> Session:
        item = offset + int(rng.integers(pool))
        events = []
        for step in range(length):
            events.append(Interaction(f"i{item}", types[int(rng.integers(4))],
                                      start_ms + 1000 * step, name))
            item = int(succ[item]) if rng.random() < follow else offset + int(
                rng.integers(pool))
        return Session(name, name, tuple(events))

    train = [walk(f"u{n}", 1_600_000_000_000 + 60_000 * n, n_known) for n in range(n_train)]
    test = []
    for n in range(n_test):
        start = 1_700_000_000_000 + 60_000 * n
        if n_known < n_items and rng.random() < cold_test_share:
            test.append(walk(f"t{n}", start, n_items - n_known, offset=n_known))
        else:
            test.append(walk(f"t{n}", start, n_known))
    items = {f"i{i}": {"category": f"c{i % n_categories}", "shape": f"s{(i * 7) % 13}"}
             for i in range(n_items)}
    return Dataset("synthetic", tuple(train), tuple(test), items)


def write_events_folder(dataset: Dataset, folder: Path) -> Path:
    """The same shop in the ``events:`` file format (for CLI tests)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, sessions in (("events_train.csv", dataset.train), ("events_test.csv",
                                                                 dataset.test)):
        lines = ["timestamp,user_id,session_id,item_id,event"]
        lines += [f"{e.ts_ms},{e.user_id},{s.session_id},{e.item_id},{e.event_type}"
                  for s in sessions for e in s.events]
        (folder / name).write_text("\n".join(lines) + "\n")
    names = sorted({a for attrs in dataset.items.values() for a in attrs})
    rows = ["item_id," + ",".join(names)]
    rows += [f"{i}," + ",".join(a.get(n, "") for n in names) for i, a in dataset.items.items()]
    (folder / "items.csv").write_text("\n".join(rows) + "\n")
    return folder
