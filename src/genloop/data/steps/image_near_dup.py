"""Near-duplicate images: pHash within a Hamming radius, first one of each cluster kept.

The same photo re-encoded as JPEG, resized, brightened or shifted by a pixel has a
different content hash (so exact dedup misses it) but a pHash a few bits away. The
step keeps the first image of each cluster and drops every later one whose pHash is
within `max_distance` bits of a kept image (and whose finer 256-bit pHash agrees,
which keeps different handwritten digits apart; see `genloop.data.phash`), naming
the one it matched::

    near-duplicate image (phash distance 3) of 3f2a9c01d4e5 (data/cats/a.png)

Clusters are "leader" clusters: an image joins the cluster of the nearest *kept*
image, so a chain a~b~c with a and c far apart keeps c (it resembles nothing kept).
State (the kept hashes, in a multi-index table) lives across batches, like exact
dedup, so the step is stateful and runs in the driver. The expensive part, decoding
and hashing, is the separate parallel-safe `ImagePhashes` step before it, which
stores the hashes in `meta`; this step only compares them. Cluster sizes
go into the step's report counters (`clusters of size 3: 2`), `stats()` gives more.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from genloop.config import ImageCleanConfig
from genloop.data.near_image_index import NearImageIndex
from genloop.data.phash import with_phashes
from genloop.data.pipeline import Reason, StepOutput
from genloop.data.record import Record

NEAR_DUPLICATE_KIND = "near-duplicate image"


class ImagePhashes:
    """Compute each image's pHashes into `meta` (`phash`: 64 bits, `phash256`), in parallel."""

    name = "image-phash"
    parallel_safe = True

    def __call__(self, batch: list[Record]) -> StepOutput:
        return StepOutput(kept=with_phashes(batch)[0])


class ImageNearDuplicates:
    name = "image-near-dup"

    def __init__(self, max_distance: int = 6, *, fine_max_distance: int | None = None) -> None:
        self.index: NearImageIndex[tuple[str, str]] = NearImageIndex(max_distance, fine_max_distance)
        self.cluster_sizes: Counter[int] = Counter()  # position of a kept image -> images in its cluster

    @classmethod
    def from_config(cls, cfg: ImageCleanConfig) -> ImageNearDuplicates:
        return cls(cfg.phash_max_distance, fine_max_distance=cfg.phash256_max_distance)

    def __call__(self, batch: list[Record]) -> StepOutput:
        batch, hashes = with_phashes(batch)
        output = StepOutput(kept=[])
        counters = output.counters
        for record, value in zip(batch, hashes, strict=True):
            if value is None:  # not an image (mixed pipelines): nothing to compare
                output.kept.append(record)
                continue
            match = self.index.nearest(value)
            if match is None:
                position = self.index.add(value, (record.id, record.where))
                self.cluster_sizes[position] = 1
                output.kept.append(record)
                continue
            position, distance = match
            kept_id, kept_where = self.index.items[position]
            size = self.cluster_sizes[position] = self.cluster_sizes[position] + 1
            # A histogram of cluster sizes that sums correctly over batches: the cluster
            # leaves its old size's count and joins the new one.
            if size > 2:
                counters[f"clusters of size {size - 1}"] = counters.get(f"clusters of size {size - 1}", 0) - 1
            counters[f"clusters of size {size}"] = counters.get(f"clusters of size {size}", 0) + 1
            reason = f"near-duplicate image (phash distance {distance}) of {kept_id[:12]} ({kept_where})"
            output.dropped.append((record, Reason(reason, kind=NEAR_DUPLICATE_KIND)))
        return output

    def clusters(self) -> list[tuple[str, int]]:
        """(kept record id, cluster size) of every cluster with more than one image, largest first."""
        return sorted(
            ((self.index.items[p][0], size) for p, size in self.cluster_sizes.items() if size > 1),
            key=lambda item: -item[1],
        )

    def stats(self) -> dict[str, Any]:
        """For the manifest: how many clusters of each size, and the largest ones."""
        clusters = self.clusters()
        sizes = Counter(size for _, size in clusters)
        return {
            "max_distance": self.index.max_distance,
            "fine_max_distance": self.index.fine_max_distance,
            "images": sum(self.cluster_sizes.values()),
            "clusters": len(clusters),
            "cluster_sizes": {str(size): n for size, n in sorted(sizes.items())},
            "largest": [{"kept": record_id, "size": size} for record_id, size in clusters[:5]],
        }
