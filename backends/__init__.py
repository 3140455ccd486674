"""Pluggable kernels of anykmeans.

Two protocols, :class:`DistanceBackend` (``nearest``, ``pairwise``) and
:class:`ReductionBackend` (``segment_sum``), each with a registry of named implementations.
``auto`` picks the supporting implementation with the highest priority for the input's
namespace and device; ``anykmeans.config_context(distance=..., reduction=...)`` forces one.

Third parties add one with :func:`register_distance` / :func:`register_reduction`, or with an
entry point in the group ``anykmeans.backends`` that names a backend instance (or a list).

Built in: ``array_api`` (the reference, any namespace), ``numpy`` (NumPy fast path),
``numba`` (fused, parallel CPU kernels when Numba is installed), ``torch`` (``index_add_``
reductions, PyTorch on the CPU), ``cupy`` (fused CUDA kernels, CuPy arrays). Frameworks are
imported lazily.
"""

from ._base import Backend, DistanceBackend, ReductionBackend
from ._registry import (
    ENTRY_POINT_GROUP,
    list_backends,
    register,
    register_distance,
    register_reduction,
    reload_entry_points,
    select,
)
from . import array_api as _array_api
from . import cupy as _cupy
from . import numpy as _numpy
from . import numba as _numba
from . import torch as _torch

for _backend in (
    _array_api.distance,
    _array_api.reduction,
    _numpy.distance,
    _numpy.reduction,
    _numba.distance,
    _numba.reduction,
    _torch.reduction,
    _cupy.distance,
    _cupy.reduction,
):
    register(_backend)
del _backend

__all__ = [
    "ENTRY_POINT_GROUP",
    "Backend",
    "DistanceBackend",
    "ReductionBackend",
    "list_backends",
    "register",
    "register_distance",
    "register_reduction",
    "reload_entry_points",
    "select",
]
