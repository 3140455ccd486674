"""Pickles of fitted models that load on machines without the GPU they were fitted on.

A pickled CuPy array (or PyTorch CUDA tensor) can only be unpickled where CUDA is: a model
fitted in a GPU notebook could not be opened on a laptop. So the fitted arrays on a CUDA device
are pickled as NumPy arrays with the library and device they came from, and put back there
when that device exists, else left as NumPy arrays with a :class:`DeviceFallbackWarning`
(once per process), as a fit asked for a missing device does.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import array_api_compat
import numpy as np

from ._arrays import cuda_index, is_array, namespace_and_device
from ._exceptions import DeviceFallbackWarning, user_stacklevel
from ._transfers import to_host_numpy

_warned: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class CudaArray:
    """A fitted array that lived on CUDA device ``device`` in ``library`` ("cupy" or "torch")."""

    host: np.ndarray
    library: str
    device: int

    def restore(self) -> Any:
        reason = _missing(self.library, self.device)
        if reason is None:
            if self.library == "cupy":
                import cupy

                with cupy.cuda.Device(self.device):
                    return cupy.asarray(self.host)
            import torch

            return torch.as_tensor(self.host, device=f"cuda:{self.device}")
        key = (f"{self.library} cuda:{self.device}", reason)
        if key not in _warned:
            _warned.add(key)
            warnings.warn(
                f"This model was fitted on CUDA device {self.device} ({self.library}), but {reason}: "
                "its arrays are loaded as NumPy arrays and it predicts on the CPU (this warning "
                "is shown once per process). To use the GPU, unpickle it where the device and "
                f"{self.library} are.",
                DeviceFallbackWarning,
                stacklevel=user_stacklevel(),
            )
        return self.host


def _missing(library: str, device: int) -> str | None:
    """Why ``library`` cannot hold arrays on CUDA device ``device`` here, or ``None``."""
    if library == "cupy":
        from ._placement import cuda_devices

        _, count, reason = cuda_devices()
        if reason is not None:
            return reason
        return None if device < count else f"only {count} CUDA device(s) are visible"
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed"
    if not torch.cuda.is_available():
        return "PyTorch sees no CUDA device"
    count = torch.cuda.device_count()
    return None if device < count else f"only {count} CUDA device(s) are visible"


def portable_state(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` (an estimator's ``__dict__``) with its CUDA arrays as :class:`CudaArray`."""
    portable = dict(state)
    for name, value in state.items():
        if not is_array(value):
            continue
        xp, device = namespace_and_device(value)
        index = cuda_index(xp, device)
        if index is not None:
            library = "torch" if array_api_compat.is_torch_namespace(xp) else "cupy"
            portable[name] = CudaArray(to_host_numpy(value), library, index)
    return portable


def restored_state(state: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`portable_state`, on whatever this machine has."""
    return {name: value.restore() if isinstance(value, CudaArray) else value for name, value in state.items()}
