"""Gathering candidate sources: columns stay with their source, repeats are blanked."""

from __future__ import annotations

from typing import Any

import numpy as np

from stream_rec.serving.candidates import gather


class Fixed:
    def __init__(self, reason: str, rows: list[list[int]]) -> None:
        self.reason = reason
        self.rows = np.asarray(rows, dtype=np.int64)

    def propose(self, queries: Any, table: Any, n: int) -> np.ndarray:
        return self.rows[:, :n]


def test_an_item_stays_with_the_first_source_that_proposed_it() -> None:
    queries = np.zeros((2, 4), dtype=np.float32)
    first = Fixed("a", [[1, 2, 3], [4, 5, 6]])
    second = Fixed("b", [[3, 7], [8, 4]])
    third = Fixed("c", [[7, 1], [9, -1]])
    candidates, reasons = gather([(first, 3), (second, 2), (third, 2)], queries, None)  # type: ignore[arg-type]
    assert reasons == ["a"] * 3 + ["b"] * 2 + ["c"] * 2
    assert candidates.tolist() == [[1, 2, 3, -1, 7, -1, -1], [4, 5, 6, 8, -1, 9, -1]]


def test_a_source_asked_for_nothing_adds_no_columns() -> None:
    queries = np.zeros((1, 4), dtype=np.float32)
    candidates, reasons = gather([(Fixed("a", [[1, 2]]), 2), (Fixed("b", [[3]]), 0)], queries,
                                 None)  # type: ignore[arg-type]
    assert candidates.tolist() == [[1, 2]] and reasons == ["a", "a"]


class ByHistory(Fixed):
    """Proposes each shopper's own latest item (the test's table positions are ints)."""

    def propose_for(self, shoppers: Any, table: Any, n: int) -> np.ndarray:
        return np.array([[int(h[-1][0])] for h in shoppers.histories], dtype=np.int64)


def test_a_source_that_reads_histories_gets_them_when_there_are_some() -> None:
    queries = np.zeros((2, 4), dtype=np.float32)
    source = ByHistory("h", [[9], [9]])
    histories = [[("1", 0), ("5", 0)], [("7", 0)]]
    candidates, _ = gather([(source, 1)], queries, None, histories)  # type: ignore[arg-type]
    assert candidates.tolist() == [[5], [7]]
    # Without histories it is an ordinary source.
    candidates, _ = gather([(source, 1)], queries, None)  # type: ignore[arg-type]
    assert candidates.tolist() == [[9], [9]]
