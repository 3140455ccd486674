"""Device switching: the ``device``, ``output`` and ``fallback`` settings.

Where the work ran is observed through a callable ``init``, which ``fit`` calls with the data
in the compute placement. The fallback tests exercise the path without a usable CUDA device
(CI has none) and skip where one is present; the tests marked ``gpu`` need one.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import pytest

import anykmeans
from anykmeans import DeviceFallbackWarning, KMeans, NotFittedError, kmeans_plusplus
from anykmeans._arrays import namespace_and_device, namespace_name
from anykmeans._placement import reset_fallback_warnings

from conftest import _cuda_available, _has, make_placement

CUDA = _cuda_available()
CUPY_INSTALLED = _has("cupy")

no_cuda = pytest.mark.skipif(CUDA, reason="tests the path without a usable CUDA device")


def _cupy_imports() -> bool:
    if not CUPY_INSTALLED:
        return False
    try:
        import cupy  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return True


def _fallback_reason() -> str:
    """What the fallback message must say on this machine (a regular expression)."""
    if not CUPY_INSTALLED:
        return "CuPy is not installed"
    return "no CUDA device is visible|CuPy could not be imported"


def _blobs(n=400, d=3, k=4, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-20, 20, size=(k, d))
    return centers[rng.integers(k, size=n)] + rng.normal(size=(n, d))


def _recording_init(seen):
    """A callable init that records the namespace and device it is called with."""

    def init(data, n_clusters, random_state):
        seen.append(namespace_and_device(data))
        return data[:n_clusters, :]

    return init


def _with_one_fallback_warning(call, device):
    """Run ``call``; assert it emitted exactly one warning, a DeviceFallbackWarning that says
    why and how to silence it, pointing at the caller. Returns the call's result. The warning
    comes once per process: the record of it is cleared first, as in a fresh process."""
    reset_fallback_warnings()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    assert [w.category for w in caught] == [DeviceFallbackWarning], [str(w.message) for w in caught]
    message = str(caught[0].message)
    assert f"device={device!r} was asked for" in message
    assert re.search(_fallback_reason(), message), message
    assert 'anykmeans.set_config(device="cpu")' in message and "ANYKMEANS_DEVICE=cpu" in message
    assert "category=anykmeans.DeviceFallbackWarning" in message
    assert 'pip install "anykmeans[cuda13]" or "anykmeans[cuda12]"' in message and "once per process" in message
    assert caught[0].filename == __file__, "the warning must point at the caller's line"
    return result


# ---------------------------------------------------------------- fallback (no usable GPU)


@no_cuda
@pytest.mark.parametrize("asked, normalised", [("cuda", "cuda"), ("cuda:3", "cuda:3"), ("CUDA:0", "cuda:0")])
def test_cuda_without_a_device_warns_and_computes_like_the_cpu(asked, normalised):
    X = _blobs()
    reference = KMeans(4, random_state=0).fit(X)
    reference_seeds = kmeans_plusplus(X, 4, random_state=0)
    seen = []
    with anykmeans.config_context(device=asked):
        model = _with_one_fallback_warning(lambda: KMeans(4, random_state=0).fit(X), normalised)
        labels = _with_one_fallback_warning(lambda: model.predict(X), normalised)
        distances = _with_one_fallback_warning(lambda: model.transform(X), normalised)
        score = _with_one_fallback_warning(lambda: model.score(X), normalised)
        seeds = _with_one_fallback_warning(lambda: kmeans_plusplus(X, 4, random_state=0), normalised)
        fit_labels = _with_one_fallback_warning(
            lambda: KMeans(4, random_state=0).fit_predict(X), normalised
        )
        fit_distances = _with_one_fallback_warning(
            lambda: KMeans(4, random_state=0).fit_transform(X), normalised
        )
        _with_one_fallback_warning(
            lambda: KMeans(4, init=_recording_init(seen), n_init=1, random_state=0).fit(X), normalised
        )

    assert [namespace_name(xp) for xp, _ in seen] == ["numpy"]
    for array in (model.cluster_centers_, model.labels_, labels, distances, *seeds, fit_labels):
        assert isinstance(array, np.ndarray)
    # The same computation as on NumPy, bit for bit.
    np.testing.assert_array_equal(model.cluster_centers_, reference.cluster_centers_)
    np.testing.assert_array_equal(model.labels_, reference.labels_)
    assert model.inertia_ == reference.inertia_ and model.n_iter_ == reference.n_iter_
    np.testing.assert_array_equal(labels, reference.predict(X))
    np.testing.assert_array_equal(distances, reference.transform(X))
    assert score == reference.score(X)
    np.testing.assert_array_equal(seeds[0], reference_seeds[0])
    np.testing.assert_array_equal(seeds[1], reference_seeds[1])
    np.testing.assert_array_equal(fit_labels, reference.labels_)
    np.testing.assert_array_equal(fit_distances, reference.transform(X))


@no_cuda
@pytest.mark.parametrize("name", ["torch-cpu", "strict-cpu", "strict-device1", "dask"])
def test_fallback_computes_where_device_cpu_would_and_returns_to_the_input(name):
    if not _has({"torch-cpu": "torch", "dask": "dask"}.get(name, "array_api_strict")):
        pytest.skip(f"{name} not installed")
    placement = make_placement(name)
    X_host = _blobs()
    X = placement.asarray(X_host)
    on_cpu, on_cuda = [], []
    with anykmeans.config_context(device="cpu"):
        expected = KMeans(4, init=_recording_init(on_cpu), n_init=1, random_state=0).fit(X)
    with anykmeans.config_context(device="cuda"):
        model = _with_one_fallback_warning(
            lambda: KMeans(4, init=_recording_init(on_cuda), n_init=1, random_state=0).fit(X), "cuda"
        )
    # Host input (PyTorch CPU, Dask, array-api-strict's CPU device) stays in its namespace;
    # array-api-strict's device1 moves to NumPy, as device="cpu" does.
    assert [namespace_name(xp) for xp, _ in on_cuda] == [namespace_name(xp) for xp, _ in on_cpu]
    assert namespace_name(on_cuda[0][0]) == ("numpy" if name == "strict-device1" else namespace_name(placement.xp))
    for array in (model.cluster_centers_, model.labels_):
        xp, device = namespace_and_device(array)
        assert xp is placement.xp and device == placement.device
    np.testing.assert_array_equal(
        placement.to_numpy(model.cluster_centers_), placement.to_numpy(expected.cluster_centers_)
    )
    np.testing.assert_array_equal(placement.to_numpy(model.labels_), placement.to_numpy(expected.labels_))


@no_cuda
def test_the_fallback_warning_is_a_user_warning_and_its_advice_silences_it():
    assert issubclass(DeviceFallbackWarning, UserWarning)
    X = _blobs()
    with anykmeans.config_context(device="cuda"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.filterwarnings("ignore", category=anykmeans.DeviceFallbackWarning)
            KMeans(4, random_state=0).fit(X)
        assert caught == []
    # The other advice: asking for the CPU. Warnings are errors in this test run.
    anykmeans.set_config(device="cpu")
    assert KMeans(4, random_state=0).fit(X).cluster_centers_.shape == (4, 3)


def _is_unfitted(model):
    """Only the constructor's parameters: no fitted (``name_``) or private attributes."""
    return not [key for key in vars(model) if key.endswith("_") or key.startswith("_")]


@no_cuda
def test_fallback_raise_fails_before_any_work_and_leaves_an_unfitted_model_unfitted():
    X = _blobs()
    seen = []
    model = KMeans(4, init=_recording_init(seen), n_init=1, random_state=0)
    with anykmeans.config_context(device="cuda", fallback="raise"):
        with pytest.raises(RuntimeError, match=_fallback_reason()) as error:
            model.fit(X)
        with pytest.raises(RuntimeError, match="fallback='raise'"):
            kmeans_plusplus(X, 4, random_state=0)
    message = str(error.value)
    assert "device='cuda' was asked for" in message and 'set_config(device="cpu")' in message
    assert seen == [], "the work must not have started"
    assert _is_unfitted(model)
    with pytest.raises(NotFittedError):
        model.predict(X)


@no_cuda
def test_fallback_raise_keeps_a_fitted_model_as_it_was():
    X = _blobs()
    model = KMeans(4, random_state=0).fit(X)
    before = dict(vars(model))
    other = _blobs(seed=1)
    with anykmeans.config_context(device="cuda:1", fallback="raise"):
        for call in (
            lambda: model.fit(other),
            lambda: model.fit_predict(other),
            lambda: model.fit_transform(other),
            lambda: model.predict(X),
            lambda: model.transform(X),
            lambda: model.score(X),
        ):
            with pytest.raises(RuntimeError, match=_fallback_reason()):
                call()
    after = vars(model)
    assert after.keys() == before.keys()
    assert all(after[key] is before[key] for key in before)


# ---------------------------------------------------------------- output


def _all_results(X):
    model = KMeans(4, random_state=0).fit(X)
    seeds = kmeans_plusplus(X, 4, random_state=0)
    return {
        "cluster_centers_": model.cluster_centers_,
        "labels_": model.labels_,
        "predict": model.predict(X),
        "transform": model.transform(X),
        "fit_predict": KMeans(4, random_state=0).fit_predict(X),
        "fit_transform": KMeans(4, random_state=0).fit_transform(X),
        "seed centers": seeds[0],
        "seed indices": seeds[1],
    }


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_output_numpy_returns_numpy_arrays_from_any_input(placement, dtype):
    X = placement.asarray(_blobs(), dtype)
    expected = _all_results(X)
    with anykmeans.config_context(output="NumPy"):
        results = _all_results(X)
    for name, array in results.items():
        assert isinstance(array, np.ndarray), name
        np.testing.assert_array_equal(array, placement.to_numpy(expected[name]), err_msg=name)
    assert results["cluster_centers_"].dtype == np.dtype(dtype)
    assert results["transform"].dtype == np.dtype(dtype)
    # The seeds are exact rows of the input.
    np.testing.assert_array_equal(
        results["seed centers"], placement.to_numpy(X)[results["seed indices"]]
    )


def test_output_input_returns_the_input_namespace_and_device(placement):
    X = placement.asarray(_blobs(), "float32")
    anykmeans.set_config(output="numpy")
    with anykmeans.config_context(output="input"):
        results = _all_results(X)
    for name, array in results.items():
        xp, device = namespace_and_device(array)
        assert xp is placement.xp and device == placement.device, name
    assert results["cluster_centers_"].dtype == placement.xp.float32


def test_a_fitted_model_predicts_input_from_another_device_and_follows_output():
    strict = pytest.importorskip("array_api_strict")
    device1 = strict.Device("device1")
    X_host = _blobs()
    model = KMeans(4, random_state=0).fit(X_host)
    centers = model.cluster_centers_
    X = strict.asarray(X_host, device=device1)
    on_device1 = model.predict(X)
    with anykmeans.config_context(output="numpy"):
        on_host = model.predict(X)
    assert on_device1.device == device1 and isinstance(on_host, np.ndarray)
    # The model's centers moved for the work; the model itself is untouched.
    assert model.cluster_centers_ is centers and isinstance(centers, np.ndarray)
    np.testing.assert_array_equal(on_host, model.labels_)
    np.testing.assert_array_equal(make_placement("strict-device1").to_numpy(on_device1), model.labels_)


@no_cuda
def test_output_cupy_without_cupy_raises_before_fitting():
    X = _blobs()
    seen = []
    model = KMeans(4, init=_recording_init(seen), n_init=1, random_state=0)
    reason = "CuPy is not installed" if not CUPY_INSTALLED else "no CUDA device|could not be imported"
    # Also with device="cuda": the output is checked first, so no fallback warning comes
    # before the error (warnings are errors in this test run).
    for device in ("auto", "cpu", "cuda"):
        with anykmeans.config_context(output="cupy", device=device):
            with pytest.raises(RuntimeError, match=rf"output='cupy' asks for CuPy arrays, but ({reason})"):
                model.fit(X)
            with pytest.raises(RuntimeError, match="output='cupy'"):
                kmeans_plusplus(X, 4, random_state=0)
    assert seen == [] and _is_unfitted(model)
    fitted = KMeans(4, random_state=0).fit(X)
    with anykmeans.config_context(output="cupy"):
        with pytest.raises(RuntimeError, match="output='input'.*output='numpy'"):
            fitted.predict(X)


# ---------------------------------------------------------------- imports


def test_importing_anykmeans_or_falling_back_imports_no_gpu_or_array_framework():
    code = (
        "import io, sys, json, warnings\n"
        "import numpy as np, anykmeans\n"
        "heavy = ('cupy', 'torch', 'dask', 'jax')\n"
        "after_import = [m for m in heavy if m in sys.modules]\n"
        "with warnings.catch_warnings():\n"
        "    warnings.simplefilter('ignore', anykmeans.DeviceFallbackWarning)\n"
        "    with anykmeans.config_context(device='cuda'):\n"
        "        anykmeans.KMeans(2, random_state=0).fit(np.arange(20.0).reshape(10, 2))\n"
        "anykmeans.show_config(file=io.StringIO())\n"
        "print(json.dumps([after_import, [m for m in heavy if m in sys.modules]]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANYKMEANS_")}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tempfile.gettempdir()
    )
    assert result.returncode == 0, result.stderr
    after_import, after_work = json.loads(result.stdout)
    assert after_import == []
    # Asking for CUDA may import CuPy (where installed), never the others.
    assert [m for m in after_work if m != "cupy"] == []
    if not CUPY_INSTALLED:
        assert after_work == []


# ---------------------------------------------------------------- CuPy installed, no device


@pytest.mark.skipif(
    CUDA or not _cupy_imports(), reason="only where CuPy is installed but sees no CUDA device"
)
def test_cupy_installed_without_a_device_falls_back_and_reports_why(tmp_path):
    X = _blobs()
    with anykmeans.config_context(device="cuda"):
        with pytest.warns(DeviceFallbackWarning, match="no CUDA device is visible"):
            model = KMeans(4, random_state=0).fit(X)
    assert isinstance(model.cluster_centers_, np.ndarray)
    with anykmeans.config_context(output="cupy"):
        with pytest.raises(RuntimeError, match="no CUDA device is visible"):
            KMeans(4).fit(X)
    report = tmp_path / "report.txt"
    with report.open("w") as file:
        anykmeans.show_config(file=file)
    assert "none: no CUDA device is visible" in report.read_text()


# ---------------------------------------------------------------- with a GPU


def _cupy():
    import cupy

    return cupy


def _device_count():
    return _cupy().cuda.runtime.getDeviceCount()


@pytest.mark.parametrize("asked", ["cuda", "cuda:0"])
@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="no CUDA device")
def test_cuda_moves_numpy_input_to_cupy_and_the_results_back(asked):
    cupy = _cupy()
    X = _blobs()
    on_host, on_gpu = [], []
    reference = KMeans(4, init=_recording_init(on_host), n_init=1, random_state=0).fit(X)
    with anykmeans.config_context(device=asked):
        model = KMeans(4, init=_recording_init(on_gpu), n_init=1, random_state=0).fit(X)
        labels = model.predict(X)
        seeds, indices = kmeans_plusplus(X, 4, random_state=0)
    (xp, device), = on_gpu
    assert namespace_name(xp) == "cupy" and device.id == 0
    assert namespace_name(on_host[0][0]) == "numpy"
    for array in (model.cluster_centers_, model.labels_, labels, seeds, indices):
        assert isinstance(array, np.ndarray) and not isinstance(array, cupy.ndarray)
    np.testing.assert_allclose(model.cluster_centers_, reference.cluster_centers_, rtol=1e-10)
    np.testing.assert_array_equal(model.labels_, reference.labels_)
    np.testing.assert_array_equal(labels, reference.labels_)
    np.testing.assert_array_equal(seeds, X[indices])


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="no CUDA device")
def test_cuda_n_runs_on_device_n():
    count = _device_count()
    if count < 2:
        pytest.skip("needs two CUDA devices")
    cupy = _cupy()
    seen = []
    X = _blobs()
    with anykmeans.config_context(device="cuda:1"):
        model = KMeans(4, init=_recording_init(seen), n_init=1, random_state=0).fit(X)
    assert namespace_name(seen[0][0]) == "cupy" and seen[0][1].id == 1
    assert isinstance(model.cluster_centers_, np.ndarray)
    # CuPy input on device 0 moves to device 1, and its results come back to device 0.
    with cupy.cuda.Device(0):
        X_gpu = cupy.asarray(X)
    seen.clear()
    with anykmeans.config_context(device="cuda:1"):
        model = KMeans(4, init=_recording_init(seen), n_init=1, random_state=0).fit(X_gpu)
    assert seen[0][1].id == 1 and model.cluster_centers_.device.id == 0
    # device="cuda" keeps CuPy input on the CUDA device it is on.
    with cupy.cuda.Device(1):
        X_gpu = cupy.asarray(X)
    seen.clear()
    with anykmeans.config_context(device="cuda"):
        model = KMeans(4, init=_recording_init(seen), n_init=1, random_state=0).fit(X_gpu)
    assert seen[0][1].id == 1 and model.cluster_centers_.device.id == 1


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="no CUDA device")
def test_a_cuda_index_beyond_the_visible_devices_falls_back_or_raises():
    count = _device_count()
    asked = f"cuda:{count}"
    X = _blobs()
    with anykmeans.config_context(device=asked):
        with pytest.warns(DeviceFallbackWarning, match=rf"only {count} CUDA device"):
            model = KMeans(4, random_state=0).fit(X)
    np.testing.assert_array_equal(model.labels_, KMeans(4, random_state=0).fit(X).labels_)
    with anykmeans.config_context(device=asked, fallback="raise"):
        with pytest.raises(RuntimeError, match=rf"only {count} CUDA device"):
            KMeans(4).fit(X)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="no CUDA device")
def test_output_cupy_returns_cupy_arrays():
    cupy = _cupy()
    X = _blobs()
    reference = _all_results(X)
    for device in ("auto", "cuda"):
        with anykmeans.config_context(output="cupy", device=device):
            results = _all_results(X)
        for name, array in results.items():
            assert isinstance(array, cupy.ndarray) and array.device.id == 0, (device, name)
            np.testing.assert_allclose(cupy.asnumpy(array), reference[name], rtol=1e-10, err_msg=name)
        np.testing.assert_array_equal(
            cupy.asnumpy(results["seed centers"]), X[cupy.asnumpy(results["seed indices"])]
        )


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="no CUDA device")
def test_a_numpy_fitted_model_predicts_cupy_input_on_the_gpu():
    cupy = _cupy()
    X = _blobs()
    model = KMeans(4, random_state=0).fit(X)
    X_gpu = cupy.asarray(X)
    labels = model.predict(X_gpu)
    distances = model.transform(X_gpu)
    assert isinstance(labels, cupy.ndarray) and isinstance(distances, cupy.ndarray)
    assert isinstance(model.cluster_centers_, np.ndarray)
    np.testing.assert_array_equal(cupy.asnumpy(labels), model.predict(X))
    np.testing.assert_allclose(cupy.asnumpy(distances), model.transform(X), rtol=1e-10)
    with anykmeans.config_context(output="numpy"):
        assert isinstance(model.predict(X_gpu), np.ndarray)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="no CUDA device")
def test_torch_cuda_input_with_device_cuda_stays_on_torch():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch without CUDA")
    X_host = _blobs()
    X = torch.asarray(X_host, device="cuda:0")
    seen = []
    with anykmeans.config_context(device="cuda"):
        model = KMeans(4, init=_recording_init(seen), n_init=1, random_state=0).fit(X)
    (xp, device), = seen
    assert namespace_name(xp) == "torch" and device == X.device
    assert isinstance(model.cluster_centers_, torch.Tensor) and model.cluster_centers_.device == X.device
    reference = KMeans(4, init=_recording_init([]), n_init=1, random_state=0).fit(X_host)
    np.testing.assert_array_equal(model.labels_.cpu().numpy(), reference.labels_)


@no_cuda
def test_the_fallback_warns_once_per_process_and_reason():
    X = _blobs()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with anykmeans.config_context(device="cuda"):
            model = KMeans(4, random_state=0).fit(X)
            for _ in range(3):  # a notebook loop
                KMeans(4, random_state=0).fit(X)
                model.predict(X)
        with anykmeans.config_context(device="cuda:7"):  # another device: another reason
            model.predict(X)
            model.transform(X)
    assert [w.category for w in caught] == [DeviceFallbackWarning] * 2
    assert "device='cuda'" in str(caught[0].message) and "device='cuda:7'" in str(caught[1].message)
