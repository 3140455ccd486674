"""Where the work runs and where results go, from the ``device``, ``output`` and ``fallback``
settings (passed in, never read here); CUDA discovery and the fallback warning.

CuPy is imported only here, and only when a setting asks for CUDA or CuPy.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import warnings
from collections.abc import Mapping
from typing import Any

import array_api_compat
import array_api_compat.numpy

from ._arrays import cuda_index, is_cpu_device
from ._exceptions import DeviceFallbackWarning, user_stacklevel
from ._typing import Device, Namespace

Placement = tuple[Namespace, Device]


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


def _host_placement(xp: Namespace, device: Device) -> Placement:
    """Host input stays where it is; anything else moves to NumPy."""
    if is_cpu_device(xp, device):
        return xp, device
    return array_api_compat.numpy, "cpu"


def resolve_compute_placement(xp: Namespace, device: Device, *, asked: str) -> tuple[Placement, str | None]:
    """Where the work runs for input in ``(xp, device)`` under the ``device`` setting
    ``asked``, and why the asked CUDA device cannot be used (``None`` when it can, or none
    was asked for).

    - ``auto``: where the input lives.
    - ``cpu``: host input stays in its namespace; other input moves to NumPy.
    - ``cuda:N``: input already on CUDA device N (a CuPy array, a PyTorch CUDA tensor) stays
      in its own namespace; anything else moves to CuPy on device N.
    - ``cuda``: like ``cuda:N`` with N the CUDA device the input is on, or 0 for input that
      is on none.

    When the CUDA device is not available (CuPy not installed, no device visible, N too
    large) the placement is the one ``cpu`` gives, and the reason says why.
    """
    if asked == "auto":
        return (xp, device), None
    if asked == "cpu":
        return _host_placement(xp, device), None
    current = cuda_index(xp, device)
    wanted = (0 if current is None else current) if asked == "cuda" else int(asked.removeprefix("cuda:"))
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


def output_placement(input_placement: Placement, compute: Placement, *, output: str) -> Placement:
    """Where returned arrays go under the ``output`` setting.

    ``input``: the input's namespace and device; ``numpy``: NumPy on the host; ``cupy``:
    CuPy on the CUDA device of the ``compute`` placement, or device 0 when the work ran
    elsewhere. Raises ``RuntimeError`` when ``cupy`` is asked for and CuPy has no device.
    """
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


# The (asked device, reason) pairs warned about in this process: each warns once, as
# scikit-learn's one-time warnings do, so that a loop of fits in a notebook is not noise.
_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def reset_fallback_warnings() -> None:
    """Forget which fallbacks have warned, so that the next one warns again (for tests)."""
    with _warned_lock:
        _warned.clear()


def _fall_back(reason: str, *, asked: str, fallback: str) -> None:
    """Warn (once per process for each asked device and reason) or raise, as the
    ``fallback`` setting says."""
    if fallback == "raise":
        raise RuntimeError(
            f"device={asked!r} was asked for, but {reason}; fallback='raise' forbids computing "
            "on the CPU instead. Install CuPy for your CUDA version and check the visible "
            "devices with `anykmeans info`, or compute on the CPU with "
            'anykmeans.set_config(device="cpu") or ANYKMEANS_DEVICE=cpu.'
        )
    with _warned_lock:
        if (asked, reason) in _warned:
            return
        _warned.add((asked, reason))
    warnings.warn(
        f"device={asked!r} was asked for, but {reason}; computing on the CPU instead, as "
        'device="cpu" does (this warning is shown once per process). To use the GPU, install '
        'CuPy for the CUDA version that nvidia-smi shows (pip install "anykmeans[cuda13]" or '
        '"anykmeans[cuda12]") and '
        "check the visible devices with `anykmeans info`. To silence this warning, compute on "
        'the CPU explicitly with '
        'anykmeans.set_config(device="cpu") or ANYKMEANS_DEVICE=cpu, or filter it with '
        'warnings.filterwarnings("ignore", category=anykmeans.DeviceFallbackWarning); '
        'anykmeans.set_config(fallback="raise") makes it an error.',
        DeviceFallbackWarning,
        stacklevel=user_stacklevel(),
    )


def placements(xp: Namespace, device: Device, config: Mapping[str, Any]) -> tuple[Placement, Placement]:
    """The compute and the output placements for input in ``(xp, device)`` under ``config``
    (the ``device``, ``output`` and ``fallback`` settings).

    Every setting is checked before anything warns, and before any work starts: an
    unavailable ``output`` or (with ``fallback='raise'``) device raises ``RuntimeError``.
    """
    compute, reason = resolve_compute_placement(xp, device, asked=config["device"])
    output = output_placement((xp, device), compute, output=config["output"])
    if reason is not None:
        _fall_back(reason, asked=config["device"], fallback=config["fallback"])
    return compute, output
