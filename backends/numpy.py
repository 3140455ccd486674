"""NumPy fast path: in-place BLAS distance blocks and ``bincount`` reductions."""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

from ._base import DistanceBackend, ReductionBackend


def _is_numpy(xp: Any) -> bool:
    return array_api_compat.is_numpy_namespace(xp)


def _scores(X: np.ndarray, centers: np.ndarray) -> np.ndarray:
    # Same arithmetic as the reference (‖c‖² − 2·x·c), without its temporaries.
    scores = X @ centers.T
    scores *= -2
    scores += np.einsum("ij,ij->i", centers, centers)
    return scores


class NumpyDistance(DistanceBackend):
    name = "numpy"
    priority = 10

    def supports(self, xp: Any, device: Any) -> bool:
        return _is_numpy(xp)

    def nearest(self, X: Any, centers: Any, *, xp: Any) -> tuple[Any, Any]:
        scores = _scores(X, centers)
        labels = scores.argmin(axis=1)
        min_sqdist = np.take_along_axis(scores, labels[:, None], axis=1)[:, 0]
        min_sqdist += np.einsum("ij,ij->i", X, X)
        return labels, np.maximum(min_sqdist, 0, out=min_sqdist)

    def pairwise(self, X: Any, centers: Any, *, xp: Any) -> Any:
        scores = _scores(X, centers)
        scores += np.einsum("ij,ij->i", X, X)[:, None]
        return np.maximum(scores, 0, out=scores)


class NumpyReduction(ReductionBackend):
    """One sequential ``bincount`` per feature: deterministic, float64 accumulation."""

    name = "numpy"
    priority = 10

    def supports(self, xp: Any, device: Any) -> bool:
        return _is_numpy(xp)

    def segment_sum(
        self, X: Any, labels: Any, weights: Any, n_clusters: int, *, xp: Any
    ) -> tuple[Any, Any]:
        # Feature-major so that each bincount reads one contiguous row.
        weighted_t = np.ascontiguousarray((X * weights[:, None]).T)
        sums = np.empty((n_clusters, X.shape[1]), dtype=X.dtype)
        for j, column in enumerate(weighted_t):
            sums[:, j] = np.bincount(labels, weights=column, minlength=n_clusters)
        weight_sums = np.bincount(labels, weights=weights, minlength=n_clusters)
        return sums, weight_sums.astype(X.dtype, copy=False)


distance = NumpyDistance()
reduction = NumpyReduction()
