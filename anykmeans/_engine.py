"""The kernels and row chunking chosen for one placement, and the passes built from them.

Every pass is a map over row chunks (the backend kernels, lazy-safe) followed by a
concatenation or a running sum in a fixed order, so results are deterministic and the
``n_samples × n_clusters`` distance matrix never exists whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import backends
from ._config import get_config

# Per-row bytes of the chunk temporaries, in units of the item size: the distance block and
# the reference reduction's one-hot block (2·k), plus row-sized scratch (2·d).
_BLOCKS_PER_CLUSTER = 2
_BLOCKS_PER_FEATURE = 2


@dataclass(frozen=True)
class Engine:
    xp: Any
    device: Any
    distance: backends.DistanceBackend
    reduction: backends.ReductionBackend
    chunk_size: int

    @classmethod
    def create(cls, xp: Any, device: Any, *, n_features: int, n_columns: int, dtype: Any) -> Engine:
        """Select the backends from the configuration and size the row chunks.

        ``n_columns`` is the widest distance block a pass will build (usually n_clusters).
        """
        config = get_config()
        distance = backends.select("distance", config["distance"], xp, device)
        reduction = backends.select("reduction", config["reduction"], xp, device)
        itemsize = xp.finfo(dtype).bits // 8
        row_bytes = itemsize * (
            _BLOCKS_PER_CLUSTER * n_columns + _BLOCKS_PER_FEATURE * n_features + 2
        )
        chunk_size = max(1, int(config["working_memory"] * 2**20) // row_bytes)
        return cls(xp, device, distance, reduction, chunk_size)

    def chunks(self, n_samples: int) -> Iterator[slice]:
        for start in range(0, n_samples, self.chunk_size):
            yield slice(start, min(start + self.chunk_size, n_samples))

    def first_duplicates(self, centers: Any) -> Any:
        """For each center, the lowest index of a center equal to it (its own if none).

        Identical centers must tie and the lowest index must win, but the kernels' matmul
        rounds a column differently depending on its position (BLAS tiles), so identical
        centers can get different scores; mapping labels through this restores the tie.
        A lexicographic sort makes equal rows adjacent: O(d · k log k), no k × k block.
        """
        xp, n_centers = self.xp, centers.shape[0]
        # Stable sorts from the last column to the first: a lexicographic order in which
        # equal rows are adjacent and keep increasing indices.
        order = xp.arange(n_centers, device=self.device)
        for j in range(centers.shape[1] - 1, -1, -1):
            order = xp.take(order, xp.argsort(xp.take(centers[:, j], order), stable=True))
        rows = xp.take(centers, order, axis=0)
        new_group = xp.concat(
            [xp.ones((1,), dtype=xp.bool, device=self.device), xp.any(rows[1:, :] != rows[:-1, :], axis=1)]
        )
        group = xp.cumulative_sum(xp.astype(new_group, xp.int64))
        # The first sorted position of each row's group holds the group's lowest index.
        first_in_sorted_order = xp.take(order, xp.searchsorted(group, group, side="left"))
        return xp.take(first_in_sorted_order, xp.argsort(order))

    def _concat(self, parts: list[Any]) -> Any:
        return parts[0] if len(parts) == 1 else self.xp.concat(parts, axis=0)

    def nearest(self, X: Any, centers: Any) -> tuple[Any, Any]:
        """Labels and squared distances to the nearest center, for all rows."""
        labels, sqdist = [], []
        first = self.first_duplicates(centers)
        for rows in self.chunks(X.shape[0]):
            chunk_labels, chunk_sqdist = self.distance.nearest(X[rows, ...], centers, xp=self.xp)
            labels.append(self.xp.take(first, chunk_labels))
            sqdist.append(chunk_sqdist)
        return self._concat(labels), self._concat(sqdist)

    def pairwise(self, X: Any, centers: Any) -> Any:
        """All squared distances, shape ``(n_samples, n_centers)``."""
        return self._concat(
            [self.distance.pairwise(X[rows, ...], centers, xp=self.xp) for rows in self.chunks(X.shape[0])]
        )

    def lloyd_pass(
        self, X: Any, weights: Any, centers: Any
    ) -> tuple[Any, Any, Any, Any]:
        """One E-step and the sums of the M-step: ``(labels, sums, weight_sums, inertia)``.

        ``inertia`` is the 0-d weighted sum of squared distances to ``centers``.
        """
        xp, n_clusters = self.xp, centers.shape[0]
        labels, sums, weight_sums, inertia = [], None, None, None
        first = self.first_duplicates(centers)
        for rows in self.chunks(X.shape[0]):
            chunk, chunk_weights = X[rows, ...], weights[rows]
            chunk_labels, chunk_sqdist = self.distance.nearest(chunk, centers, xp=xp)
            chunk_labels = xp.take(first, chunk_labels)
            chunk_sums, chunk_weight_sums = self.reduction.segment_sum(
                chunk, chunk_labels, chunk_weights, n_clusters, xp=xp
            )
            chunk_inertia = xp.sum(chunk_weights * chunk_sqdist)
            labels.append(chunk_labels)
            if sums is None:
                sums, weight_sums, inertia = chunk_sums, chunk_weight_sums, chunk_inertia
            else:
                sums = sums + chunk_sums
                weight_sums = weight_sums + chunk_weight_sums
                inertia = inertia + chunk_inertia
        return self._concat(labels), sums, weight_sums, inertia

    def sqdist_to_assigned(self, X: Any, centers: Any, labels: Any) -> Any:
        """Exact ``‖x − c_label‖²`` per row (direct form: no cancellation)."""
        xp, parts = self.xp, []
        for rows in self.chunks(X.shape[0]):
            diff = X[rows, ...] - xp.take(centers, labels[rows], axis=0)
            parts.append(xp.vecdot(diff, diff, axis=-1))
        return self._concat(parts)

    def inertia(self, X: Any, weights: Any, centers: Any, labels: Any) -> float:
        """Exact weighted inertia as a Python float."""
        sqdist = self.sqdist_to_assigned(X, centers, labels)
        return float(self.xp.sum(weights * sqdist))
