"""Vocabularies learned from a training split: items, attribute values, price buckets.

Items enter the vocabulary when they occur in training (at least ``min_item_count`` times),
most frequent first. Attribute values enter when a vocabulary item carries them; a value seen
only on items the model never trained on would get no useful embedding, so it stays unknown.
An attribute whose name contains "price" and whose values are numbers is bucketed by
quantiles instead (boundaries kept in the artifact).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stream_rec.datasets import Dataset
from stream_rec.model.artifact import FIRST_ITEM_INDEX, OOV_INDEX, encode_attribute


@dataclass
class Vocabulary:
    """Index tables of a training split: items and attribute values to model rows, price buckets."""

    item_ids: list[str]
    attribute_names: list[str]
    attribute_values: dict[str, list[str]]  # categorical: value at index FIRST + position
    price_boundaries: dict[str, list[float]]  # bucketed numeric attributes

    def __post_init__(self) -> None:
        self.position = {item: pos for pos, item in enumerate(self.item_ids)}
        self.value_index = {name: {v: FIRST_ITEM_INDEX + i for i, v in enumerate(values)}
                            for name, values in self.attribute_values.items()}
        self.boundaries = {name: np.asarray(b, dtype=np.float64)
                           for name, b in self.price_boundaries.items()}

    @property
    def n_item_indices(self) -> int:
        return len(self.item_ids) + FIRST_ITEM_INDEX

    def attribute_sizes(self) -> list[int]:
        """Rows of each attribute's embedding table (padding and unknown included)."""
        return [FIRST_ITEM_INDEX + (len(self.price_boundaries[name]) + 1
                                    if name in self.price_boundaries
                                    else len(self.attribute_values[name]))
                for name in self.attribute_names]

    def item_index(self, item_ids: Sequence[str]) -> NDArray[np.int64]:
        get = self.position.get
        return np.fromiter((get(i, -1) + FIRST_ITEM_INDEX if i in self.position else OOV_INDEX
                            for i in item_ids), dtype=np.int64, count=len(item_ids))

    def attributes(self, item_ids: Sequence[str], items: Mapping[str, Mapping[str, str]]
                   ) -> NDArray[np.int64]:
        """(len(ids), A) attribute indices from raw catalog attributes."""
        out = np.full((len(item_ids), len(self.attribute_names)), OOV_INDEX, dtype=np.int64)
        for row, item in enumerate(item_ids):
            attrs = items.get(item)
            if attrs:
                out[row] = [encode_attribute(self.value_index.get(name, {}),
                                             self.boundaries.get(name), attrs.get(name))
                            for name in self.attribute_names]
        return out

    def to_json(self) -> dict[str, Any]:
        return {"names": self.attribute_names,
                "vocabularies": {n: self.attribute_values.get(n, [])
                                 for n in self.attribute_names},
                "price_boundaries": self.price_boundaries}


def is_price(name: str, values: Sequence[str]) -> bool:
    """Whether an attribute is a price: "price" in its name and 90% of its values numbers."""
    if "price" not in name.lower() or not values:
        return False
    return sum(_finite(v) for v in values) >= 0.9 * len(values)


def build_vocabulary(dataset: Dataset, min_item_count: int = 1, price_buckets: int = 10,
                     use_content: bool = True) -> Vocabulary:
    """The vocabularies of a training split: items by frequency, attribute values, prices."""
    counts = Counter(e.item_id for s in dataset.train for e in s.events)
    order = {item: n for n, item in enumerate(counts)}  # first appearance breaks ties
    items = sorted((i for i, c in counts.items() if c >= min_item_count),
                   key=lambda i: (-counts[i], order[i]))
    names: list[str] = []
    values: dict[str, list[str]] = {}
    bounds: dict[str, list[float]] = {}
    if use_content:
        for name in dataset.attribute_names():
            seen = [dataset.items[i][name] for i in items
                    if i in dataset.items and name in dataset.items[i]]
            if not seen:
                continue
            names.append(name)
            if is_price(name, seen):
                numbers = np.array([float(v) for v in seen if _finite(v)])
                qs = np.quantile(numbers, np.linspace(0, 1, price_buckets + 1)[1:-1])
                bounds[name] = sorted({float(q) for q in qs})
            else:
                value_counts = Counter(seen)
                values[name] = sorted(value_counts, key=lambda v: (-value_counts[v], v))
    return Vocabulary(items, names, values, bounds)


def _finite(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False
