"""Array namespaces and devices: resolve them once at the boundary, move data only when asked.

The ``device`` setting gives where the work runs (:func:`compute_placement`), the ``output``
setting where the results go (:func:`output_placement`). CuPy is imported only here, and only
when a setting asks for CUDA or CuPy.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import array_api_compat
import array_api_compat.numpy
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


class DeviceFallbackWarning(UserWarning):
    """A CUDA device was asked for but is not available, so the work ran on the CPU.

    Emitted once per call (``fit``, ``predict``, ``transform``, ``score``,
    ``kmeans_plusplus``, …) when ``device`` is ``"cuda"`` or ``"cuda:N"`` and CuPy is not
    installed, no CUDA device is visible, or fewer than ``N + 1`` are. Silence it by asking
    for the CPU (``anykmeans.set_config(device="cpu")`` or ``ANYKMEANS_DEVICE=cpu``) or with
    a warnings filter; ``anykmeans.config_context(fallback="raise")`` raises instead.
    """


def cuda_index(xp: Any, device: Any) -> int | None:
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


def cuda_devices() -> tuple[Any, int, str | None]:
    """The CUDA devices CuPy sees: ``(cupy or None, count, why there are none or None)``.

    Imports CuPy (only here and only when it is installed); never raises, so that a machine
    with CuPy but no driver, or no CuPy at all, gets a reason instead of an error.
    """
    if "cupy" not in sys.modules:
        try:
            installed = importlib.util.find_spec("cupy") is not None
        except (ImportError, ValueError):
            installed = False
        if not installed:
            return None, 0, "CuPy is not installed"
    try:
        import cupy
    except Exception as exc:  # noqa: BLE001 - a broken install must not break the CPU path
        return None, 0, f"CuPy could not be imported ({type(exc).__name__}: {exc})"
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:  # noqa: BLE001 - no driver, driver too old, …
        return cupy, 0, f"no CUDA device is visible ({type(exc).__name__}: {exc})"
    if count < 1:
        return cupy, 0, "no CUDA device is visible"
    return cupy, count, None


def _host_placement(xp: Any, device: Any) -> tuple[Any, Any]:
    """Host input stays where it is; anything else moves to NumPy."""
    if is_cpu_device(xp, device):
        return xp, device
    return array_api_compat.numpy, "cpu"


def resolve_compute_placement(xp: Any, device: Any) -> tuple[tuple[Any, Any], str | None]:
    """Where the work runs for input in ``(xp, device)``, from the ``device`` setting, and why
    the asked CUDA device cannot be used (``None`` when it can, or none was asked for).

    - ``auto``: where the input lives.
    - ``cpu``: host input stays in its namespace; other input moves to NumPy.
    - ``cuda:N``: input already on CUDA device N (a CuPy array, a PyTorch CUDA tensor) stays
      in its own namespace; anything else moves to CuPy on device N.
    - ``cuda``: like ``cuda:N`` with N the CUDA device the input is on, or 0 for input that
      is on none.

    When the CUDA device is not available (CuPy not installed, no device visible, N too
    large) the placement is the one ``cpu`` gives, and the reason says why.
    """
    asked = get_config()["device"]
    if asked == "auto":
        return (xp, device), None
    if asked == "cpu":
        return _host_placement(xp, device), None
    current = cuda_index(xp, device)
    if asked == "cuda":
        wanted = 0 if current is None else current
    else:
        wanted = int(asked.removeprefix("cuda:"))
    if current == wanted:
        return (xp, device), None
    cupy, count, reason = cuda_devices()
    if reason is None and wanted >= count:
        reason = (
            f"only {count} CUDA device{'s are' if count != 1 else ' is'} visible "
            f"(cuda:0 to cuda:{count - 1})"
        )
    if reason is not None:
        return _host_placement(xp, device), reason
    import array_api_compat.cupy as cupy_xp

    return (cupy_xp, cupy.cuda.Device(wanted)), None


# Set by ``single_fallback_warning`` so that a public call made of others (``fit_transform``)
# still warns once.
_fallback_warned: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar(
    "anykmeans_fallback_warned", default=None
)


@contextlib.contextmanager
def single_fallback_warning() -> Iterator[None]:
    """Inside the block, at most one :class:`DeviceFallbackWarning` is emitted."""
    token = _fallback_warned.set([False]) if _fallback_warned.get() is None else None
    try:
        yield
    finally:
        if token is not None:
            _fallback_warned.reset(token)


def _user_stacklevel() -> int:
    """The ``stacklevel`` of the first frame outside anykmeans, seen from the caller."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and str(frame.f_globals.get("__name__", "")).partition(".")[0] == "anykmeans":
        frame, level = frame.f_back, level + 1
    return level


def _fall_back(reason: str) -> None:
    """Warn (once per call) or raise, as the ``fallback`` setting says."""
    config = get_config()
    asked = config["device"]
    if config["fallback"] == "raise":
        raise RuntimeError(
            f"device={asked!r} was asked for, but {reason}; fallback='raise' forbids computing "
            "on the CPU instead. Install CuPy for your CUDA version and check the visible "
            "devices with `anykmeans info`, or compute on the CPU with "
            'anykmeans.set_config(device="cpu") or ANYKMEANS_DEVICE=cpu.'
        )
    warned = _fallback_warned.get()
    if warned is not None:
        if warned[0]:
            return
        warned[0] = True
    warnings.warn(
        f"device={asked!r} was asked for, but {reason}; computing on the CPU instead, as "
        'device="cpu" does. To silence this warning, compute on the CPU explicitly with '
        'anykmeans.set_config(device="cpu") or ANYKMEANS_DEVICE=cpu, or filter it with '
        'warnings.filterwarnings("ignore", category=anykmeans.DeviceFallbackWarning); '
        'anykmeans.set_config(fallback="raise") makes it an error.',
        DeviceFallbackWarning,
        stacklevel=_user_stacklevel(),
    )


def compute_placement(xp: Any, device: Any) -> tuple[Any, Any]:
    """Where the work runs for input in ``(xp, device)``, from the ``device`` setting.

    See :func:`resolve_compute_placement`; when the asked CUDA device is not available this
    warns with :class:`DeviceFallbackWarning` or raises ``RuntimeError``, as the
    ``fallback`` setting says.
    """
    placement, reason = resolve_compute_placement(xp, device)
    if reason is not None:
        _fall_back(reason)
    return placement


def output_placement(input_placement: tuple[Any, Any], compute: tuple[Any, Any]) -> tuple[Any, Any]:
    """Where returned arrays go, from the ``output`` setting.

    ``input``: the input's namespace and device; ``numpy``: NumPy on the host; ``cupy``:
    CuPy on the CUDA device of the ``compute`` placement, or device 0 when the work ran
    elsewhere. Raises ``RuntimeError`` when ``cupy`` is asked for and CuPy has no device.
    """
    output = get_config()["output"]
    if output == "input":
        return input_placement
    if output == "numpy":
        return array_api_compat.numpy, "cpu"
    cupy, _, reason = cuda_devices()
    if reason is not None:
        raise RuntimeError(
            f"output='cupy' asks for CuPy arrays, but {reason}. Use output='input' (results "
            "in the input's library and device) or output='numpy', or install CuPy for your "
            "CUDA version and check the visible devices with `anykmeans info`."
        )
    import array_api_compat.cupy as cupy_xp

    index = cuda_index(*compute)
    return cupy_xp, cupy.cuda.Device(0 if index is None else index)


def placements(xp: Any, device: Any) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """The compute and the output placements for input in ``(xp, device)``.

    Every setting is checked before anything warns, and before any work starts: an
    unavailable ``output`` or (with ``fallback='raise'``) device raises ``RuntimeError``.
    """
    compute, reason = resolve_compute_placement(xp, device)
    output = output_placement((xp, device), compute)
    if reason is not None:
        _fall_back(reason)
    return compute, output


def to_host_numpy(x: Any) -> np.ndarray:
    """Copy an array of any namespace and device into a NumPy array, through DLPack."""
    if isinstance(x, np.ndarray):
        return x
    if array_api_compat.is_dask_array(x):
        return to_host_numpy(x.compute())
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


def materialize(xp: Any, *arrays: Any) -> tuple[Any, ...]:
    """Evaluate lazy arrays once, so that the driver's next steps reuse the values instead
    of growing (and recomputing) a task graph; eager arrays are returned unchanged."""
    if array_api_compat.is_dask_namespace(xp):
        import dask

        return dask.persist(*arrays)
    return arrays
