"""``anykmeans.show_config()`` and ``anykmeans info``: versions, CUDA devices, settings, backends.

Versions are read from the installed distributions' metadata, so that reporting them imports
none of the optional libraries; only CuPy is imported, when it is installed, to list the
CUDA devices.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import re
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import array_api_compat.numpy

from . import backends
from .backends.numba import core_count, kernel_cache_dir, numba_installed
from ._arrays import namespace_name
from ._config import ENVIRONMENT_PREFIX, environment_names, get_config
from ._placement import Placement, cuda_devices, output_placement, resolve_compute_placement

# (name shown, distribution name, import name): the import name finds distributions published
# under other names (cupy-cuda12x, faiss-cpu, …).
_LIBRARIES = (
    ("numpy", "numpy", "numpy"),
    ("array-api-compat", "array-api-compat", "array_api_compat"),
    ("cupy", "cupy", "cupy"),
    ("torch", "torch", "torch"),
    ("dask", "dask", "dask"),
    ("jax", "jax", "jax"),
    ("numba", "numba", "numba"),
    ("scikit-learn", "scikit-learn", "sklearn"),
    ("faiss", "faiss", "faiss"),
    ("array-api-strict", "array-api-strict", "array_api_strict"),
)


# The CUDA major versions that have an extra (cuda12, cuda13).
CUDA_EXTRAS = (12, 13)


@functools.lru_cache(maxsize=1)
def _distributions_by_module() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _installed_version(distribution: str, module: str) -> str:
    """``"1.2.3"``, ``"1.2.3 (cupy-cuda12x)"`` or ``"not installed"``, without importing it."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        pass
    for other in _distributions_by_module().get(module, []):
        try:
            return f"{importlib.metadata.version(other)} ({other})"
        except importlib.metadata.PackageNotFoundError:
            continue
    return "not installed"


def _cuda_version(code: int) -> str:
    return f"{code // 1000}.{code % 1000 // 10}"


def cupy_package() -> tuple[str, int | None] | None:
    """The installed CuPy distribution and the CUDA major version it is built for
    (``("cupy-cuda13x", 13)``; ``None`` for a build from source), or ``None`` without CuPy."""
    names = _distributions_by_module().get("cupy", [])
    if not names:
        return None
    return names[0], cuda_major_of(names[0])


def cuda_major_of(distribution: str) -> int | None:
    """The CUDA major version a CuPy wheel is built for, from its name (``cupy-cuda13x`` →
    13), or ``None`` for another name (``cupy``, built from source)."""
    match = re.fullmatch(r"cupy[-_]cuda(\d+)x", distribution.strip().lower())
    return int(match.group(1)) if match else None


def _cupy_package_lines(cupy: Any) -> list[str]:
    """Which CuPy is installed, the extra that installs it, and whether the driver runs it."""
    package = cupy_package()
    if package is None:
        return []
    name, major = package
    if major is None:
        return [f"  CuPy package: {name} (not a CUDA-specific wheel)"]
    line = f"  CuPy package: {name}, for CUDA {major}"
    if major in CUDA_EXTRAS:
        line += f' (pip install "anykmeans[cuda{major}]")'
    try:
        driver = int(cupy.cuda.runtime.driverGetVersion()) // 1000
    except Exception:  # noqa: BLE001 - no driver: the reason is on the line above
        return [line]
    lines = [line]
    if 0 < driver < major and driver in CUDA_EXTRAS:
        lines.append(
            f"  the driver supports CUDA {driver}, older than this CuPy needs: "
            f'pip uninstall {name} && pip install "anykmeans[cuda{driver}]"'
        )
    elif 0 < driver < major:
        lines.append(
            f"  the driver supports CUDA {driver}, older than this CuPy needs: update the NVIDIA "
            f"driver (CUDA {min(CUDA_EXTRAS)} or newer)"
        )
    return lines


def _cuda_lines() -> list[str]:
    cupy, count, reason = cuda_devices()
    lines = []
    if reason is not None:
        lines.append(f"  none: {reason}")
        if cupy is None and reason == "CuPy is not installed":
            lines.append(
                '  for a GPU: pip install "anykmeans[cuda13]" (or "anykmeans[cuda12]"): the CUDA '
                "version nvidia-smi shows"
            )
    else:
        versions = []
        for label, query in (("runtime", "runtimeGetVersion"), ("driver", "driverGetVersion")):
            try:
                versions.append(f"{label} {_cuda_version(int(getattr(cupy.cuda.runtime, query)()))}")
            except Exception:  # noqa: BLE001 - a report must not fail on a partial install
                versions.append(f"{label} unknown")
        lines.append(f"  {count} visible through CuPy (CUDA {', '.join(versions)})")
        for index in range(count):
            try:
                props = cupy.cuda.runtime.getDeviceProperties(index)
                name = props["name"]
                name = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
                memory = props["totalGlobalMem"] / 2**30
                lines.append(
                    f"  cuda:{index}  {name}, {memory:.1f} GiB, "
                    f"compute capability {props['major']}.{props['minor']}"
                )
            except Exception as exc:  # noqa: BLE001
                lines.append(f"  cuda:{index}  (properties unavailable: {type(exc).__name__}: {exc})")
    if cupy is not None:
        lines += _cupy_package_lines(cupy)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        lines.append(f"  CUDA_VISIBLE_DEVICES={visible!r}")
    return lines


def _resolved(key: str, value: Any) -> str:
    """What an ``"auto"`` setting comes to here, where that does not depend on the data."""
    if key == "working_memory" and value == "auto":
        host = backends.Kernels().auto_working_memory("cpu") / 2**20
        return f" ({host:g} MiB on the host; half of the free memory on a GPU)"
    return ""


def _describe(placement: Placement) -> str:
    xp, device = placement
    return f"{namespace_name(xp)} on {device}"


def _placement_lines(config: Mapping[str, Any]) -> list[str]:
    """Where NumPy input would be computed and returned under ``config``."""
    numpy_input = (array_api_compat.numpy, "cpu")
    compute, reason = resolve_compute_placement(*numpy_input, asked=config["device"])
    line = f"  compute  {_describe(compute)}"
    if reason is not None:
        line += f" (device {config['device']!r} unavailable: {reason}; fallback={config['fallback']!r})"
    try:
        results = _describe(output_placement(numpy_input, compute, output=config["output"]))
    except RuntimeError as exc:
        results = f"error: {exc}"
    return [line, f"  results  {results}"]


def _thread_lines() -> list[str]:
    """The usable cores and the loaded BLAS/OpenMP libraries with their thread counts."""
    lines = [f"  usable cores: {core_count()}"]
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [*lines, "  BLAS/OpenMP libraries: unknown (threadpoolctl is not installed)"]
    for library in threadpool_info():
        name = os.path.basename(library.get("filepath", "")) or library.get("prefix", "?")
        lines.append(
            f"  {library.get('internal_api', '?')} {library.get('version') or ''} ({name}): "
            f"{library.get('num_threads')} threads"
        )
    return lines


def _backend_lines() -> list[str]:
    registered = sorted(backends.list_kernels().values(), key=lambda k: (-k.priority, k.name))
    lines = [f"  {kernels.name:<16} priority {kernels.priority}" for kernels in registered]
    try:
        auto = repr(backends.select_kernels("auto", array_api_compat.numpy, "cpu").name)
    except ValueError as exc:
        auto = str(exc)
    lines.append(f"  auto for NumPy input: {auto}")
    if numba_installed():
        lines.append(f"  compiled kernels cached in: {kernel_cache_dir()}")
    return lines


def config_report() -> str:
    """The text that :func:`show_config` prints."""
    from . import __version__

    lines = [
        f"anykmeans {__version__} ({os.path.dirname(os.path.abspath(__file__))})",
        f"Python {platform.python_version()} ({platform.python_implementation()}) on "
        f"{platform.platform()}",
        "",
        "Libraries",
    ]
    width = max(len(name) for name, _, _ in _LIBRARIES)
    for name, distribution, module in _LIBRARIES:
        lines.append(f"  {name:<{width}}  {_installed_version(distribution, module)}")
    lines += ["", "CUDA devices", *_cuda_lines(), "", "Configuration"]
    config = get_config()
    width = max(len(key) for key in config)
    for key, value in config.items():
        lines.append(f"  {key:<{width}}  {value}{_resolved(key, value)}")
    known = set(environment_names().values())
    unknown = sorted(name for name in os.environ if name.startswith(ENVIRONMENT_PREFIX) and name not in known)
    if unknown:
        lines.append(f"  unknown environment variables, ignored: {', '.join(unknown)}")
    lines += ["", "Threads (n_threads caps these for each call)", *_thread_lines()]
    lines += ["", "NumPy input under this configuration", *_placement_lines(config)]
    lines += ["", "Backends (name, priority; auto picks the highest supporting priority)"]
    lines += _backend_lines()
    return "\n".join(lines) + "\n"


def show_config(file: TextIO | None = None) -> None:
    """Print versions, the visible CUDA devices, the settings and the registered backends.

    Versions come from the installed packages' metadata, without importing the libraries;
    the CUDA devices are those CuPy sees (none, with the reason, when CuPy is not installed
    or finds no driver or device). The same report is printed by ``anykmeans info``.

    Parameters
    ----------
    file : file-like, optional
        Where to write; ``sys.stdout`` by default.
    """
    (sys.stdout if file is None else file).write(config_report())
