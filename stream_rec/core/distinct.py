"""An approximate count of distinct items: a HyperLogLog sketch of 1,024 one-byte registers.

Online metrics report how many distinct items shoppers were shown. An exact set would grow
with the catalog in every partition's record; the sketch stays 1 KiB, merges across
partitions by taking the larger register, and adding an item twice changes nothing, so a
replay after a crash cannot inflate it. Its relative standard error is 1.04 / sqrt(1024),
about 3.3 % (Flajolet et al., 2007), with the small-range correction (linear counting) below
2.5 x 1,024.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable

PRECISION = 10
REGISTERS = 1 << PRECISION
_ALPHA = 0.7213 / (1 + 1.079 / REGISTERS)


def add_items(registers: bytearray, items: Iterable[str]) -> None:
    """Add items to a sketch of ``REGISTERS`` bytes, in place."""
    for item in items:
        value = int.from_bytes(hashlib.blake2b(item.encode(), digest_size=8).digest(), "big")
        index = value >> (64 - PRECISION)
        rest = value & ((1 << (64 - PRECISION)) - 1)
        rank = (64 - PRECISION) - rest.bit_length() + 1  # position of the first 1 bit
        if rank > registers[index]:
            registers[index] = rank


def new_sketch() -> bytearray:
    """An empty sketch."""
    return bytearray(REGISTERS)


def merge(into: bytearray, other: bytes | bytearray) -> None:
    """``into`` becomes the sketch of both sets (register-wise maximum)."""
    for k, value in enumerate(other[:REGISTERS]):
        if value > into[k]:
            into[k] = value


def estimate(registers: bytes | bytearray) -> float:
    """The approximate number of distinct items added."""
    if len(registers) != REGISTERS:
        return 0.0
    raw = _ALPHA * REGISTERS * REGISTERS / sum(2.0 ** -r for r in registers)
    zeros = registers.count(0)
    if raw <= 2.5 * REGISTERS and zeros:
        return REGISTERS * math.log(REGISTERS / zeros)
    return raw
