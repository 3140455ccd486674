"""Output follows input: namespace, device and dtype; no implicit transfers; device config."""

import numpy as np
import pytest

import anykmeans
from anykmeans._arrays import namespace_and_device


def _blobs(n=400, d=3, k=4, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-20, 20, size=(k, d))
    return centers[rng.integers(k, size=n)] + rng.normal(size=(n, d))


def _assert_placed(placement, array, dtype=None):
    xp, device = namespace_and_device(array)
    assert xp is placement.xp
    assert device == placement.device
    if dtype is not None:
        assert array.dtype == dtype


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("init", ["k-means++", "random", "array", "callable"])
def test_every_output_follows_the_input(placement, dtype, init):
    X_host = _blobs()
    X = placement.asarray(X_host, dtype)
    float_dtype = placement.dtype(dtype)
    if init == "array":
        init = placement.asarray(X_host[:4], dtype)
    elif init == "callable":
        def init(data, n_clusters, random_state):
            # Receives the data in its own namespace and device, as scikit-learn passes it.
            _assert_placed(placement, data, float_dtype)
            rows = random_state.choice(data.shape[0], size=n_clusters, replace=False)
            return placement.xp.take(data, placement.asarray(rows, "int64"), axis=0)

    model = anykmeans.KMeans(4, init=init, random_state=0).fit(X)

    _assert_placed(placement, model.cluster_centers_, float_dtype)
    _assert_placed(placement, model.labels_)
    assert placement.xp.isdtype(model.labels_.dtype, "integral")
    assert type(model.inertia_) is float and type(model.n_iter_) is int
    _assert_placed(placement, model.predict(X))
    _assert_placed(placement, model.transform(X), float_dtype)
    _assert_placed(placement, model.fit_predict(X))
    _assert_placed(placement, model.fit_transform(X), float_dtype)
    assert type(model.score(X)) is float
    # The blobs are far apart: every run finds them.
    centers = np.sort(placement.to_numpy(model.cluster_centers_), axis=0)
    labels = placement.to_numpy(model.labels_)
    expected = np.sort(np.stack([X_host[labels == j].mean(0) for j in range(4)]), axis=0)
    np.testing.assert_allclose(centers, expected, rtol=1e-4 if dtype == "float32" else 1e-10)


@pytest.mark.parametrize("dtype", ["int32", "int64", "bool"])
def test_integer_and_bool_input_become_the_default_float(placement, dtype):
    X = placement.asarray(np.abs(_blobs()).round(), dtype)
    model = anykmeans.KMeans(2, random_state=0).fit(X)
    default = placement.xp.__array_namespace_info__().default_dtypes(device=placement.device)
    assert model.cluster_centers_.dtype == default["real floating"]
    _assert_placed(placement, model.transform(X), default["real floating"])


def test_kmeans_plusplus_follows_input_and_returns_rows(placement):
    X_host = _blobs()
    X = placement.asarray(X_host, "float32")
    centers, indices = anykmeans.kmeans_plusplus(X, 4, random_state=0)
    _assert_placed(placement, centers, placement.xp.float32)
    _assert_placed(placement, indices)
    np.testing.assert_array_equal(
        placement.to_numpy(centers), X_host.astype("float32")[placement.to_numpy(indices)]
    )
    # One seed per blob: greedy k-means++ does not put two seeds in one of 4 far-apart blobs.
    labels = anykmeans.KMeans(4, random_state=0).fit(X).predict(centers)
    assert len(set(placement.to_numpy(labels).tolist())) == 4


def test_same_seed_same_initial_centers_on_every_namespace(placement):
    X_host = _blobs(n=300, d=5, k=6, seed=2)
    expected = anykmeans.kmeans_plusplus(X_host, 6, random_state=123)[1]
    got = anykmeans.kmeans_plusplus(placement.asarray(X_host), 6, random_state=123)[1]
    np.testing.assert_array_equal(placement.to_numpy(got), expected)


def test_fits_are_bit_identical_run_to_run(placement):
    X = placement.asarray(_blobs(n=2000, d=6, k=5, seed=4), "float32")
    first = anykmeans.KMeans(5, n_init=3, init="random", random_state=7).fit(X)
    second = anykmeans.KMeans(5, n_init=3, init="random", random_state=7).fit(X)
    np.testing.assert_array_equal(
        placement.to_numpy(first.cluster_centers_), placement.to_numpy(second.cluster_centers_)
    )
    assert first.inertia_ == second.inertia_


def test_predict_on_another_namespace_moves_the_centers_not_the_data(placement):
    X_host = _blobs()
    model = anykmeans.KMeans(4, random_state=0).fit(X_host)
    X = placement.asarray(X_host)
    labels = model.predict(X)
    _assert_placed(placement, labels)
    np.testing.assert_array_equal(placement.to_numpy(labels), model.labels_)
    assert isinstance(model.cluster_centers_, np.ndarray)


def test_device_cpu_runs_non_host_input_on_numpy_and_returns_it_where_it_came_from():
    strict = pytest.importorskip("array_api_strict")
    device1 = strict.Device("device1")
    X_host = _blobs()
    X = strict.asarray(X_host, device=device1)
    with anykmeans.config_context(device="cpu"):
        model = anykmeans.KMeans(4, random_state=0).fit(X)
        labels = model.predict(X)
    assert model.cluster_centers_.device == device1 and labels.device == device1
    reference = anykmeans.KMeans(4, random_state=0).fit(X_host)
    np.testing.assert_allclose(
        np.asarray(strict.asarray(model.cluster_centers_, device=strict.Device("CPU_DEVICE"), copy=True)),
        reference.cluster_centers_,
        rtol=1e-12,
    )


def test_device_cpu_keeps_host_input_where_it_is():
    torch = pytest.importorskip("torch")
    X = torch.asarray(_blobs())
    with anykmeans.config_context(device="cpu"):
        model = anykmeans.KMeans(4, random_state=0).fit(X)
    assert isinstance(model.cluster_centers_, torch.Tensor)


def test_array_likes_become_numpy():
    rows = _blobs(n=60).tolist()
    model = anykmeans.KMeans(3, random_state=0).fit(rows)
    assert isinstance(model.cluster_centers_, np.ndarray) and model.cluster_centers_.dtype == np.float64
    assert isinstance(model.predict(rows), np.ndarray)


def test_fewer_distinct_clusters_than_asked_warns_with_the_count(placement):
    # Three distinct points asked for five clusters: two clusters stay empty of distinct
    # points, as scikit-learn warns. The count is taken without a sort on NumPy.
    X_host = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0], [10.0, 0.0]]), 20, axis=0)
    X = placement.asarray(X_host)
    with pytest.warns(anykmeans.ConvergenceWarning, match=r"distinct clusters \(3\) .* \(5\)"):
        anykmeans.KMeans(5, n_init=1, random_state=0).fit(X)
