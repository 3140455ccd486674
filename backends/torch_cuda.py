"""``torch_cuda``: PyTorch CUDA tensors on the ``cupy`` kernels, through DLPack.

A PyTorch CUDA user gets the CUDA kernels of the CuPy backend without a copy: each call
views the tensors as CuPy arrays (``cupy.from_dlpack``), runs the CuPy kernel on PyTorch's
current CUDA stream (``cupy.cuda.ExternalStream``), and views the results as tensors again
(``torch.from_dlpack``), with the ``matmul_precision`` the passes ask for. float32 and
float64 take this path (the estimators cluster float16 and bfloat16 input in float32); other
dtypes take the reference operations in PyTorch. Needs CuPy; PyTorch and CuPy are imported
inside the methods only.
"""

from __future__ import annotations

from typing import Any

import array_api_compat

from .._typing import Device, Namespace
from . import cupy as cupy_backend
from ._protocol import Kernels

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

    def _on_cupy(self, name: str, X: Any, *arrays: Any, shift: Any, **options: Any) -> Any:
        """The CuPy kernels' operation ``name`` on views of the tensors, on PyTorch's current
        stream; the results viewed as tensors. Other dtypes than float32 and float64: the
        reference operation in PyTorch."""
        if str(X.dtype).removeprefix("torch.") not in _DTYPES:
            return getattr(super(), name)(X, *arrays, shift=shift, **options)
        import array_api_compat.cupy as cupy_xp
        import cupy
        import torch

        device = X.device
        stream = torch.cuda.current_stream(device)
        with cupy.cuda.Device(device.index), cupy.cuda.ExternalStream(stream.cuda_stream, device.index):
            views = [None if a is None else cupy.from_dlpack(a) for a in (X, *arrays, shift)]
            options["xp"] = cupy_xp
            result = getattr(cupy_backend.kernels, name)(*views[:-1], shift=views[-1], **options)
            if isinstance(result, tuple):
                return tuple(torch.from_dlpack(r) for r in result)
            return torch.from_dlpack(result)

    def assign(self, X, centers, /, *, shift, xp, precision="highest"):
        return self._on_cupy("assign", X, centers, shift=shift, xp=xp, precision=precision)

    def pairwise(self, X, centers, /, *, shift, xp):
        return self._on_cupy("pairwise", X, centers, shift=shift, xp=xp)

    def segment_sum(self, X, weights, labels, /, *, n_clusters, shift, xp):
        return self._on_cupy("segment_sum", X, weights, labels, n_clusters=n_clusters, shift=shift, xp=xp)

    # Device memory as the CuPy backend sees it.
    def free_memory(self, device: Device) -> int | None:
        return cupy_backend.free_bytes(device.index)

    def auto_working_memory(self, device: Device) -> int:
        budget = cupy_backend.auto_budget(device.index)
        return super().auto_working_memory(device) if budget is None else budget

kernels = TorchCudaKernels()
