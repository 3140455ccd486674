"""PyTorch reductions with ``index_add_``.

Only on the CPU for now: on CUDA ``index_add_`` uses floating-point atomics, which would break
run-to-run determinism, so ``auto`` keeps the reference reduction there.
"""

from __future__ import annotations

from typing import Any

import array_api_compat

from ._base import ReductionBackend


class TorchReduction(ReductionBackend):
    name = "torch"
    priority = 10

    def supports(self, xp: Any, device: Any) -> bool:
        return array_api_compat.is_torch_namespace(xp) and device.type == "cpu"

    def segment_sum(
        self, X: Any, labels: Any, weights: Any, n_clusters: int, *, xp: Any
    ) -> tuple[Any, Any]:
        sums = X.new_zeros((n_clusters, X.shape[1])).index_add_(0, labels, X * weights[:, None])
        weight_sums = weights.new_zeros((n_clusters,)).index_add_(0, labels, weights)
        return sums, weight_sums


reduction = TorchReduction()
