"""Array namespaces and devices: resolve them once at the boundary, move data only when asked."""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

from ._config import get_config


def is_array(obj: Any) -> bool:
    """True for an array of an array-API library (not for lists, scalars or array-likes)."""
    return array_api_compat.is_array_api_obj(obj) and not isinstance(obj, (int, float, complex))


def namespace_and_device(X: Any) -> tuple[Any, Any]:
    """The array-API namespace (array-api-compat wrapped where needed) and device of ``X``."""
    return array_api_compat.array_namespace(X), array_api_compat.device(X)


def namespace_name(xp: Any) -> str:
    """A short human name: ``numpy``, ``torch``, ``cupy``, ``array_api_strict``, …"""
    name = getattr(xp, "__name__", type(xp).__name__)
    return name.removeprefix("array_api_compat.")


def check_same_placement(X: Any, other: Any, name: str) -> None:
    """Raise if ``other`` is an array of another namespace or device than ``X``."""
    xp, device = namespace_and_device(X)
    other_xp = array_api_compat.array_namespace(other)
    if other_xp is not xp:
        raise TypeError(
            f"{name} is an array of {namespace_name(other_xp)} but X is an array of "
            f"{namespace_name(xp)}; pass arrays of one library (convert {name} explicitly)."
        )
    other_device = array_api_compat.device(other)
    if other_device != device:
        raise ValueError(
            f"{name} is on device {other_device!r} but X is on device {device!r}; "
            f"move {name} to X's device explicitly."
        )


def is_cpu_device(xp: Any, device: Any) -> bool:
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


def default_float(xp: Any, device: Any) -> Any:
    """The namespace's default real floating dtype on ``device``."""
    info = xp.__array_namespace_info__()
    return info.default_dtypes(device=device)["real floating"]


def compute_placement(xp: Any, device: Any) -> tuple[Any, Any]:
    """Where the work runs for input in ``(xp, device)``, from the ``device`` setting."""
    if get_config()["device"] == "cpu" and not is_cpu_device(xp, device):
        return array_api_compat.numpy, "cpu"
    return xp, device


def to_host_numpy(x: Any) -> np.ndarray:
    """Copy an array of any namespace and device into a NumPy array, through DLPack."""
    if isinstance(x, np.ndarray):
        return x
    try:
        return np.from_dlpack(x, device="cpu")
    except (TypeError, BufferError, ValueError, RuntimeError):
        # Producers that cannot copy across devices themselves: bring them to their own host
        # device first (CuPy's ``get``, PyTorch's ``cpu``), then share the host buffer.
        if hasattr(x, "get"):
            return np.asarray(x.get())
        if hasattr(x, "cpu"):
            return np.from_dlpack(x.cpu())
        raise


def move(x: Any, xp: Any, device: Any) -> Any:
    """Place array ``x`` in namespace ``xp`` on ``device``; a no-op when it is already there."""
    x_xp, x_device = namespace_and_device(x)
    if x_xp is xp:
        return x if x_device == device else array_api_compat.to_device(x, device)
    if array_api_compat.is_numpy_namespace(xp):
        return to_host_numpy(x)
    return xp.asarray(to_host_numpy(x), device=device)


def materialize(xp: Any, *arrays: Any) -> tuple[Any, ...]:
    """Evaluate lazy arrays once, so that the driver's next steps reuse the values instead
    of growing (and recomputing) a task graph; eager arrays are returned unchanged."""
    if array_api_compat.is_dask_namespace(xp):
        import dask

        return dask.persist(*arrays)
    return arrays
