"""``numpy``: cache-sized BLAS blocks for the distances and the sums.

A call takes up to ``_MAX_CHUNK_ROWS`` rows (which bounds the centered copy of them); within
it the kernels work on row blocks whose ``rows × k`` temporaries stay in cache between the
GEMM and the passes that read its result (argmin, one-hot sums).
"""

from __future__ import annotations

from collections.abc import Iterator

import array_api_compat
import numpy as np

from .._typing import Device, Namespace
from ._protocol import Kernels
from .reference import shifted

# Bytes of a rows × k block: about the size of a core's share of L2/L3 cache.
_BLOCK_BYTES = 2 * 2**20
_MIN_BLOCK_ROWS = 256
_MAX_CHUNK_ROWS = 1 << 14
# Above this many clusters the one-hot GEMM (2·k flops per element) costs more than a
# flat bincount (a few ns per element, independent of k).
_ONE_HOT_MAX_CLUSTERS = 256


def row_sqnorms(rows: np.ndarray, /) -> np.ndarray:
    """‖row‖² of each row, in the rows' dtype."""
    return np.einsum("ij,ij->i", rows, rows)


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


class NumpyKernels(Kernels):
    """Blocked BLAS distances; one-hot GEMM sums for small k, one flat ``bincount`` for large
    k. Both sums are deterministic: a GEMM of fixed shapes and a sequential ``bincount``."""

    name = "numpy"
    priority = 10

    def supports(self, xp: Namespace, device: Device) -> bool:
        return array_api_compat.is_numpy_namespace(xp)

    def auto_working_memory(self, device: Device) -> int:
        # The row blocks below keep the distance blocks in cache themselves: a call may be large.
        return 256 * 2**20

    def max_chunk_rows(self, n_features: int, n_columns: int, itemsize: int, *, working_memory: int) -> int:
        # The row blocks below keep the temporaries in cache; a call's rows only bound the
        # centered copy of them, which need not be large.
        budget = super().max_chunk_rows(n_features, n_columns, itemsize, working_memory=working_memory)
        return min(_MAX_CHUNK_ROWS, budget)

    def assign(self, X, centers, /, *, shift, xp, precision="highest"):
        # No faster reduced-precision product on the CPU: computed as for "highest".
        X = shifted(X, shift)
        centers_sqnorm = row_sqnorms(centers)
        labels = np.empty(X.shape[0], dtype=np.int32)
        min_sqdist = np.empty(X.shape[0], dtype=X.dtype)
        for rows in _row_blocks(X.shape[0], centers.shape[0], X.itemsize):
            scores = _scores(X[rows], centers, centers_sqnorm)
            block_labels = scores.argmin(axis=1)
            labels[rows] = block_labels
            min_sqdist[rows] = np.take_along_axis(scores, block_labels[:, None], axis=1)[:, 0]
        min_sqdist += row_sqnorms(X)
        return labels, np.maximum(min_sqdist, 0, out=min_sqdist)

    def pairwise(self, X, centers, /, *, shift, xp):
        X = shifted(X, shift)
        scores = _scores(X, centers, row_sqnorms(centers))
        scores += row_sqnorms(X)[:, None]
        return np.maximum(scores, 0, out=scores)

    def segment_sum(self, X, weights, labels, /, *, n_clusters, shift, xp):
        X = shifted(X, shift)
        weight_sums = np.bincount(labels, weights=weights, minlength=n_clusters).astype(X.dtype)
        if n_clusters <= _ONE_HOT_MAX_CLUSTERS:
            sums = np.zeros((n_clusters, X.shape[1]), dtype=X.dtype)
            for rows in _row_blocks(X.shape[0], n_clusters, X.itemsize):
                block_labels = labels[rows]
                one_hot = np.zeros((n_clusters, block_labels.shape[0]), dtype=X.dtype)
                one_hot[block_labels, np.arange(block_labels.shape[0])] = weights[rows]
                sums += one_hot @ X[rows]
            return sums, weight_sums
        n_features = X.shape[1]
        flat_ids = (labels[:, None] * n_features + np.arange(n_features)).ravel()
        flat_sums = np.bincount(
            flat_ids, weights=(X * weights[:, None]).ravel(), minlength=n_clusters * n_features
        )
        return flat_sums.reshape(n_clusters, n_features).astype(X.dtype), weight_sums


kernels = NumpyKernels()
