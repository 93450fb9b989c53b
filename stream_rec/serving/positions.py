"""Where each partition of the events topic stands: repeats and gaps in the offsets taken in.

Offsets are compared within one consumer generation (a Faust rebalance starts a new one): a
partition may belong to another worker between two generations, so an offset seen before a
rebalance says nothing about what was processed since.
"""

from __future__ import annotations


def redelivered(offset: int, generation: int, last: tuple[int, int] | None) -> bool:
    """Whether this worker already took the message at ``offset`` in this generation.

    ``last`` is (generation, offset) of the last event taken from the partition. Within one
    generation a partition's offsets only repeat when a seek moves the consumer back over
    events already handed to the stream (the end of a rebalance seeks to the committed
    offsets), so their lists are out and their state applied. After a rebalance the same
    offsets count as new: the partition may have been someone else's in between.
    """
    return last is not None and last[0] == generation and offset <= last[1]


def skipped_offsets(offset: int, generation: int, last: tuple[int, int] | None,
                    committed: int | None) -> int:
    """How many offsets before ``offset`` this worker never received, within one generation.

    ``last`` is (generation, offset) of the previous event taken from the partition; for the
    first one of a generation the expected offset is the committed one it resumes from. A
    lower offset is a replay (normal after a rebalance or a seek), not a skip.
    """
    if last is not None and last[0] == generation:
        expected: int | None = last[1] + 1
    else:
        expected = committed
    return max(0, offset - expected) if expected is not None else 0
