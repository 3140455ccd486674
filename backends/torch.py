"""``torch``: per-cluster sums with ``index_add_``, PyTorch on the CPU.

Only on the CPU: on CUDA ``index_add_`` uses floating-point atomics, which would break
run-to-run determinism. PyTorch CUDA tensors take the ``torch_cuda`` backend (the CUDA kernels
of ``cupy``, through DLPack) where CuPy is installed, else the reference kernels.
"""

from __future__ import annotations

import array_api_compat

from .._typing import Device, Namespace
from ._protocol import Kernels
from .reference import shifted


class TorchKernels(Kernels):
    """The reference distances; sums with ``index_add_`` (sequential on the CPU)."""

    name = "torch"
    priority = 10

    def supports(self, xp: Namespace, device: Device) -> bool:
        return array_api_compat.is_torch_namespace(xp) and device.type == "cpu"

    def segment_sum(self, X, weights, labels, /, *, n_clusters, shift, xp):
        X = shifted(X, shift)
        sums = X.new_zeros((n_clusters, X.shape[1])).index_add_(0, labels, X * weights[:, None])
        weight_sums = weights.new_zeros((n_clusters,)).index_add_(0, labels, weights)
        return sums, weight_sums


kernels = TorchKernels()
