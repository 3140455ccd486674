"""``torch_cuda``: PyTorch CUDA tensors on the ``cupy`` kernels, through DLPack.

A PyTorch CUDA user gets the CUDA kernels of the CuPy backend without a copy: each call
views the tensors as CuPy arrays (``cupy.from_dlpack``), runs the CuPy kernel on PyTorch's
current CUDA stream (``cupy.cuda.ExternalStream``), and views the results as tensors again
(``torch.from_dlpack``). float32 and float64 take this path; other dtypes (float16,
bfloat16) take the reference operations in PyTorch. Needs CuPy; PyTorch and CuPy are
imported inside the methods only.
"""

from __future__ import annotations

from typing import Any

import array_api_compat

from .._typing import Device, Namespace
from . import cupy as cupy_backend
from ._protocol import Kernels, power_of_two_at_most

_DTYPES = ("float32", "float64")


def _cupy_available() -> bool:
    from .._placement import cuda_devices

    return cuda_devices()[2] is None


class TorchCudaKernels(Kernels):
    """The ``cupy`` backend's ``assign``, ``pairwise`` and ``segment_sum`` for PyTorch CUDA
    tensors, as zero-copy DLPack views; the composites are the protocol's, built on them."""

    name = "torch_cuda"
    priority = 20

    def supports(self, xp: Namespace, device: Device) -> bool:
        return (
            array_api_compat.is_torch_namespace(xp)
            and getattr(device, "type", None) == "cuda"
            and _cupy_available()
        )

    def _on_cupy(self, operation: Any, X: Any, *arrays: Any, **options: Any) -> Any:
        """``operation`` of the CuPy kernels on views of the tensors, on PyTorch's stream;
        the results viewed as tensors."""
        import array_api_compat.cupy as cupy_xp
        import cupy
        import torch

        device = X.device
        stream = torch.cuda.current_stream(device)
        with cupy.cuda.Device(device.index), cupy.cuda.ExternalStream(stream.cuda_stream, device.index):
            views = [None if a is None else cupy.from_dlpack(a) for a in (X, *arrays)]
            result = operation(*views, xp=cupy_xp, **options)
            if isinstance(result, tuple):
                return tuple(torch.from_dlpack(r) for r in result)
            return torch.from_dlpack(result)

    def _native(self, X: Any) -> bool:
        return str(X.dtype).removeprefix("torch.") in _DTYPES

    def assign(self, X, centers, /, *, shift, xp):
        if not self._native(X):
            return super().assign(X, centers, shift=shift, xp=xp)
        return self._on_cupy(
            lambda X, centers, shift, xp: cupy_backend.kernels.assign(X, centers, shift=shift, xp=xp),
            X, centers, shift,
        )

    def pairwise(self, X, centers, /, *, shift, xp):
        if not self._native(X):
            return super().pairwise(X, centers, shift=shift, xp=xp)
        return self._on_cupy(
            lambda X, centers, shift, xp: cupy_backend.kernels.pairwise(X, centers, shift=shift, xp=xp),
            X, centers, shift,
        )

    def segment_sum(self, X, weights, labels, /, *, n_clusters, shift, xp):
        if not self._native(X):
            return super().segment_sum(X, weights, labels, n_clusters=n_clusters, shift=shift, xp=xp)
        return self._on_cupy(
            lambda X, weights, labels, shift, xp: cupy_backend.kernels.segment_sum(
                X, weights, labels, n_clusters=n_clusters, shift=shift, xp=xp
            ),
            X, weights, labels, shift,
        )

    # Device memory, streaming and out-of-memory errors as the CuPy backend sees them.
    def free_memory(self, device: Device) -> int | None:
        return cupy_backend.free_bytes(device.index)

    def auto_working_memory(self, device: Device) -> int:
        try:
            share = int(cupy_backend.AUTO_SHARE_OF_FREE * cupy_backend.free_bytes(device.index))
            return power_of_two_at_most(max(cupy_backend.SCORES_TILE_BYTES, share))
        except Exception:  # noqa: BLE001 - no device to ask
            return super().auto_working_memory(device)


kernels = TorchCudaKernels()
