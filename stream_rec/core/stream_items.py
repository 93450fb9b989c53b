"""What the live stream teaches about items the served model has never seen.

An item first seen after the model's training has no collaborative vector: retrieval cannot
find it and its score rests on its attributes alone. Shoppers' sessions say which known items
it goes with. ``StreamItems`` remembers two things about each such cold item:

- its known neighbours, the items viewed just before and just after it, each with a weight
  (1 for the adjacent event, 1/2 for the one before that, ...): they place the item among the
  model's item vectors and find it for shoppers who view them (``serving/stream_learner.py``);
- its contexts, the latest events of the shoppers who came to it: the model's query for such
  a history is what the model would have learnt to point at the item, so their mean scores
  it as the model would had it been trained on these sessions.

Raw item ids only, never a model's vectors or indices: a newly loaded model recomputes every
cold item's vectors in its own space, and an item it knows leaves the memory (``forget``).
Memory is bounded per item (the lightest neighbour and the oldest context go first) and in
items (the least recently observed goes first): at most ``max_items`` times
``max_neighbours + max_contexts * CONTEXT_LENGTH`` item ids.
"""

from __future__ import annotations

import sys
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from stream_rec.core.state import HistoryEntry

# How far back in a shopper's history an event still counts as a neighbour, in events and in
# time: further back (or in an earlier visit) it says little about the item at hand.
WINDOW = 3
MAX_GAP_MS = 30 * 60 * 1000
CONTEXT_LENGTH = 10  # latest events of a context (the model reads more; these weigh most)

Context = tuple[tuple[str, int], ...]  # (raw item id, event type code), oldest first


@dataclass
class ColdItem:
    """One cold item's known neighbours (raw id -> weight), its latest contexts (numbered, so
    a reader can tell the ones it has not seen), and how many events taught it something."""

    neighbours: dict[str, float] = field(default_factory=dict)
    contexts: deque[tuple[int, Context]] = field(default_factory=deque)
    observations: int = 0


class StreamItems:
    """Bounded memory of cold items and the known items they co-occur with.

    ``changed`` collects the items whose record changed (or that left) since the last
    ``take_changed``, so that vectors are recomputed for those only.
    """

    def __init__(self, max_items: int = 5_000, max_neighbours: int = 32,
                 max_contexts: int = 4, window: int = WINDOW, max_gap_ms: int = MAX_GAP_MS
                 ) -> None:
        if min(max_items, max_neighbours, max_contexts, window) < 1:
            raise ValueError("max_items, max_neighbours, max_contexts and window must be at "
                             "least 1")
        self.max_items = max_items
        self.max_neighbours = max_neighbours
        self.max_contexts = max_contexts
        self.window = window
        self.max_gap_ms = max_gap_ms
        self._items: OrderedDict[str, ColdItem] = OrderedDict()  # least recent first
        self._contexts_seen = 0  # numbers the contexts
        self.changed: set[str] = set()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    def get(self, item_id: str) -> ColdItem | None:
        return self._items.get(item_id)

    def item_ids(self) -> list[str]:
        """Every remembered cold item, least recently observed first."""
        return list(self._items)

    def observe(self, history: Sequence[HistoryEntry], item_id: str, ts_ms: int,
                known: Callable[[str], bool]) -> None:
        """One event on ``item_id`` by a shopper whose history (before it, oldest first) is
        ``history``; ``known`` says whether the served model knows an item.

        A cold item learns the known items just before it and the context it came in; a known
        item is learnt by the cold items just before it. With no cold item remembered, an
        event on a known item costs one truth test: that is every event of a shop whose model
        knows its whole catalog.
        """
        item_known = known(item_id)
        if item_known and not self._items:
            return
        recent = [(distance, entry.item_id) for distance, entry in
                  enumerate(reversed(history[-self.window:]), start=1)
                  if 0 <= ts_ms - entry.ts_ms <= self.max_gap_ms and entry.item_id != item_id]
        if not item_known:
            context = tuple((sys.intern(entry.item_id), entry.type_code)
                            for entry in history[-CONTEXT_LENGTH:]
                            if 0 <= ts_ms - entry.ts_ms <= self.max_gap_ms)
            self._add(item_id, [(other, 1.0 / d) for d, other in recent if known(other)],
                      context)
            return
        for distance, other in recent:
            if other in self._items:
                self._add(other, [(item_id, 1.0 / distance)])

    def _add(self, item_id: str, neighbours: Iterable[tuple[str, float]],
             context: Context = ()) -> None:
        """One observation of a cold item: its record exists from its first event on (even
        with nothing learnt yet), so that the known items after it can be learnt."""
        record = self._items.get(item_id)
        if record is None:
            record = self._items[item_id] = ColdItem()
            while len(self._items) > self.max_items:
                gone, _ = self._items.popitem(last=False)
                self.changed.add(gone)
        else:
            self._items.move_to_end(item_id)
        weights = record.neighbours
        added = False
        for other, weight in neighbours:
            # Interned: the same known ids recur across many items' records.
            other = sys.intern(other)
            weights[other] = weights.get(other, 0.0) + weight
            added = True
            if len(weights) > self.max_neighbours:
                del weights[min(weights, key=weights.__getitem__)]
        if context:
            self._contexts_seen += 1
            record.contexts.append((self._contexts_seen, context))
            if len(record.contexts) > self.max_contexts:
                record.contexts.popleft()
            added = True
        if added:
            record.observations += 1
            self.changed.add(item_id)

    def forget(self, item_ids: Iterable[str]) -> None:
        """Leave these items out from now on (a newly served model knows them)."""
        for item_id in item_ids:
            if self._items.pop(item_id, None) is not None:
                self.changed.add(item_id)

    def forget_known(self, known: Callable[[str], bool]) -> int:
        """Leave out every item ``known`` says a model knows; how many left."""
        gone = [item_id for item_id in self._items if known(item_id)]
        self.forget(gone)
        return len(gone)

    def take_changed(self) -> set[str]:
        """The items changed since the last call (and forget them as changed)."""
        changed, self.changed = self.changed, set()
        return changed
