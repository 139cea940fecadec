"""Kept images by perceptual hash: find the nearest earlier image a new one duplicates.

Two hashes per image (see `genloop.data.phash`): the 64-bit pHash goes into a
multi-index `HammingIndex` to find candidates within `max_distance` bits quickly;
a candidate counts only if the 256-bit pHashes are within `fine_max_distance`
(default: 3 bits per allowed 64-bit bit; 256 turns the confirmation off). Each
entry carries an item of the caller's choosing (a record id and where it came
from, an earlier version's record).
"""

from __future__ import annotations

from typing import Generic, TypeVar

from genloop.data.hamming_index import HammingIndex
from genloop.data.phash import ImageHashes, default_fine_max_distance

Item = TypeVar("Item")


class NearImageIndex(Generic[Item]):
    def __init__(self, max_distance: int, fine_max_distance: int | None = None) -> None:
        self.coarse = HammingIndex(max_distance)
        self.fine_max_distance = default_fine_max_distance(max_distance, fine_max_distance)
        self._fine: list[int] = []
        self.items: list[Item] = []

    @property
    def max_distance(self) -> int:
        return self.coarse.max_distance

    def __len__(self) -> int:
        return len(self.items)

    def add(self, hashes: ImageHashes, item: Item) -> int:
        """Add an image; returns its position."""
        self._fine.append(hashes.fine)
        self.items.append(item)
        return self.coarse.add(hashes.coarse)

    def nearest(self, hashes: ImageHashes) -> tuple[int, int] | None:
        """(position, 64-bit distance) of the nearest confirmed near-duplicate, or None."""

        def confirmed(position: int) -> bool:
            return (self._fine[position] ^ hashes.fine).bit_count() <= self.fine_max_distance

        return self.coarse.nearest(hashes.coarse, accept=confirmed)
