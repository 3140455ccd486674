"""The kernels and row chunking chosen for one placement, and the passes built from them.

Every pass is a map over row chunks (the backend kernels, lazy-safe) followed by a
concatenation or a running sum in a fixed order, so results are deterministic and the
``n_samples × n_clusters`` distance matrix never exists whole.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from . import backends
from ._config import get_config

# Per-row bytes of the chunk temporaries, in units of the item size: the distance block and
# the reference reduction's one-hot block (2·k), plus row-sized scratch (2·d).
_BLOCKS_PER_CLUSTER = 2
_BLOCKS_PER_FEATURE = 2
# k-means++ keeps its potential as sums over blocks of this many rows: a draw finds its block
# from the block sums and recomputes only that block's rows.
SEEDING_BLOCK_ROWS = 256


@functools.cache
def _column_weights(n_features: int) -> np.ndarray:
    """Fixed weights in [1, 2) for ``first_duplicates``' per-center keys."""
    return np.random.default_rng(0).uniform(1.0, 2.0, size=n_features)


@dataclass(frozen=True)
class Engine:
    """The kernels and chunking for one placement.

    ``shift`` (a row of length d, or ``None``) is subtracted from every row the passes read:
    the fit works on mean-centered data without a centered copy of X, one chunk at a time.
    """

    xp: Any
    device: Any
    distance: backends.DistanceBackend
    reduction: backends.ReductionBackend
    chunk_size: int
    n_features: int
    itemsize: int
    shift: Any = None

    @classmethod
    def create(cls, xp: Any, device: Any, *, n_features: int, n_columns: int, dtype: Any) -> Engine:
        """Select the backends from the configuration and size the row chunks.

        ``n_columns`` is the widest distance block a pass will build (usually n_clusters).
        """
        config = get_config()
        distance = backends.select("distance", config["distance"], xp, device)
        reduction = backends.select("reduction", config["reduction"], xp, device)
        engine = cls(xp, device, distance, reduction, chunk_size=1, n_features=n_features,
                     itemsize=xp.finfo(dtype).bits // 8)
        return engine.for_columns(n_columns)

    def for_columns(self, n_columns: int) -> Engine:
        """The same engine with row chunks sized for distance blocks ``n_columns`` wide:
        as many rows as ``working_memory`` allows, and no more than the distance backend
        prefers."""
        row_bytes = self.itemsize * (
            _BLOCKS_PER_CLUSTER * n_columns + _BLOCKS_PER_FEATURE * self.n_features + 2
        )
        chunk_size = max(1, int(get_config()["working_memory"] * 2**20) // row_bytes)
        preferred = self.distance.preferred_chunk_rows(self.n_features, n_columns, self.itemsize)
        if preferred is not None:
            chunk_size = max(1, min(chunk_size, preferred))
        return replace(self, chunk_size=chunk_size)

    def centered(self, shift: Any) -> Engine:
        """The same engine reading rows as ``X[i] - shift``."""
        return replace(self, shift=shift)

    def chunks(self, n_samples: int, multiple_of: int = 1) -> Iterator[slice]:
        """Row ranges of ``chunk_size`` rows (rounded down to a multiple of ``multiple_of``)."""
        size = max(multiple_of, self.chunk_size // multiple_of * multiple_of)
        for start in range(0, n_samples, size):
            yield slice(start, min(start + size, n_samples))

    def rows(self, X: Any, rows: slice) -> Any:
        """A chunk of rows as the passes see them (shifted)."""
        chunk = X[rows, ...]
        return chunk if self.shift is None else chunk - self.shift

    def take_rows(self, X: Any, indices: Any) -> Any:
        """Rows of X by index, as the passes see them (shifted)."""
        picked = self.xp.take(X, indices, axis=0)
        return picked if self.shift is None else picked - self.shift

    def first_duplicates(self, centers: Any) -> Any:
        """For each center, the lowest index of a center equal to it (its own if none), int32.

        Identical centers must tie and the lowest index must win, but the kernels' matmul
        rounds a column differently depending on its position (BLAS tiles), so identical
        centers can get different scores; mapping labels through this restores the tie.
        A lexicographic sort makes equal rows adjacent: O(d · k log k), no k × k block.
        """
        xp, n_centers = self.xp, centers.shape[0]
        # Usually no two centers are equal, and one key per row shows it: a fixed weighting of
        # the columns, reduced row by row in the same order, gives equal rows equal keys. Only
        # when two keys are equal (equal rows, or a rare collision) is the full sort needed.
        # That is 4 operations instead of about 4·d small ones (d kernel launches on a GPU).
        column_weights = xp.asarray(_column_weights(centers.shape[1]), dtype=centers.dtype, device=self.device)
        keys = xp.sort(xp.sum(centers * column_weights, axis=1))
        if not bool(xp.any(keys[1:] == keys[:-1])):
            return xp.arange(n_centers, dtype=xp.int32, device=self.device)
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
        # int32, as scikit-learn's labels: mapping through it halves the n-sized label arrays.
        return xp.astype(xp.take(first_in_sorted_order, xp.argsort(order)), xp.int32)

    def _concat(self, parts: list[Any]) -> Any:
        return parts[0] if len(parts) == 1 else self.xp.concat(parts, axis=0)

    def nearest(self, X: Any, centers: Any) -> tuple[Any, Any]:
        """Labels and squared distances to the nearest center, for all rows."""
        labels, sqdist = [], []
        first = self.first_duplicates(centers)
        for rows in self.chunks(X.shape[0]):
            chunk_labels, chunk_sqdist = self.distance.nearest_shifted(
                X[rows, ...], centers, xp=self.xp, shift=self.shift
            )
            labels.append(self.xp.take(first, chunk_labels))
            sqdist.append(chunk_sqdist)
        return self._concat(labels), self._concat(sqdist)

    def pairwise(self, X: Any, centers: Any) -> Any:
        """All squared distances, shape ``(n_samples, n_centers)``."""
        return self._concat(
            [self.distance.pairwise(self.rows(X, rows), centers, xp=self.xp) for rows in self.chunks(X.shape[0])]
        )

    def lloyd_pass(
        self, X: Any, weights: Any, centers: Any
    ) -> tuple[Any, Any, Any, Any]:
        """One E-step and the sums of the M-step: ``(labels, sums, weight_sums, inertia)``.

        ``inertia`` is the 0-d weighted sum of squared distances to ``centers``.
        """
        xp = self.xp
        labels, sums, weight_sums, inertia = [], None, None, None
        first = self.first_duplicates(centers)
        for rows in self.chunks(X.shape[0]):
            chunk_weights = weights[rows]
            chunk_labels, chunk_inertia, chunk_sums, chunk_weight_sums = self.distance.nearest_and_sum(
                X[rows, ...], centers, chunk_weights, first, self.reduction, xp=xp, shift=self.shift
            )
            labels.append(chunk_labels)
            if sums is None:
                sums, weight_sums, inertia = chunk_sums, chunk_weight_sums, chunk_inertia
            else:
                sums = sums + chunk_sums
                weight_sums = weight_sums + chunk_weight_sums
                inertia = inertia + chunk_inertia
        return self._concat(labels), sums, weight_sums, inertia

    def seeding_pass(self, X: Any, candidates: Any, pending: Any, closest: Any, weights: Any) -> tuple[Any, Any]:
        """One k-means++ step over all rows (see ``DistanceBackend.seeding_pass``):
        ``(updated closest, block potentials)``, blocks of ``SEEDING_BLOCK_ROWS`` rows."""
        updated, blocks = [], []
        for rows in self.chunks(X.shape[0], multiple_of=SEEDING_BLOCK_ROWS):
            chunk_updated, chunk_blocks = self.distance.seeding_pass(
                X[rows, ...], candidates, pending, closest[rows], weights[rows],
                xp=self.xp, shift=self.shift, block_rows=SEEDING_BLOCK_ROWS,
            )
            updated.append(chunk_updated)
            blocks.append(chunk_blocks)
        return self._concat(updated), self._concat(blocks)

    def seeding_draw(
        self, X: Any, weights: Any, closest: Any, pending: Any, block_sums: Any, targets: Any
    ) -> Any:
        """k-means++ draws from the block sums of a ``seeding_pass`` (see
        ``DistanceBackend.seeding_draw``): row indices, one per target."""
        return self.distance.seeding_draw(
            X, weights, closest, pending, block_sums, targets,
            xp=self.xp, shift=self.shift, block_rows=SEEDING_BLOCK_ROWS,
        )

    def sqdist_to_assigned(self, X: Any, centers: Any, labels: Any) -> Any:
        """Exact ``‖x − c_label‖²`` per row (direct form: no cancellation)."""
        return self._concat([
            self.distance.sqdist_to_assigned(
                X[rows, ...], centers, labels[rows], xp=self.xp, shift=self.shift
            )
            for rows in self.chunks(X.shape[0])
        ])

    def mean_variance(self, X: Any) -> float:
        """Mean over the features of the (shifted) rows' variance about the shift, as a float.

        With the shift at the column means this is ``mean(var(X, axis=0))``, without a
        centered copy of X.
        """
        xp, total = self.xp, None
        # Squared distances to a zero center: a fused backend reads the rows centered
        # without copying the chunk.
        origin = xp.zeros((1, X.shape[1]), dtype=X.dtype, device=self.device)
        for rows in self.chunks(X.shape[0]):
            labels = xp.zeros(rows.stop - rows.start, dtype=xp.int32, device=self.device)
            sqnorms = self.distance.sqdist_to_assigned(X[rows, ...], origin, labels, xp=xp, shift=self.shift)
            part = xp.sum(sqnorms)
            total = part if total is None else total + part
        return float(total) / (X.shape[0] * X.shape[1])

    def inertia(self, X: Any, weights: Any, centers: Any, labels: Any) -> float:
        """Exact weighted inertia as a Python float."""
        sqdist = self.sqdist_to_assigned(X, centers, labels)
        return float(self.xp.sum(weights * sqdist))
