"""Pickles of fitted models: CUDA arrays travel as NumPy arrays that remember their device, so
that a model fitted on a GPU opens (as NumPy, with one warning) where there is none."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

import anykmeans
from anykmeans._pickling import CudaArray


def _fitted():
    X = np.random.default_rng(0).normal(size=(300, 3))
    return X, anykmeans.KMeans(3, random_state=0).fit(X)


def test_host_models_pickle_unchanged(placement):
    X = placement.asarray(np.random.default_rng(0).normal(size=(200, 3)), "float64")
    km = anykmeans.KMeans(3, random_state=0).fit(X)
    state = km.__getstate__()
    assert not any(isinstance(value, CudaArray) for value in state.values())
    again = pickle.loads(pickle.dumps(km))
    assert type(again.cluster_centers_) is type(km.cluster_centers_)
    np.testing.assert_array_equal(placement.to_numpy(again.predict(X)), placement.to_numpy(km.predict(X)))


def test_a_model_from_a_gpu_opens_here_as_numpy_with_one_warning():
    # The state a model fitted on CUDA device 0 pickles (what __getstate__ makes of CuPy and
    # PyTorch CUDA arrays), opened on this machine, which has no such device.
    X, km = _fitted()
    state = dict(km.__dict__)
    state["cluster_centers_"] = CudaArray(km.cluster_centers_, "cupy", 0)
    state["labels_"] = CudaArray(km.labels_, "cupy", 0)
    state["_fit_mean"] = CudaArray(km._fit_mean, "torch", 0)
    from anykmeans._placement import cuda_devices

    if cuda_devices()[2] is None:
        pytest.skip("this machine has a CUDA device: the arrays would go back to it")
    blob = pickle.dumps(state)
    loaded = anykmeans.KMeans.__new__(anykmeans.KMeans)
    with pytest.warns(anykmeans.DeviceFallbackWarning, match="fitted on CUDA device 0") as caught:
        loaded.__setstate__(pickle.loads(blob))
    messages = [str(w.message) for w in caught if issubclass(w.category, anykmeans.DeviceFallbackWarning)]
    assert len(messages) == 2  # one per library and reason, not one per array
    assert isinstance(loaded.cluster_centers_, np.ndarray) and isinstance(loaded._fit_mean, np.ndarray)
    np.testing.assert_array_equal(loaded.predict(X), km.predict(X))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded.__setstate__(pickle.loads(blob))  # the same reasons: no second warning


@pytest.mark.gpu
def test_a_cupy_model_pickles_to_cuda_arrays_that_come_back_to_the_device():
    cupy = pytest.importorskip("cupy")
    from anykmeans._placement import cuda_devices

    if cuda_devices()[2] is not None:
        pytest.skip("no CUDA device")
    X = cupy.asarray(np.random.default_rng(0).normal(size=(500, 4)))
    km = anykmeans.KMeans(3, random_state=0).fit(X)
    state = km.__getstate__()
    assert isinstance(state["cluster_centers_"], CudaArray) and state["cluster_centers_"].library == "cupy"
    again = pickle.loads(pickle.dumps(km))
    assert isinstance(again.cluster_centers_, cupy.ndarray)
    cupy.testing.assert_array_equal(again.predict(X), km.predict(X))
