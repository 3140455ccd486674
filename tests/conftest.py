"""The namespace/device parametrisation shared by the suite.

``placement`` yields an :class:`ArrayPlacement` for every installed array library: NumPy,
array-api-strict on its default device and on ``device1`` (a second device that catches
implicit transfers), PyTorch on the CPU, and CuPy / PyTorch on CUDA where a GPU is present.
Missing libraries skip; they never fail.
"""

from __future__ import annotations

import collections
import importlib.util
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest


# scikit-learn's array-API estimator checks (run by test_estimator_checks) need SciPy's
# array-API mode, which SciPy reads once, when it is first imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")


@dataclass(frozen=True)
class ArrayPlacement:
    """A namespace and a device, and conversions to and from NumPy for the assertions."""

    id: str
    xp: Any
    device: Any

    def asarray(self, data: Any, dtype: str | None = None) -> Any:
        """Put host data on this placement (``dtype``: 'float32', 'float64', 'int64', …)."""
        data = np.asarray(data)
        if dtype is not None:
            data = data.astype(dtype)
        if self.id == "dask":
            import dask.array as da

            # Several row blocks, so that block boundaries are exercised.
            rows = max(1, -(-data.shape[0] // 3)) if data.ndim else ()
            return da.from_array(data, chunks=(rows,) + data.shape[1:] if data.ndim else ())
        return self.xp.asarray(data, device=self.device)

    def to_numpy(self, array: Any) -> np.ndarray:
        """Copy back to the host for comparisons (tests only: the library never does this)."""
        if hasattr(array, "get"):  # CuPy
            return array.get()
        if hasattr(array, "detach"):  # PyTorch
            return array.detach().cpu().numpy()
        if hasattr(array, "compute"):  # Dask
            array = array.compute()
        if type(array).__module__.startswith("array_api_strict"):
            import array_api_strict

            array = array_api_strict.asarray(array, device=array_api_strict.Device("CPU_DEVICE"), copy=True)
        return np.asarray(array)

    def dtype(self, name: str) -> Any:
        return getattr(self.xp, name)


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _cuda_available() -> bool:
    if not _has("cupy"):
        return False
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - no driver, no device
        return False


def _placements() -> list[Any]:
    params = [pytest.param("numpy", id="numpy")]
    strict = pytest.mark.skipif(not _has("array_api_strict"), reason="array-api-strict not installed")
    params.append(pytest.param("strict-cpu", id="strict-cpu", marks=strict))
    params.append(pytest.param("strict-device1", id="strict-device1", marks=strict))
    torch_mark = pytest.mark.skipif(not _has("torch"), reason="PyTorch not installed")
    params.append(pytest.param("torch-cpu", id="torch-cpu", marks=torch_mark))
    params.append(
        pytest.param("dask", id="dask", marks=pytest.mark.skipif(not _has("dask"), reason="Dask not installed"))
    )
    params.append(
        pytest.param("jax", id="jax", marks=pytest.mark.skipif(not _has("jax"), reason="JAX not installed"))
    )
    gpu = [pytest.mark.gpu, pytest.mark.skipif(not _cuda_available(), reason="no CUDA device")]
    params.append(pytest.param("cupy", id="cupy", marks=gpu))
    params.append(pytest.param("torch-cuda", id="torch-cuda", marks=gpu + [torch_mark]))
    return params


def make_placement(name: str) -> ArrayPlacement:
    if name == "numpy":
        import array_api_compat.numpy as xp

        return ArrayPlacement(name, xp, "cpu")
    if name.startswith("strict"):
        import array_api_strict as xp

        device = xp.Device("device1" if name.endswith("device1") else "CPU_DEVICE")
        return ArrayPlacement(name, xp, device)
    if name.startswith("torch"):
        import array_api_compat.torch as xp
        import torch

        # An explicit index: the library reports tensors on "cuda:0", never on "cuda".
        return ArrayPlacement(name, xp, torch.device("cuda:0" if name.endswith("cuda") else "cpu"))
    if name == "dask":
        import array_api_compat.dask.array as xp

        return ArrayPlacement(name, xp, "cpu")
    if name == "jax":
        import jax

        # float64 tests need it; without it JAX silently computes in float32.
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as xp

        return ArrayPlacement(name, xp, jax.devices("cpu")[0])
    if name == "cupy":
        import array_api_compat.cupy as xp
        import cupy

        return ArrayPlacement(name, xp, cupy.cuda.Device(0))
    raise ValueError(name)


@pytest.fixture(params=_placements())
def placement(request: pytest.FixtureRequest) -> ArrayPlacement:
    return make_placement(request.param)


@pytest.fixture(autouse=True)
def _isolated_config():
    """Each test starts from, and leaves behind, the default configuration."""
    import anykmeans
    from anykmeans._placement import reset_fallback_warnings

    # The device fallback warns once per process: each test starts as a fresh process would.
    reset_fallback_warnings()
    with anykmeans.config_context():
        yield


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """One line per reason for skipping (missing libraries, no CUDA device) instead of one per
    test location."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    reasons = collections.Counter()
    for report in skipped:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reasons[reason.removeprefix("Skipped: ")] += 1
    terminalreporter.section(f"{len(skipped)} skipped, by reason")
    for reason, count in reasons.most_common():
        terminalreporter.line(f"{count:6d}  {reason}")
