"""The HyperLogLog sketch of distinct items (stream_rec.core.distinct), and the online-metrics
records that keep one per group (stream_rec.serving.online_metrics)."""

from __future__ import annotations

import pytest

from stream_rec.core.distinct import REGISTERS, add_items, estimate, merge, new_sketch
from stream_rec.serving.online_metrics import (
    FIGURES,
    PartitionMetrics,
    add_up,
    decode_partition_metrics,
)


def _items(prefix: str, start: int, stop: int) -> list[str]:
    return [f"{prefix}-item-{n}" for n in range(start, stop)]


def _sketch(items: list[str]) -> bytearray:
    sketch = new_sketch()
    add_items(sketch, items)
    return sketch


def test_an_empty_sketch_estimates_zero() -> None:
    sketch = new_sketch()
    assert len(sketch) == REGISTERS and not any(sketch)
    assert estimate(sketch) == 0.0
    assert estimate(b"\x01" * (REGISTERS - 1)) == 0.0  # not a sketch


@pytest.mark.parametrize("n", [1, 100, 1_000, 50_000])
@pytest.mark.parametrize("seed", ["s0", "s1", "s2", "s3"])
def test_the_estimate_is_within_ten_percent(n: int, seed: str) -> None:
    assert estimate(_sketch(_items(seed, 0, n))) == pytest.approx(n, rel=0.10)


def test_adding_the_same_items_again_changes_nothing() -> None:
    items = _items("again", 0, 3_000)
    sketch = _sketch(items)
    before = bytes(sketch)
    add_items(sketch, items)
    add_items(sketch, reversed(items[:500]))
    assert bytes(sketch) == before
    # Order does not matter either.
    assert bytes(_sketch(list(reversed(items)))) == before


def test_merge_gives_the_sketch_of_the_union() -> None:
    first, second = _items("m", 0, 30_000), _items("m", 20_000, 50_000)  # 10,000 in both
    a, b = _sketch(first), _sketch(second)
    union = _sketch(first + second)
    merged = bytearray(a)
    merge(merged, b)
    assert merged == union  # register-wise: exactly the sketch of the union
    other = bytearray(b)
    merge(other, a)
    assert other == union  # either way round
    assert estimate(merged) == pytest.approx(50_000, rel=0.10)
    assert estimate(a) == pytest.approx(30_000, rel=0.10)
    # Merging a sketch into itself, or an empty one into it, changes nothing.
    merge(merged, union)
    merge(merged, new_sketch())
    assert merged == union


def test_small_overlapping_sets_merge_to_their_union_count() -> None:
    a, b = _sketch(_items("x", 0, 150)), _sketch(_items("x", 100, 300))
    merge(a, b)
    assert estimate(a) == pytest.approx(300, rel=0.10)


def test_partition_records_keep_their_sketches_through_encoding() -> None:
    record = PartitionMetrics(offset=41, topic="abcd")
    record.add("v1|dpp:0.15|exp-1|a", "impressions")
    record.add("v1|dpp:0.15|exp-1|a", "impressed_items", 3)
    record.impressed("v1|dpp:0.15|exp-1|a", _items("p", 0, 500))
    record.impressed("v1|dpp:0.15|exp-1|b", _items("p", 200, 260))
    back = decode_partition_metrics(record.encode())
    assert back.offset == 41 and back.topic == "abcd"
    assert back.groups == record.groups
    assert back.sketches == record.sketches
    assert all(isinstance(s, bytearray) for s in back.sketches.values())
    # It goes on counting where it left off: adding seen items changes nothing.
    back.impressed("v1|dpp:0.15|exp-1|b", _items("p", 200, 260))
    assert back.sketches == record.sketches
    # A record without sketches has no "d" key and decodes with none.
    plain = PartitionMetrics(offset=3)
    plain.add("g", "lists")
    assert b'"d"' not in plain.encode()
    assert decode_partition_metrics(plain.encode()).sketches == {}


def test_a_sketch_of_the_wrong_size_is_dropped_and_garbage_starts_afresh() -> None:
    record = PartitionMetrics(offset=7)
    record.add("g", "lists")
    record.sketches["short"] = bytearray(b"\x03" * 10)
    record.impressed("g", ["a", "b"])
    back = decode_partition_metrics(record.encode())
    assert set(back.sketches) == {"g"} and back.groups == record.groups
    unreadable_sketch = decode_partition_metrics(b'{"o": 1, "g": {}, "d": {"g": "***"}}')
    assert (unreadable_sketch.offset, unreadable_sketch.sketches) == (1, {})
    for raw in (b"not json", b"[]", b'{"o": 1, "g": {}, "d": {"g": 5}}'):
        assert decode_partition_metrics(raw) == PartitionMetrics()


def test_add_up_gives_distinct_items_per_group() -> None:
    one, two = PartitionMetrics(offset=1), PartitionMetrics(offset=9)
    one.add("g1", "impressions", 2)
    two.add("g1", "impressions", 3)
    one.impressed("g1", _items("g1", 0, 600))
    two.impressed("g1", _items("g1", 400, 1_000))  # 200 items shown in both partitions
    two.impressed("g2", _items("g2", 0, 50))  # a sketch with no figures yet
    one.add("g3", "lists", 4)  # figures with no impressions: no distinct items
    total = add_up([one, two])
    assert set(total) == {"g1", "g2", "g3"}
    assert total["g1"]["impressions"] == 5
    assert total["g1"]["distinct_items"] == pytest.approx(1_000, rel=0.10)
    assert isinstance(total["g1"]["distinct_items"], int)
    assert total["g2"]["distinct_items"] == pytest.approx(50, rel=0.10)
    assert set(total["g2"]) == {*FIGURES, "distinct_items"}
    assert total["g2"]["impressions"] == 0
    assert "distinct_items" not in total["g3"] and total["g3"]["lists"] == 4
    # The same records twice (a partition's record read twice) cannot inflate the count.
    assert add_up([one, two, two])["g1"]["distinct_items"] == total["g1"]["distinct_items"]
    assert add_up([]) == {}
