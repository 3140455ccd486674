"""The reference kernels, written against the Array API standard only; they run anywhere."""

from __future__ import annotations

from typing import Any

import array_api_compat

from ._base import DistanceBackend, ReductionBackend


def _scores(X: Any, centers: Any, xp: Any) -> Any:
    # ‖c‖² − 2·x·c: the squared distance less ‖x‖², which does not change the argmin.
    centers_sqnorm = xp.vecdot(centers, centers, axis=-1)
    return centers_sqnorm - 2 * (X @ xp.matrix_transpose(centers))


class ArrayAPIDistance(DistanceBackend):
    name = "array_api"
    priority = 0

    def supports(self, xp: Any, device: Any) -> bool:
        return True

    def nearest(self, X: Any, centers: Any, *, xp: Any) -> tuple[Any, Any]:
        scores = _scores(X, centers, xp)
        labels = xp.argmin(scores, axis=1)
        x_sqnorm = xp.vecdot(X, X, axis=-1)
        return labels, xp.clip(xp.min(scores, axis=1) + x_sqnorm, min=0)

    def pairwise(self, X: Any, centers: Any, *, xp: Any) -> Any:
        x_sqnorm = xp.vecdot(X, X, axis=-1)
        return xp.clip(_scores(X, centers, xp) + x_sqnorm[:, None], min=0)


class ArrayAPIReduction(ReductionBackend):
    """One-hot matmul: exact per-term products, summation order fixed by the matmul."""

    name = "array_api"
    priority = 0

    def supports(self, xp: Any, device: Any) -> bool:
        return True

    def segment_sum(
        self, X: Any, labels: Any, weights: Any, n_clusters: int, *, xp: Any
    ) -> tuple[Any, Any]:
        ids = xp.arange(n_clusters, dtype=labels.dtype, device=array_api_compat.device(X))
        one_hot = xp.astype(labels[:, None] == ids[None, :], X.dtype)
        weighted = one_hot * weights[:, None]
        return xp.matrix_transpose(weighted) @ X, xp.sum(weighted, axis=0)


distance = ArrayAPIDistance()
reduction = ArrayAPIReduction()
