"""Nearest 64-bit hash within a Hamming radius, without comparing against every hash.

Multi-index hashing (Norouzi, Punjani & Fleet, "Fast Search in Hamming Space with
Multi-Index Hashing", CVPR 2012): cut the 64 bits into `r + 1` blocks. If two
hashes differ in at most `r` bits, those differences fall into at most `r` blocks,
so at least one block is identical (pigeonhole). Each block has a dict from its
value to the hashes holding it; a query looks up its own `r + 1` block values and
checks only those candidates. A full pairwise comparison grows with n² — this
grows with n times the (small) number of hashes sharing a block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

HASH_BITS = 64


def block_bounds(max_distance: int, bits: int = HASH_BITS) -> list[tuple[int, int]]:
    """(shift, mask) of each of the `max_distance + 1` blocks, as equal in width as possible."""
    count = min(max_distance + 1, bits)
    widths = [bits // count + (1 if i < bits % count else 0) for i in range(count)]
    bounds = []
    start = 0
    for width in widths:
        bounds.append((bits - start - width, (1 << width) - 1))
        start += width
    return bounds


class HammingIndex:
    """Hashes added one at a time; `nearest(h)` finds the closest one within `max_distance`.

    Positions are the order of `add` calls (0, 1, ...); callers keep what a position
    means (a record id, where it came from) in their own list.
    """

    def __init__(self, max_distance: int) -> None:
        if not 0 <= max_distance < HASH_BITS:
            raise ValueError(f"max_distance must be between 0 and {HASH_BITS - 1}, got {max_distance}")
        self.max_distance = max_distance
        self._bounds = block_bounds(max_distance)
        self._tables: list[dict[int, list[int]]] = [{} for _ in self._bounds]
        self._hashes: list[int] = []

    def __len__(self) -> int:
        return len(self._hashes)

    def add(self, value: int) -> int:
        """Add a hash; returns its position."""
        position = len(self._hashes)
        self._hashes.append(value)
        for table, (shift, mask) in zip(self._tables, self._bounds, strict=True):
            table.setdefault((value >> shift) & mask, []).append(position)
        return position

    def extend(self, values: Iterable[int]) -> None:
        for value in values:
            self.add(value)

    def within(self, value: int) -> list[tuple[int, int]]:
        """(distance, position) of every hash within `max_distance`, nearest (then earliest) first."""
        hashes = self._hashes
        seen: set[int] = set()
        found: list[tuple[int, int]] = []
        for table, (shift, mask) in zip(self._tables, self._bounds, strict=True):
            for position in table.get((value >> shift) & mask, ()):
                if position not in seen:
                    seen.add(position)
                    distance = (hashes[position] ^ value).bit_count()
                    if distance <= self.max_distance:
                        found.append((distance, position))
        return sorted(found)

    def nearest(self, value: int, accept: Callable[[int], bool] | None = None) -> tuple[int, int] | None:
        """(position, distance) of the closest hash within `max_distance` (earliest on ties), or None.

        `accept(position)`, when given, confirms a candidate (e.g. with a finer hash);
        the nearest accepted one is returned.
        """
        for distance, position in self.within(value):
            if accept is None or accept(position):
                return position, distance
        return None
