"""Which recommendation list an interaction came from, kept with the shopper's state.

A list is known by its ``list_id`` and belongs to a *group*: the model version, re-ranking
policy and (when one runs) experiment arm that made it, the unit online metrics are kept by.
The shopper's state keeps the last few lists sent, impressions received and attributed clicks,
so attribution is a pure function of the state and the event:

- an event carrying ``list_id`` (and ``position``) is attributed to that list (explicit);
- otherwise a view or click of an item goes to the shopper's latest impression holding that
  item within the attribution window, at the item's place in it;
- an add-to-cart or purchase goes to the list of the latest attributed click on that item
  within the window.
"""

from __future__ import annotations

from collections.abc import Sequence

from stream_rec.core.events import TYPE_CODE, Event, Impression
from stream_rec.core.experiments import ExperimentTag
from stream_rec.core.state import UserState

SENT_KEPT = 8  # lists sent, newest last: impressions name one of the last few
IMPRESSIONS_KEPT = 5
IMPRESSION_ITEMS_KEPT = 50  # per impression: what a page shows at once
CLICKS_KEPT = 20
UNKNOWN_GROUP = "unknown"  # a list older than the ones kept, or from another worker's past
CLICK_TYPES = (TYPE_CODE["view"], TYPE_CODE["click"])


def group_key(model_version: str | None, policy: str, experiment: ExperimentTag | None
              ) -> str:
    """The group a list's figures count in: ``model|policy|experiment|arm`` (not the
    weights version: a bandit's arm stays one group however often its weights change)."""
    exp, arm = (experiment.id, experiment.arm) if experiment else ("", "")
    return f"{model_version or 'fallback'}|{policy}|{exp}|{arm}"


def split_group(key: str) -> dict[str, str]:
    """The labels of a group key (for metrics and reports)."""
    model, policy, experiment, arm = (key.split("|") + ["", "", "", ""])[:4]
    return {"model": model, "policy": policy, "experiment": experiment, "arm": arm}


def record_sent(state: UserState, list_id: str, group: str) -> UserState:
    """Remember a list sent to the shopper, so impressions and clicks can name it."""
    return state.evolve(sent_lists=sent_after(state.sent_lists, [(list_id, group)]))


def sent_after(sent: tuple[tuple[str, str], ...], new: Sequence[tuple[str, str]]
               ) -> tuple[tuple[str, str], ...]:
    """The (list_id, group) pairs kept once ``new`` ones were sent, newest last (a list sent
    again, as after a crash, is kept once, where it was sent last)."""
    ids = {list_id for list_id, _ in new}
    return (*(entry for entry in sent if entry[0] not in ids), *new)[-SENT_KEPT:]


def group_of(state: UserState, list_id: str) -> str:
    """The group of a list the shopper was sent, or ``UNKNOWN_GROUP``."""
    for sent_id, group in reversed(state.sent_lists):
        if sent_id == list_id:
            return group
    return UNKNOWN_GROUP


def record_impression(state: UserState, impression: Impression, ts_ms: int, offset: int = -1
                      ) -> tuple[UserState, str]:
    """The state remembering the impression (for attribution), and its list's group."""
    group = group_of(state, impression.list_id)
    entry = (impression.list_id, group, ts_ms, impression.item_ids[:IMPRESSION_ITEMS_KEPT],
             offset)
    return state.evolve(impressed=(*state.impressed, entry)[-IMPRESSIONS_KEPT:]), group


def attribute(state: UserState, event: Event, ts_ms: int, window_ms: int, offset: int = -1,
              replayed: bool = False) -> tuple[UserState, str | None, int | None]:
    """(state, group, position) for an interaction at ``offset``: the group of the list it
    came from, or None when it came from none; an attributed view or click is remembered for
    the add-to-carts and purchases that follow it. A ``replayed`` message (one the state
    already includes, handled again after a crash) is attributed only to impressions and
    clicks from before it: the state as saved may hold later ones."""

    def before(at: int) -> bool:
        return not replayed or at < 0 or at < offset

    group: str | None = None
    position = event.position
    if event.list_id is not None:  # explicit
        group = group_of(state, event.list_id)
        if group == UNKNOWN_GROUP:
            for list_id, impressed_group, _, _, at in reversed(state.impressed):
                if list_id == event.list_id and before(at):
                    group = impressed_group
                    break
    elif event.type_code in CLICK_TYPES:
        for _, impressed_group, at_ms, items, at in reversed(state.impressed):
            if ts_ms - at_ms <= window_ms and event.item_id in items and before(at):
                group, position = impressed_group, items.index(event.item_id)
                break
    else:  # add to cart, purchase: the latest attributed click on the item
        for item, clicked_group, at_ms, at in reversed(state.clicks):
            if item == event.item_id and ts_ms - at_ms <= window_ms and before(at):
                group = clicked_group
                break
    if group is not None and event.type_code in CLICK_TYPES:
        clicks = (*state.clicks, (event.item_id, group, ts_ms, offset))[-CLICKS_KEPT:]
        state = state.evolve(clicks=clicks)
    return state, group, position
