"""``array_api``: the reference kernels, for any namespace and device."""

from __future__ import annotations

from .._typing import Device, Namespace
from ._protocol import Kernels


class ArrayAPIKernels(Kernels):
    """Matmul + argmin, one-hot matmul sums: the standard only, so it runs anywhere."""

    name = "array_api"
    priority = 0

    def supports(self, xp: Namespace, device: Device) -> bool:
        return True


kernels = ArrayAPIKernels()
