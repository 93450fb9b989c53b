"""What a worker knows about the catalog, kept in step with ``storefront.items``."""

from __future__ import annotations

from dataclasses import dataclass, field

from stream_rec.core.catalog import CatalogItem


@dataclass
class CatalogView:
    """Items by id, and which are delisted or out of stock."""

    items: dict[str, CatalogItem] = field(default_factory=dict)
    delisted: set[str] = field(default_factory=set)
    out_of_stock: set[str] = field(default_factory=set)
    version: int = 0  # bumped on every change, so derived masks know when to refresh

    def upsert(self, item: CatalogItem) -> None:
        """Add or replace an item (listing it again if it was delisted)."""
        self.items[item.item_id] = item
        self.delisted.discard(item.item_id)
        if item.in_stock:
            self.out_of_stock.discard(item.item_id)
        else:
            self.out_of_stock.add(item.item_id)
        self.version += 1

    def delist(self, item_id: str) -> None:
        """Forget an item's entry and never recommend it (a tombstone on the topic)."""
        self.items.pop(item_id, None)
        self.out_of_stock.discard(item_id)
        self.delisted.add(item_id)
        self.version += 1

    def shared_id(self, item_id: str) -> str:
        """The catalog's own string for ``item_id`` (``item_id`` itself when it is not listed).
        A model loaded with it (``load_artifact``'s ``same_ids``) holds no second copy of the
        ids the catalog already holds: ~60 MB at a million items, and again during a swap."""
        item = self.items.get(item_id)
        return item_id if item is None else item.item_id

    def category(self, item_id: str) -> str | None:
        """The item's category, if the catalog gives one."""
        item = self.items.get(item_id)
        return item.category if item else None
