"""How dataset event names map onto the event contract's types.

The contract knows ``view``, ``click``, ``add_to_cart`` and ``purchase``. Research datasets use
their own words; the mapping below is documented in docs/model.md:

- ``view``/``browse``/``pageview`` -> ``view``; ``click`` -> ``click``
- ``follow``/``cart``/``add_to_cart``/``addtocart``/``wishlist`` -> ``add_to_cart`` (intent short
  of buying)
- ``comment``/``review`` -> ``click`` (engagement with an item, weaker than intent)
- ``order``/``purchase``/``buy``/``transaction`` -> ``purchase``

Session-only formats (no event column) are clicks.
"""

from __future__ import annotations

EVENT_NAME_MAP: dict[str, str] = {
    "view": "view",
    "browse": "view",
    "pageview": "view",
    "click": "click",
    "comment": "click",
    "review": "click",
    "follow": "add_to_cart",
    "cart": "add_to_cart",
    "add_to_cart": "add_to_cart",
    "addtocart": "add_to_cart",
    "wishlist": "add_to_cart",
    "order": "purchase",
    "purchase": "purchase",
    "buy": "purchase",
    "transaction": "purchase",
}


def contract_type(name: str) -> str | None:
    """The contract type for a dataset's event name, None when it is not one we know."""
    return EVENT_NAME_MAP.get(name.strip().lower())
