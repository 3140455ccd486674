"""Moving arrays between libraries and devices, explicitly and once; evaluating lazy ones."""

from __future__ import annotations

import array_api_compat
import numpy as np

from ._arrays import is_cpu_device, namespace_and_device
from ._typing import Array, Device, Namespace


def to_host_numpy(x: Array) -> np.ndarray:
    """Copy an array of any namespace and device into a NumPy array, through DLPack."""
    if isinstance(x, np.ndarray):
        return x
    if array_api_compat.is_dask_array(x):
        return to_host_numpy(x.compute())
    try:
        host = np.from_dlpack(x, device="cpu")
        # Immutable producers (JAX) share read-only buffers: results, and data handed on to
        # another library, must be writable NumPy arrays like everyone else's.
        return host if host.flags.writeable else host.copy()
    except (TypeError, BufferError, ValueError, RuntimeError):
        # Producers that cannot copy across devices themselves: bring them to their own host
        # device first (CuPy's ``get``, PyTorch's ``cpu``), then share the host buffer.
        if hasattr(x, "get"):
            return np.asarray(x.get())
        if hasattr(x, "cpu"):
            return np.from_dlpack(x.cpu())
        raise


def move(x: Array, placement: tuple[Namespace, Device], /) -> Array:
    """Place array ``x`` in the ``(namespace, device)`` of ``placement``; a no-op when it is
    already there."""
    xp, device = placement
    from ._blockwise import LazyRowsNamespace, place

    if isinstance(xp, LazyRowsNamespace):
        # The driver's namespace for Dask input: Dask arrays stay Dask, small ones go to NumPy.
        return place(x)
    x_xp, x_device = namespace_and_device(x)
    if x_xp is xp:
        return x if x_device == device else array_api_compat.to_device(x, device)
    if array_api_compat.is_numpy_namespace(xp):
        return to_host_numpy(x)
    if not is_cpu_device(x_xp, x_device) and not is_cpu_device(xp, device):
        # Device to device (a PyTorch CUDA tensor to CuPy, …): share the buffer through
        # DLPack, then copy across devices if needed, without a round trip through the host.
        try:
            shared = xp.from_dlpack(x)
        except (AttributeError, BufferError, TypeError, ValueError, RuntimeError):
            pass
        else:
            shared_xp, shared_device = namespace_and_device(shared)
            if shared_xp is xp:
                return shared if shared_device == device else array_api_compat.to_device(shared, device)
    return xp.asarray(to_host_numpy(x), device=device)


def materialize(*arrays: Array, xp: Namespace) -> tuple[Array, ...]:
    """Evaluate lazy arrays once, so that the driver's next steps reuse the values instead
    of growing (and recomputing) a task graph; eager arrays are returned unchanged."""
    if array_api_compat.is_dask_namespace(xp):
        import dask

        return dask.persist(*arrays, **getattr(xp, "compute_options", {}))
    return arrays
