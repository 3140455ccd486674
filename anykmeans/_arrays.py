"""What an array is: its namespace, its device, and facts about them. No policy, no transfers."""

from __future__ import annotations

import array_api_compat

from ._typing import Array, Device, Namespace


def is_array(obj: object) -> bool:
    """True for an array of an array-API library (not for lists, scalars or array-likes)."""
    return array_api_compat.is_array_api_obj(obj) and not isinstance(obj, (int, float, complex))


def namespace_and_device(X: Array) -> tuple[Namespace, Device]:
    """The array-API namespace (array-api-compat wrapped where needed) and device of ``X``."""
    return array_api_compat.array_namespace(X), array_api_compat.device(X)


def namespace_name(xp: Namespace) -> str:
    """A short human name: ``numpy``, ``torch``, ``cupy``, ``array_api_strict``, …"""
    name = getattr(xp, "__name__", type(xp).__name__)
    return name.removeprefix("array_api_compat.")


def is_cpu_device(xp: Namespace, device: Device) -> bool:
    """True when ``device`` is host memory for namespace ``xp``."""
    if array_api_compat.is_numpy_namespace(xp) or array_api_compat.is_dask_namespace(xp):
        return True
    if array_api_compat.is_torch_namespace(xp):
        return device.type == "cpu"
    if array_api_compat.is_jax_namespace(xp):
        return getattr(device, "platform", "") == "cpu"
    if array_api_compat.is_cupy_namespace(xp):
        return False
    # array-api-strict and unknown libraries: only a device named like the CPU counts.
    return "cpu" in str(device).lower()


_HALF_DTYPES = ("float16", "bfloat16")


def dtype_name(dtype: object) -> str:
    """``float16`` for NumPy's float16 in either byte order, ``bfloat16`` for
    ``torch.bfloat16``: the name without the library."""
    import numpy as np

    return dtype.name if isinstance(dtype, np.dtype) else str(dtype).rpartition(".")[2]


def is_half(dtype: object) -> bool:
    """Whether ``dtype`` is float16 or bfloat16 (of any library)."""
    return dtype_name(dtype) in _HALF_DTYPES


def working_dtype(X: Array) -> object:
    """The dtype the work on ``X`` is done in: X's own, except float32 for float16 and
    bfloat16 X, which the passes read chunk by chunk and never copy whole."""
    return array_api_compat.array_namespace(X).float32 if is_half(X.dtype) else X.dtype


def as_working(x: Array, /, *, xp: Namespace) -> Array:
    """``x`` in its working dtype (a float32 copy of float16 / bfloat16 rows, else ``x``)."""
    return xp.astype(x, xp.float32) if is_half(x.dtype) else x


def default_float(xp: Namespace, device: Device) -> object:
    """The namespace's default real floating dtype on ``device``."""
    info = xp.__array_namespace_info__()
    return info.default_dtypes(device=device)["real floating"]


def cuda_index(xp: Namespace, device: Device) -> int | None:
    """The CUDA device index of arrays of ``xp`` on ``device``: CuPy arrays and PyTorch CUDA
    tensors have one, everything else (host arrays, other libraries' devices) ``None``."""
    if array_api_compat.is_cupy_namespace(xp):
        return int(device.id)
    if array_api_compat.is_torch_namespace(xp) and device.type == "cuda":
        if device.index is not None:
            return device.index
        import torch

        return torch.cuda.current_device()
    return None
