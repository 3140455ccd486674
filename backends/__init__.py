"""Pluggable kernels of anykmeans.

One protocol, :class:`Kernels`, whose unit is a pass over rows (``assign``,
``assign_and_sum``, ``pairwise``, ``sqdist_to_assigned``, ``segment_sum``, ``seeding_pass``,
``seeding_draw``); its methods run the reference operations of :mod:`.reference` unless a
backend overrides them. ``auto`` picks the supporting backend with the highest priority for the
input's namespace and device; ``anykmeans.config_context(kernels=...)`` forces one by name.

Third parties add one with :func:`register_kernels` (and remove it with
:func:`unregister_kernels`), or with an entry point in the group
``anykmeans.backends`` that names a kernels instance (or a list of them).

Built in: ``array_api`` (the reference, any namespace), ``numpy`` (NumPy's BLAS in cache-sized
blocks), ``numba`` (compiled, parallel passes when Numba is installed), ``torch``
(``index_add_`` sums, PyTorch on the CPU), ``cupy`` (CUDA kernels, CuPy arrays), ``torch_cuda``
(the same CUDA kernels for PyTorch CUDA tensors, through DLPack). Frameworks are
imported lazily: importing this package imports none of them.
"""

from . import array_api as _array_api
from . import cupy as _cupy
from . import numba as _numba
from . import numpy as _numpy
from . import torch as _torch
from . import torch_cuda as _torch_cuda
from ._protocol import Kernels
from ._registry import (
    ENTRY_POINT_GROUP,
    list_kernels,
    register_kernels,
    reload_entry_points,
    select_kernels,
    unregister_kernels,
)

for _kernels in (
    _array_api.kernels, _numpy.kernels, _numba.kernels, _torch.kernels, _cupy.kernels, _torch_cuda.kernels
):
    register_kernels(_kernels)
del _kernels

__all__ = [
    "ENTRY_POINT_GROUP",
    "Kernels",
    "list_kernels",
    "register_kernels",
    "reload_entry_points",
    "select_kernels",
    "unregister_kernels",
]
