"""NumPy fast path: cache-sized BLAS blocks for distances and sums.

A chunk from the engine is sized by ``working_memory`` (hundreds of MiB); within it, these
kernels work on row blocks whose ``rows × k`` temporaries stay in cache between the GEMM and
the passes that read its result (argmin, one-hot sums).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import array_api_compat
import numpy as np

from ._base import DistanceBackend, ReductionBackend

# Bytes of a rows × k block: about the size of a core's share of L2/L3 cache.
_BLOCK_BYTES = 2 * 2**20
_MIN_BLOCK_ROWS = 256
_MAX_CHUNK_ROWS = 1 << 14
# Above this many clusters the one-hot GEMM (2·k flops per element) costs more than a
# flat bincount (a few ns per element, independent of k).
_ONE_HOT_MAX_CLUSTERS = 256


def _is_numpy(xp: Any) -> bool:
    return array_api_compat.is_numpy_namespace(xp)


def _row_blocks(n_rows: int, n_columns: int, itemsize: int) -> Iterator[slice]:
    size = max(_MIN_BLOCK_ROWS, _BLOCK_BYTES // (n_columns * itemsize))
    for start in range(0, n_rows, size):
        yield slice(start, min(start + size, n_rows))


def _scores(X: np.ndarray, centers: np.ndarray, centers_sqnorm: np.ndarray) -> np.ndarray:
    # Same arithmetic as the reference (‖c‖² − 2·x·c), without its temporaries.
    scores = X @ centers.T
    scores *= -2
    scores += centers_sqnorm
    return scores


def _sqnorm(rows: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", rows, rows)


class NumpyDistance(DistanceBackend):
    name = "numpy"
    priority = 10

    def supports(self, xp: Any, device: Any) -> bool:
        return _is_numpy(xp)

    def preferred_chunk_rows(self, n_features: int, n_columns: int, itemsize: int) -> int:
        # The row blocks below keep the temporaries in cache; the chunk only bounds the
        # centered copy of its rows, which need not be large.
        return _MAX_CHUNK_ROWS

    def nearest(self, X: Any, centers: Any, *, xp: Any) -> tuple[Any, Any]:
        centers_sqnorm = _sqnorm(centers)
        labels = np.empty(X.shape[0], dtype=np.intp)
        min_sqdist = np.empty(X.shape[0], dtype=X.dtype)
        for rows in _row_blocks(X.shape[0], centers.shape[0], X.itemsize):
            scores = _scores(X[rows], centers, centers_sqnorm)
            block_labels = scores.argmin(axis=1)
            labels[rows] = block_labels
            min_sqdist[rows] = np.take_along_axis(scores, block_labels[:, None], axis=1)[:, 0]
        min_sqdist += _sqnorm(X)
        return labels, np.maximum(min_sqdist, 0, out=min_sqdist)

    def pairwise(self, X: Any, centers: Any, *, xp: Any) -> Any:
        scores = _scores(X, centers, _sqnorm(centers))
        scores += _sqnorm(X)[:, None]
        return np.maximum(scores, 0, out=scores)


class NumpyReduction(ReductionBackend):
    """One-hot GEMM on cache-sized blocks for small k, one flat ``bincount`` for large k.

    Both are deterministic: a GEMM of fixed shapes and a sequential ``bincount``.
    """

    name = "numpy"
    priority = 10

    def supports(self, xp: Any, device: Any) -> bool:
        return _is_numpy(xp)

    def segment_sum(
        self, X: Any, labels: Any, weights: Any, n_clusters: int, *, xp: Any
    ) -> tuple[Any, Any]:
        weight_sums = np.bincount(labels, weights=weights, minlength=n_clusters).astype(X.dtype)
        if n_clusters <= _ONE_HOT_MAX_CLUSTERS:
            return self._one_hot_sums(X, labels, weights, n_clusters), weight_sums
        n_features = X.shape[1]
        flat_ids = (labels[:, None] * n_features + np.arange(n_features)).ravel()
        flat_sums = np.bincount(
            flat_ids, weights=(X * weights[:, None]).ravel(), minlength=n_clusters * n_features
        )
        return flat_sums.reshape(n_clusters, n_features).astype(X.dtype), weight_sums

    @staticmethod
    def _one_hot_sums(X: Any, labels: Any, weights: Any, n_clusters: int) -> Any:
        sums = np.zeros((n_clusters, X.shape[1]), dtype=X.dtype)
        for rows in _row_blocks(X.shape[0], n_clusters, X.itemsize):
            block_labels = labels[rows]
            one_hot = np.zeros((n_clusters, block_labels.shape[0]), dtype=X.dtype)
            one_hot[block_labels, np.arange(block_labels.shape[0])] = weights[rows]
            sums += one_hot @ X[rows]
        return sums


distance = NumpyDistance()
reduction = NumpyReduction()
