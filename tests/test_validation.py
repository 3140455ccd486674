"""Bad input is refused before any work starts, with scikit-learn's wording where it has
one, and the user's arrays are never written to.

Array inputs run on every placement of the ``placement`` fixture (see ``conftest.py``).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from anykmeans import InvalidParameterError, KMeans, NotFittedError, kmeans_plusplus
from conftest import make_placement

N_CLUSTERS, N_PER_CLUSTER, N_FEATURES = 3, 4, 4
N_SAMPLES = N_CLUSTERS * N_PER_CLUSTER
FLOATS = ["float32", "float64"]
FITTED_ATTRIBUTES = ["cluster_centers_", "labels_", "inertia_", "n_iter_", "n_features_in_"]

# Entry points that take X, and those that also take sample_weight.
X_ENTRIES = ["fit", "kmeans_plusplus", "predict", "transform", "score"]
WEIGHT_ENTRIES = ["fit", "kmeans_plusplus", "score"]


# ---------------------------------------------------------------------------- helpers


def _host_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three well-separated blobs (no ConvergenceWarning), their weights and initial centers."""
    rng = np.random.default_rng(0)
    means = np.array([[0, 0, 0, 0], [10, 10, 0, 0], [0, 10, 10, 10]], dtype=float)
    X = np.repeat(means, N_PER_CLUSTER, axis=0) + rng.normal(scale=0.5, size=(N_SAMPLES, N_FEATURES))
    weights = rng.uniform(0.5, 2.0, size=N_SAMPLES)
    return X, weights, X[::N_PER_CLUSTER].copy()


X_HOST, WEIGHTS_HOST, INIT_HOST = _host_data()


def _with(data: np.ndarray, value: float) -> np.ndarray:
    """A copy of ``data`` with one entry replaced by ``value``."""
    data = np.array(data, dtype=float)
    data.flat[1] = value
    return data


def _fitted(placement: Any, dtype: str = "float64") -> KMeans:
    return KMeans(N_CLUSTERS, random_state=0).fit(placement.asarray(X_HOST, dtype))


def _call(entry: str, placement: Any, X: Any, sample_weight: Any = None, init: Any = None) -> Any:
    """Call one public entry point (predict & co. on a model fitted on clean data)."""
    if entry == "fit":
        model = KMeans(N_CLUSTERS, random_state=0, **({} if init is None else {"init": init}))
        return model.fit(X, sample_weight=sample_weight)
    if entry == "kmeans_plusplus":
        return kmeans_plusplus(X, N_CLUSTERS, sample_weight=sample_weight, random_state=0)
    model = _fitted(placement)
    if entry == "score":
        return model.score(X, sample_weight=sample_weight)
    return getattr(model, entry)(X)


def _snapshot(placement: Any, array: Any) -> np.ndarray:
    return placement.to_numpy(array).copy()


def _assert_bit_identical(placement: Any, before: np.ndarray, array: Any) -> None:
    after = placement.to_numpy(array)
    assert after.dtype == before.dtype and after.shape == before.shape
    assert after.tobytes() == before.tobytes(), "the input array was modified"


def _non_finite_match(name: str, value: float) -> str:
    return f"Input {name} contains " + ("NaN" if np.isnan(value) else "infinity")


NON_FINITE = pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])


# ---------------------------------------------------------------------------- NaN and inf


@NON_FINITE
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("entry", X_ENTRIES)
def test_non_finite_X(placement, entry, dtype, value):
    X = placement.asarray(_with(X_HOST, value), dtype)
    with pytest.raises(ValueError, match=_non_finite_match("X", value)):
        _call(entry, placement, X)


@NON_FINITE
@pytest.mark.parametrize("dtype", FLOATS)
def test_non_finite_init(placement, dtype, value):
    init = placement.asarray(_with(INIT_HOST, value), dtype)
    with pytest.raises(ValueError, match=_non_finite_match("init", value)):
        _call("fit", placement, placement.asarray(X_HOST, dtype), init=init)


@NON_FINITE
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("entry", WEIGHT_ENTRIES)
def test_non_finite_sample_weight(placement, entry, dtype, value):
    weights = placement.asarray(_with(WEIGHTS_HOST, value), dtype)
    with pytest.raises(ValueError, match=_non_finite_match("sample_weight", value)):
        _call(entry, placement, placement.asarray(X_HOST, dtype), sample_weight=weights)


def test_non_finite_scalar_sample_weight():
    with pytest.raises(ValueError, match="Input sample_weight contains NaN"):
        KMeans(N_CLUSTERS).fit(X_HOST, sample_weight=float("nan"))


# ---------------------------------------------------------------------------- shapes and dtypes of X

BAD_SHAPES = {
    "1-D": ((N_FEATURES,), "Reshape your data"),
    "3-D": ((N_SAMPLES, N_FEATURES, 1), "Reshape your data"),
    "0-D": ((), "Reshape your data"),
    "0-samples": ((0, N_FEATURES), re.escape(f"0 sample(s) (shape=(0, {N_FEATURES}))")),
    "0-features": ((N_SAMPLES, 0), re.escape(f"0 feature(s) (shape=({N_SAMPLES}, 0))")),
}


@pytest.mark.parametrize("shape, match", BAD_SHAPES.values(), ids=BAD_SHAPES.keys())
@pytest.mark.parametrize("entry", X_ENTRIES)
def test_bad_shape_X(placement, entry, shape, match):
    X = placement.asarray(np.ones(shape), "float64")
    with pytest.raises(ValueError, match=match):
        _call(entry, placement, X)


@pytest.mark.parametrize("name", ["X", "init", "sample_weight"])
def test_complex_data(placement, name):
    arrays = {"X": X_HOST, "init": INIT_HOST, "sample_weight": WEIGHTS_HOST}
    arrays = {key: placement.asarray(value, "complex64" if key == name else "float32")
              for key, value in arrays.items()}
    with pytest.raises(ValueError, match="Complex data not supported"):
        _call("fit", placement, arrays["X"], arrays["sample_weight"], arrays["init"])


def _as_strings(data: np.ndarray, kind: str) -> np.ndarray:
    return data.astype(str).astype(kind)


def _with_dict(data: np.ndarray) -> np.ndarray:
    """An object array of data's numbers with one entry replaced by a dict."""
    data = np.array(data, dtype=object)
    data.flat[1] = {"a": 1}
    return data


@pytest.mark.parametrize("kind", ["U", "S"], ids=["str", "bytes"])
@pytest.mark.parametrize("name", ["X", "init", "sample_weight"])
def test_string_data(name, kind):
    arrays = {"X": X_HOST, "init": INIT_HOST, "sample_weight": WEIGHTS_HOST}
    arrays[name] = _as_strings(arrays[name], kind)
    with pytest.raises(ValueError, match="(?i)convert your data to numeric values"):
        KMeans(N_CLUSTERS, init=arrays["init"]).fit(arrays["X"], sample_weight=arrays["sample_weight"])


@pytest.mark.parametrize("name", ["X", "init", "sample_weight"])
def test_object_data_that_is_not_numbers(name):
    arrays = {"X": X_HOST, "init": INIT_HOST, "sample_weight": WEIGHTS_HOST}
    arrays[name] = _with_dict(arrays[name])
    with pytest.raises(TypeError, match="argument must be a string.* number"):
        KMeans(N_CLUSTERS, init=arrays["init"]).fit(arrays["X"], sample_weight=arrays["sample_weight"])


@pytest.mark.parametrize("entry", ["kmeans_plusplus", "predict"])
def test_object_X_that_is_not_numbers_elsewhere(entry):
    with pytest.raises(TypeError, match="argument must be a string.* number"):
        _call(entry, make_placement("numpy"), _with_dict(X_HOST))


def test_object_arrays_of_numbers_are_float64():
    X, weights, init = (np.array(a.tolist(), dtype=object) for a in (X_HOST, WEIGHTS_HOST, INIT_HOST))
    assert X.dtype == object
    got = KMeans(N_CLUSTERS, init=init).fit(X, sample_weight=weights)
    want = KMeans(N_CLUSTERS, init=INIT_HOST).fit(X_HOST, sample_weight=WEIGHTS_HOST)
    assert got.cluster_centers_.dtype == np.float64
    np.testing.assert_array_equal(got.cluster_centers_, want.cluster_centers_)
    np.testing.assert_array_equal(got.labels_, want.labels_)
    np.testing.assert_array_equal(got.predict(X), want.predict(X_HOST))
    np.testing.assert_array_equal(
        kmeans_plusplus(X, N_CLUSTERS, sample_weight=weights, random_state=0)[1],
        kmeans_plusplus(X_HOST, N_CLUSTERS, sample_weight=WEIGHTS_HOST, random_state=0)[1],
    )


# ---------------------------------------------------------------------------- n_samples and init


@pytest.mark.parametrize("entry", ["fit", "kmeans_plusplus"])
def test_fewer_samples_than_clusters(placement, entry):
    X = placement.asarray(X_HOST[:2], "float64")
    with pytest.raises(ValueError, match=re.escape("n_samples=2 should be >= n_clusters=3.")):
        _call(entry, placement, X)


INIT_SHAPES = {
    "too-many-rows": (INIT_HOST.tolist() + [[0.0] * N_FEATURES], "number of clusters 3"),
    "too-few-rows": (INIT_HOST[:2], "number of clusters 3"),
    "too-few-columns": (INIT_HOST[:, :3], f"number of features of the data {N_FEATURES}"),
    "too-many-columns": (np.hstack([INIT_HOST, INIT_HOST]), f"number of features of the data {N_FEATURES}"),
    "1-D": (INIT_HOST[0], "number of clusters 3"),
    "3-D": (INIT_HOST[:, :, None], "number of clusters 3"),
}


@pytest.mark.parametrize("as_list", [False, True], ids=["array", "list"])
@pytest.mark.parametrize("init, match", INIT_SHAPES.values(), ids=INIT_SHAPES.keys())
def test_init_of_wrong_shape(placement, init, match, as_list):
    init = np.asarray(init, dtype=float)
    shape = re.escape(str(init.shape))
    init = init.tolist() if as_list else placement.asarray(init, "float64")
    match = f"The shape of the initial centers {shape} does not match the {match}"
    with pytest.raises(ValueError, match=match):
        _call("fit", placement, placement.asarray(X_HOST, "float64"), init=init)


def test_callable_init_of_wrong_shape(placement):
    def init(X, n_clusters, random_state):
        return X[:2, ...]

    with pytest.raises(ValueError, match=re.escape("initial centers (2, 4) does not match")):
        KMeans(N_CLUSTERS, init=init, n_init=1).fit(placement.asarray(X_HOST, "float64"))


# ---------------------------------------------------------------------------- sample_weight

WEIGHT_SHAPES = {
    "short": (N_SAMPLES - 1,),
    "long": (N_SAMPLES + 1,),
    "column": (N_SAMPLES, 1),
    "row": (1, N_SAMPLES),
}


@pytest.mark.parametrize("shape", WEIGHT_SHAPES.values(), ids=WEIGHT_SHAPES.keys())
@pytest.mark.parametrize("entry", WEIGHT_ENTRIES)
def test_sample_weight_of_wrong_shape(placement, entry, shape):
    weights = placement.asarray(np.ones(shape), "float64")
    match = re.escape(f"sample_weight.shape == {shape}, expected ({N_SAMPLES},)")
    with pytest.raises(ValueError, match=match):
        _call(entry, placement, placement.asarray(X_HOST, "float64"), sample_weight=weights)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("entry", WEIGHT_ENTRIES)
def test_negative_sample_weight(placement, entry, dtype):
    weights = placement.asarray(_with(WEIGHTS_HOST, -0.5), dtype)
    with pytest.raises(ValueError, match="Negative values in data passed to sample_weight"):
        _call(entry, placement, placement.asarray(X_HOST, dtype), sample_weight=weights)


@pytest.mark.parametrize("entry", WEIGHT_ENTRIES)
def test_sample_weight_summing_to_zero(placement, entry):
    weights = placement.asarray(np.zeros(N_SAMPLES), "float64")
    with pytest.raises(ValueError, match="sample_weight sums to zero"):
        _call(entry, placement, placement.asarray(X_HOST, "float64"), sample_weight=weights)


def test_scalar_zero_sample_weight():
    with pytest.raises(ValueError, match="sample_weight sums to zero"):
        KMeans(N_CLUSTERS).fit(X_HOST, sample_weight=0)


# ---------------------------------------------------------------------------- parameters

INVALID_PARAMS = [
    ("n_clusters", 0),
    ("n_clusters", 1.5),
    ("n_clusters", True),
    ("n_init", 0),
    ("n_init", "bad"),
    ("max_iter", 0),
    ("tol", -1),
    ("init", "kmeans++"),
    ("algorithm", "full"),
    ("verbose", -1),
    ("random_state", "seed"),
]
INVALID_PARAM_IDS = [f"{name}={value!r}" for name, value in INVALID_PARAMS]


def _assert_names_parameter(excinfo: Any, name: str, value: Any) -> None:
    error = excinfo.value
    assert isinstance(error, ValueError) and isinstance(error, TypeError)
    assert repr(value) in str(error)


@pytest.mark.parametrize("name, value", INVALID_PARAMS, ids=INVALID_PARAM_IDS)
def test_invalid_parameter(placement, name, value):
    model = KMeans(N_CLUSTERS, random_state=0).set_params(**{name: value})
    with pytest.raises(InvalidParameterError, match=re.escape(repr(name))) as excinfo:
        model.fit(placement.asarray(X_HOST, "float64"))
    _assert_names_parameter(excinfo, name, value)


@pytest.mark.parametrize("name, value", INVALID_PARAMS, ids=INVALID_PARAM_IDS)
def test_parameters_are_checked_before_data(name, value):
    """As in scikit-learn, a bad parameter is reported even when the data is bad too."""
    model = KMeans(N_CLUSTERS, random_state=0).set_params(**{name: value})
    with pytest.raises(InvalidParameterError, match=re.escape(repr(name))):
        model.fit(_with(X_HOST, np.nan))


@pytest.mark.parametrize("n_clusters", [0, -1, 1.5, True, "3", None])
def test_kmeans_plusplus_invalid_n_clusters(placement, n_clusters):
    with pytest.raises(InvalidParameterError, match="'n_clusters'") as excinfo:
        kmeans_plusplus(placement.asarray(X_HOST, "float64"), n_clusters)
    _assert_names_parameter(excinfo, "n_clusters", n_clusters)


def test_kmeans_plusplus_invalid_random_state(placement):
    with pytest.raises(InvalidParameterError, match="'random_state'"):
        kmeans_plusplus(placement.asarray(X_HOST, "float64"), N_CLUSTERS, random_state="seed")


# ---------------------------------------------------------------------------- fitted model


@pytest.mark.parametrize("method", ["predict", "transform", "score", "get_feature_names_out"])
def test_not_fitted(placement, method):
    model = KMeans(N_CLUSTERS)
    args = () if method == "get_feature_names_out" else (placement.asarray(X_HOST, "float64"),)
    with pytest.raises(NotFittedError, match="not fitted yet") as excinfo:
        getattr(model, method)(*args)
    assert isinstance(excinfo.value, ValueError) and isinstance(excinfo.value, AttributeError)


@pytest.mark.parametrize("n_features", [N_FEATURES - 1, N_FEATURES + 1])
@pytest.mark.parametrize("method", ["predict", "transform", "score"])
def test_wrong_number_of_features(placement, method, n_features):
    model = _fitted(placement)
    X = placement.asarray(np.ones((5, n_features)), "float64")
    match = f"X has {n_features} features, but KMeans is expecting {N_FEATURES} features as input."
    with pytest.raises(ValueError, match=re.escape(match)):
        getattr(model, method)(X)


# ---------------------------------------------------------------------------- mixed namespaces and devices

# Placement -> the module it needs, which is also the name the error message uses.
LIBRARY_NAMES = {"numpy": "numpy", "torch-cpu": "torch", "strict-cpu": "array_api_strict"}
MIXED_LIBRARIES = [
    ("numpy", "torch-cpu"), ("torch-cpu", "numpy"), ("strict-cpu", "numpy"), ("numpy", "strict-cpu"),
]
# (entry point, the argument that lives elsewhere than X)
MIXED_ARGUMENTS = [
    ("fit", "sample_weight"), ("fit", "init"),
    ("kmeans_plusplus", "sample_weight"), ("score", "sample_weight"),
]


def _placement_or_skip(name: str) -> Any:
    pytest.importorskip(LIBRARY_NAMES[name])
    return make_placement(name)


def _mixed_call(entry: str, name: str, X_placement: Any, other_placement: Any) -> None:
    other = other_placement.asarray(INIT_HOST if name == "init" else WEIGHTS_HOST, "float64")
    _call(entry, X_placement, X_placement.asarray(X_HOST, "float64"), **{name: other})


@pytest.mark.parametrize("entry, name", MIXED_ARGUMENTS, ids=[f"{e}-{n}" for e, n in MIXED_ARGUMENTS])
@pytest.mark.parametrize("x_lib, other_lib", MIXED_LIBRARIES, ids=[f"X:{a}+{b}" for a, b in MIXED_LIBRARIES])
def test_mixed_namespaces(entry, name, x_lib, other_lib):
    X_placement, other_placement = _placement_or_skip(x_lib), _placement_or_skip(other_lib)
    with pytest.raises(TypeError, match=f"{name} is an array of {LIBRARY_NAMES[other_lib]} ") as excinfo:
        _mixed_call(entry, name, X_placement, other_placement)
    assert f"X is an array of {LIBRARY_NAMES[x_lib]};" in str(excinfo.value)


STRICT_DEVICES = {"strict-cpu": "CPU_DEVICE", "strict-device1": "device1"}
STRICT_PAIRS = [("strict-cpu", "strict-device1"), ("strict-device1", "strict-cpu")]


@pytest.mark.parametrize("entry, name", MIXED_ARGUMENTS, ids=[f"{e}-{n}" for e, n in MIXED_ARGUMENTS])
@pytest.mark.parametrize("x_on, other_on", STRICT_PAIRS, ids=[f"X:{a}+{b}" for a, b in STRICT_PAIRS])
def test_mixed_devices(entry, name, x_on, other_on):
    pytest.importorskip("array_api_strict")
    X_placement, other_placement = make_placement(x_on), make_placement(other_on)
    with pytest.raises(ValueError, match=f"{name} is on device .*'{STRICT_DEVICES[other_on]}'") as excinfo:
        _mixed_call(entry, name, X_placement, other_placement)
    assert f"X is on device {X_placement.device!r}" in str(excinfo.value)
    assert STRICT_DEVICES[x_on] in str(excinfo.value)


@pytest.mark.parametrize("dtype", FLOATS)
def test_lists_give_the_same_result_as_arrays(placement, dtype):
    X = placement.asarray(X_HOST, dtype)
    as_arrays = dict(
        sample_weight=placement.asarray(WEIGHTS_HOST, dtype), init=placement.asarray(INIT_HOST, dtype)
    )
    as_lists = dict(sample_weight=WEIGHTS_HOST.tolist(), init=INIT_HOST.tolist())
    for name in ("sample_weight", "init"):
        got = _call("fit", placement, X, **{name: as_lists[name]})
        want = _call("fit", placement, X, **{name: as_arrays[name]})
        np.testing.assert_array_equal(placement.to_numpy(got.cluster_centers_),
                                      placement.to_numpy(want.cluster_centers_))
        np.testing.assert_array_equal(placement.to_numpy(got.labels_), placement.to_numpy(want.labels_))
    model = _fitted(placement, dtype)
    assert model.score(X, sample_weight=as_lists["sample_weight"]) == model.score(
        X, sample_weight=as_arrays["sample_weight"])
    got = kmeans_plusplus(X, N_CLUSTERS, sample_weight=as_lists["sample_weight"], random_state=0)
    want = kmeans_plusplus(X, N_CLUSTERS, sample_weight=as_arrays["sample_weight"], random_state=0)
    np.testing.assert_array_equal(placement.to_numpy(got[1]), placement.to_numpy(want[1]))


def test_lists_of_the_wrong_length_are_refused():
    with pytest.raises(ValueError, match=re.escape(f"sample_weight.shape == (2,), expected ({N_SAMPLES},)")):
        KMeans(N_CLUSTERS).fit(X_HOST, sample_weight=[1.0, 2.0])


# ---------------------------------------------------------------------------- inputs are never modified


def _calls_with_inputs(placement: Any, dtype: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The calls of each entry point, by name, and the input arrays they are given."""
    arrays = {
        "X": placement.asarray(X_HOST, dtype),
        "sample_weight": placement.asarray(WEIGHTS_HOST, dtype),
        "init": placement.asarray(INIT_HOST, dtype),
    }
    X, w = arrays["X"], arrays["sample_weight"]
    model = _fitted(placement, dtype)
    calls = {
        "fit-init": lambda: KMeans(N_CLUSTERS, init=arrays["init"]).fit(X, sample_weight=w),
        "fit-k-means++": lambda: KMeans(N_CLUSTERS, random_state=0).fit(X, sample_weight=w),
        "fit-random": lambda: KMeans(N_CLUSTERS, init="random", random_state=0).fit(X, sample_weight=w),
        "predict": lambda: model.predict(X),
        "transform": lambda: model.transform(X),
        "score": lambda: model.score(X, sample_weight=w),
        "kmeans_plusplus": lambda: kmeans_plusplus(X, N_CLUSTERS, sample_weight=w, random_state=0),
    }
    return calls, arrays


CALLS = ["fit-init", "fit-k-means++", "fit-random", "predict", "transform", "score", "kmeans_plusplus"]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("call", CALLS)
def test_inputs_are_not_modified(placement, call, dtype):
    calls, arrays = _calls_with_inputs(placement, dtype)
    before = {name: _snapshot(placement, array) for name, array in arrays.items()}
    calls[call]()
    for name, array in arrays.items():
        _assert_bit_identical(placement, before[name], array)


def test_fitted_model_does_not_share_memory_with_init():
    """Writing to the fitted centers must not reach the user's init (nor the other way)."""
    init = INIT_HOST.copy()
    model = KMeans(N_CLUSTERS, init=init, max_iter=1).fit(X_HOST)
    assert not np.shares_memory(model.cluster_centers_, init)
    assert not np.shares_memory(model.cluster_centers_, X_HOST)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("call", CALLS)
def test_read_only_numpy_input_is_accepted(call, dtype):
    numpy = make_placement("numpy")
    calls, arrays = _calls_with_inputs(numpy, dtype)
    want = calls[call]()
    for array in arrays.values():
        array.setflags(write=False)
    got = calls[call]()
    if isinstance(got, KMeans):
        got, want = got.cluster_centers_, want.cluster_centers_
    elif isinstance(got, tuple):
        got, want = got[1], want[1]
    np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------------------- before any work


def _bad_fits() -> dict[str, Any]:
    """Ways a fit can fail validation: ``placement -> (params, X, sample_weight)``."""
    X, w = X_HOST, WEIGHTS_HOST
    return {
        "nan-X": lambda p: ({}, p.asarray(_with(X, np.nan)), None),
        "1-D-X": lambda p: ({}, p.asarray(X[0]), None),
        "too-few-samples": lambda p: ({}, p.asarray(X[:2]), None),
        "negative-weight": lambda p: ({}, p.asarray(X), p.asarray(_with(w, -1.0))),
        "weights-wrong-length": lambda p: ({}, p.asarray(X), p.asarray(w[:-1])),
        "init-wrong-shape": lambda p: ({"init": p.asarray(INIT_HOST[:2])}, p.asarray(X), None),
        "init-nan": lambda p: ({"init": p.asarray(_with(INIT_HOST, np.nan))}, p.asarray(X), None),
        "bad-parameter": lambda p: ({"n_clusters": 0}, p.asarray(X), None),
        "bad-random-state": lambda p: ({"random_state": "seed"}, p.asarray(X), None),
    }


BAD_FITS = _bad_fits()
BAD_FIT = pytest.mark.parametrize("bad_fit", BAD_FITS.values(), ids=BAD_FITS.keys())


@BAD_FIT
def test_failed_refit_keeps_the_fitted_model(placement, bad_fit):
    model = _fitted(placement)
    fitted = {name: getattr(model, name) for name in FITTED_ATTRIBUTES}
    centers = _snapshot(placement, model.cluster_centers_)
    params, X, sample_weight = bad_fit(placement)
    model.set_params(**params)
    with pytest.raises((ValueError, TypeError)):
        model.fit(X, sample_weight=sample_weight)
    for name, value in fitted.items():
        assert getattr(model, name) is value, name
    _assert_bit_identical(placement, centers, model.cluster_centers_)


@BAD_FIT
def test_failed_first_fit_leaves_no_fitted_state(placement, bad_fit):
    rng = np.random.default_rng(0)
    rng_state = rng.bit_generator.state
    params, X, sample_weight = bad_fit(placement)
    model = KMeans(N_CLUSTERS, random_state=rng).set_params(**params)
    with pytest.raises((ValueError, TypeError)):
        model.fit(X, sample_weight=sample_weight)
    assert not hasattr(model, "cluster_centers_")
    assert set(vars(model)) == set(model.get_params()), "fit set attributes before failing"
    assert rng.bit_generator.state == rng_state, "random numbers were drawn before the checks"
    with pytest.raises(NotFittedError):
        model.predict(placement.asarray(X_HOST))


@pytest.mark.parametrize(
    "X, sample_weight",
    [(_with(X_HOST, np.nan), None), (X_HOST, _with(WEIGHTS_HOST, -1.0)), (X_HOST[:2], None)],
    ids=["nan-X", "negative-weight", "too-few-samples"],
)
def test_failed_kmeans_plusplus_draws_no_random_numbers(placement, X, sample_weight):
    rng = np.random.default_rng(0)
    rng_state = rng.bit_generator.state
    weights = None if sample_weight is None else placement.asarray(sample_weight)
    with pytest.raises(ValueError):
        kmeans_plusplus(placement.asarray(X), N_CLUSTERS, sample_weight=weights, random_state=rng)
    assert rng.bit_generator.state == rng_state
