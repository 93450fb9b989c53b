"""A shopper's live state and the pure transitions that evolve it.

State holds raw item ids (never a model's vocabulary indices) so it survives model changes.
Every collection is bounded, so a shopper's state has a bounded size however long they shop.
Transitions return a new ``UserState``; a replay of the same events from the same starting
state gives the same state, which is what crash recovery relies on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple

import numpy as np

from stream_rec.core.events import TYPE_CODE, Event
from stream_rec.core.record import record
from stream_rec.core.rounding import round6


@dataclass(frozen=True, slots=True)
class StateLimits:
    """Bounds on one shopper's state (counts of entries)."""

    history: int = 50
    purchased: int = 200
    shown: int = 200
    categories: int = 32
    dedup_window: int = 64
    category_decay: float = 0.9  # per event: older interests fade, recent ones dominate
    profile_decay: float = 0.95


# How strongly each event type says "I like this": a purchase is not a view.
TYPE_WEIGHT: tuple[float, ...] = (1.0, 1.0, 3.0, 5.0)  # view, click, add_to_cart, purchase
PURCHASE = TYPE_CODE["purchase"]


class HistoryEntry(NamedTuple):
    """One past event (a named tuple: thousands are rebuilt per second when state is read)."""

    item_id: str
    type_code: int
    ts_ms: int


@record
class UserState:
    """Everything stream-rec remembers about one shopper."""

    history: tuple[HistoryEntry, ...] = ()
    category_affinity: tuple[tuple[str, float], ...] = ()  # strongest first
    purchased: tuple[str, ...] = ()  # oldest first
    # Items shown since the shopper's last click on them, oldest first, and how many times:
    # two parallel tuples, because every event reads and rewrites them and pairs cost a
    # tuple each to decode, filter and encode.
    shown_items: tuple[str, ...] = ()
    shown_counts: tuple[int, ...] = ()
    seen_events: tuple[str, ...] = ()  # short digests of recent event ids, oldest first
    # Offsets of recent messages that repeated an event id already applied (a storefront's
    # retry), so that a replay after a crash can tell them from the original (online metrics).
    retries: tuple[int, ...] = ()
    profile: bytes = b""  # long-term taste in the model's item-embedding space, float16
    profile_model: str = ""  # model version the profile vector belongs to
    n_events: int = 0
    last_ts_ms: int = 0
    # (partition, offset) of the last source message applied. A shopper's events all come
    # through one partition (keyed by user id), so a replayed message at or below it is a
    # duplicate however long the replay: exact where ``seen_events`` only covers a window.
    source: tuple[int, int] = (-1, -1)
    # Which topic ``source`` counts in: a short digest of the events topic's Kafka topic id,
    # so that offsets of a re-created topic (which start again at 0) are never taken for a
    # replay. Empty when unknown (state written before it was kept, or no id available).
    source_topic: str = ""
    # When the shopper was last active, by the Kafka timestamp of their last event's message
    # (what expiry goes by: event times of a back-fill can be years old). 0 = not known.
    active_ms: int = 0
    # For attribution (stream_rec/core/attribution.py), newest last, each bounded: lists sent
    # (list_id, group), impressions (list_id, group, ts_ms, items), attributed clicks
    # (item_id, group, ts_ms).
    sent_lists: tuple[tuple[str, str], ...] = ()
    # Impressions and clicks also keep the offset of their message (-1: unknown), so that an
    # event replayed after a crash is attributed only to what came before it.
    impressed: tuple[tuple[str, str, int, tuple[str, ...], int], ...] = ()
    clicks: tuple[tuple[str, str, int, int], ...] = ()
    # The shopper's own figures per experiment arm ("experiment|arm", figures in the order of
    # core/tally.TALLY_FIGURES), the arm used last kept last: what experiment reports add up.
    tallies: tuple[tuple[str, tuple[float, ...]], ...] = ()

    def evolve(self, **changes: Any) -> UserState:
        """A copy with ``changes`` (``dataclasses.replace`` in a bit over half its time: a
        shopper's state is copied five or six times for every event)."""
        values = list(_all_fields(self))
        for name, value in changes.items():
            try:
                values[_FIELD_INDEX[name]] = value
            except KeyError:
                raise TypeError(f"UserState has no field {name!r}") from None
        return UserState(*values)

    @property
    def history_items(self) -> list[str]:
        return [h.item_id for h in self.history]

    @property
    def history_types(self) -> list[int]:
        return [h.type_code for h in self.history]

    @property
    def profile_vector(self) -> np.ndarray:
        """The profile as float64 numbers (empty when there is none)."""
        return np.frombuffer(self.profile, dtype=np.float16).astype(np.float64)

    @property
    def shown(self) -> tuple[tuple[str, int], ...]:
        """(item, times shown) pairs, oldest first."""
        return tuple(zip(self.shown_items, self.shown_counts, strict=True))

    def shown_count(self, item_id: str) -> int:
        items = self.shown_items
        return self.shown_counts[items.index(item_id)] if item_id in items else 0


_FIELD_NAMES = tuple(f.name for f in fields(UserState))
_FIELD_INDEX = {name: i for i, name in enumerate(_FIELD_NAMES)}
_all_fields = attrgetter(*_FIELD_NAMES)


DIGEST_CHARS = 12


def event_digest(event_id: str) -> str:
    """A short, stable digest of an event id for the de-duplication window."""
    return hashlib.blake2b(event_id.encode(), digest_size=DIGEST_CHARS // 2).hexdigest()


def is_duplicate(state: UserState, event_id: str) -> bool:
    """True when this event id was already applied to this shopper's state."""
    return event_digest(event_id) in state.seen_events


RETRIES_KEPT = 16


def note_retry(state: UserState, offset: int) -> UserState:
    """The state remembering that the message at ``offset`` was a retry of an applied event."""
    return state.evolve(retries=(*state.retries, offset)[-RETRIES_KEPT:])


def already_applied(state: UserState, partition: int, offset: int, topic: str = "") -> bool:
    """True when the message at (partition, offset) of ``topic`` (a topic-id digest, see
    ``UserState.source_topic``) is one this state already includes. An unknown topic on either
    side compares equal: the window of event ids (``is_duplicate``) still guards that case."""
    if state.source_topic and topic and state.source_topic != topic:
        return False
    return state.source[0] == partition and offset <= state.source[1]


def apply_event(state: UserState, event: Event, category: str | None,
                limits: StateLimits = StateLimits()) -> UserState:
    """The state after ``event``; ``category`` is the item's catalog category, if known.

    The caller checks ``is_duplicate`` first: applying an event twice counts it twice.
    """
    code = event.type_code
    weight = TYPE_WEIGHT[code]
    history = (*state.history, HistoryEntry(event.item_id, code, event.ts_ms))[-limits.history:]
    affinity = _decay_and_add(state.category_affinity, category, weight, limits)
    purchased = state.purchased
    if code == PURCHASE and event.item_id not in purchased:
        purchased = (*purchased, event.item_id)[-limits.purchased:]
    shown_items, shown_counts = _unshown(state.shown_items, state.shown_counts, event.item_id)
    seen = (*state.seen_events, event_digest(event.event_id))[-limits.dedup_window:]
    return state.evolve(history=history, category_affinity=affinity, purchased=purchased,
                   shown_items=shown_items, shown_counts=shown_counts, seen_events=seen,
                   n_events=state.n_events + 1, last_ts_ms=max(state.last_ts_ms, event.ts_ms))


def mark_seen(state: UserState, event_id: str, limits: StateLimits = StateLimits()
              ) -> UserState:
    """The state with ``event_id`` in its de-duplication window (for a message that changes
    nothing else here, such as an impression)."""
    seen = (*state.seen_events, event_digest(event_id))[-limits.dedup_window:]
    return state.evolve(seen_events=seen)


def interacted(shown: Shown, item_id: str) -> Shown:
    """The (items, counts) shown pair after the shopper interacted with ``item_id`` (what
    ``apply_event`` does to it): showing it was not wasted, so its count starts again."""
    return _unshown(shown[0], shown[1], item_id)


def _unshown(items: tuple[str, ...], counts: tuple[int, ...], item_id: str) -> Shown:
    if item_id not in items:
        return items, counts
    k = items.index(item_id)  # items are unique: at most one entry goes
    return items[:k] + items[k + 1:], counts[:k] + counts[k + 1:]


Shown = tuple[tuple[str, ...], tuple[int, ...]]  # (items, counts), oldest first


def record_shown(state: UserState, item_ids: Iterable[str],
                 limits: StateLimits = StateLimits()) -> UserState:
    """Count one more showing of each item in a list just sent to the shopper."""
    items, counts = shown_after((state.shown_items, state.shown_counts), item_ids, limits)
    return state.evolve(shown_items=items, shown_counts=counts)


def shown_after(shown: Shown, item_ids: Iterable[str], limits: StateLimits) -> Shown:
    """``record_shown`` on the (items, counts) pair alone."""
    counts = dict(zip(shown[0], shown[1], strict=True))
    for item in item_ids:
        counts[item] = counts.pop(item, 0) + 1  # re-inserting keeps the newest last
    keep = -limits.shown
    return tuple(counts)[keep:], tuple(counts.values())[keep:]


def update_profile(state: UserState, item_vector: Sequence[float] | np.ndarray | None,
                   type_code: int,
                   model_version: str, limits: StateLimits = StateLimits()) -> UserState:
    """Blend the item's embedding into the long-term profile (an exponential moving average).

    A profile built under another model version lives in another space and starts afresh.
    """
    if item_vector is None:
        return state
    old = state.profile_vector if state.profile_model == model_version else np.empty(0)
    weight = min(1.0, (1.0 - limits.profile_decay) * TYPE_WEIGHT[type_code])
    new = np.asarray(item_vector, dtype=np.float64)
    if len(old) == len(new):
        new = (1.0 - weight) * old + weight * new
    # Kept as float16 bytes: compact, and live and restored state stay bit-identical.
    return state.evolve(profile=new.astype(np.float16).tobytes(), profile_model=model_version)


def top_categories(state: UserState, n: int) -> list[str]:
    """The shopper's ``n`` strongest categories by decayed affinity, strongest first."""
    return [c for c, _ in state.category_affinity[:n]]


def _decay_and_add(affinity: tuple[tuple[str, float], ...], category: str | None,
                   weight: float, limits: StateLimits) -> tuple[tuple[str, float], ...]:
    decay = limits.category_decay
    scores = {c: s * decay for c, s in affinity}
    if category:
        scores[category] = scores.get(category, 0.0) + weight
    # Strongest first, ties by name: sorted by name, then (stably) by score.
    ranked = sorted(sorted(scores.items()), key=itemgetter(1), reverse=True)[: limits.categories]
    return tuple([(c, round6(s)) for c, s in ranked])  # 6 decimals keep the state short


def inactive_since(state: UserState) -> int:
    """Epoch ms of the shopper's last activity: the Kafka time of their last event, or for
    state written before that was kept, the event time itself."""
    return state.active_ms or state.last_ts_ms


def is_expired(state: UserState, now_ms: float, keep_ms: float) -> bool:
    """True when the shopper has been inactive for longer than ``keep_ms`` (0 keeps all)."""
    return past_expiry(inactive_since(state), now_ms, keep_ms)


def past_expiry(activity_ms: float, now_ms: float, keep_ms: float) -> bool:
    """``is_expired`` from the last activity's epoch ms alone (the expiry sweep reads only
    that from a stored record)."""
    return keep_ms > 0 and activity_ms < now_ms - keep_ms
