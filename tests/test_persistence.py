"""Saving and loading models (``KMeans.save``, ``anykmeans.load``) without pickle, and pickle."""

import json
import pickle

import numpy as np
import pytest

import anykmeans
from anykmeans import KMeans, NotFittedError, load
from anykmeans._persistence import FORMAT_VERSION, ModelFileError


def _blobs(n=90, d=3, dtype="float64", seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-10, 10, size=(3, d))
    return (centers[rng.integers(3, size=n)] + rng.normal(size=(n, d))).astype(dtype)


def _new_data(d=3, dtype="float64"):
    return _blobs(40, d, dtype, seed=1)


def _assert_same_model(loaded, original, X):
    """The loaded model predicts, transforms and scores as the original, and has its attributes."""
    assert type(loaded) is type(original)
    np.testing.assert_array_equal(loaded.predict(X), np.asarray(original.predict(X)))
    np.testing.assert_array_equal(loaded.transform(X), np.asarray(original.transform(X)))
    assert loaded.score(X) == original.score(X)
    np.testing.assert_array_equal(loaded.cluster_centers_, np.asarray(original.cluster_centers_))
    assert loaded.cluster_centers_.dtype == np.asarray(original.cluster_centers_).dtype
    for name in ("inertia_", "n_iter_", "n_features_in_", "_n_features_out", "_fit_stats"):
        assert getattr(loaded, name) == getattr(original, name), name
    assert len(loaded.inertia_history_) == len(original.inertia_history_)
    for mine, theirs in zip(loaded.inertia_history_, original.inertia_history_):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_round_trip_gives_identical_results(tmp_path, dtype):
    X = _blobs(dtype=dtype)
    model = KMeans(3, n_init=3, init="random", random_state=0, max_iter=50, tol=1e-3).fit(X)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = load(path)
    _assert_same_model(loaded, model, _new_data(dtype=dtype))
    np.testing.assert_array_equal(loaded.labels_, model.labels_)
    np.testing.assert_array_equal(loaded._fit_mean, model._fit_mean)
    assert loaded.get_params() == model.get_params()
    assert repr(loaded) == repr(model)
    assert set(vars(loaded)) == set(vars(model))


def test_the_file_has_no_object_arrays_and_a_json_header(tmp_path):
    model = KMeans(3, random_state=0).fit(_blobs())
    path = tmp_path / "model.npz"
    model.save(str(path))
    with np.load(path, allow_pickle=False) as archive:
        entries = {key: archive[key] for key in archive.files}
    assert all(array.dtype != object for array in entries.values())
    assert {"__meta__", "cluster_centers_", "labels_", "_fit_mean", "inertia_history_0"} <= set(entries)
    meta_entry = entries["__meta__"]
    assert meta_entry.shape == () and meta_entry.dtype.kind == "U"
    meta = json.loads(str(meta_entry))
    assert meta["format"] == "anykmeans.KMeans" and meta["format_version"] == FORMAT_VERSION == 1
    assert meta["anykmeans_version"] == anykmeans.__version__
    assert meta["estimator"] == "KMeans"
    assert meta["params"]["n_clusters"] == 3 and meta["params"]["init"] == "k-means++"
    assert meta["attributes"]["n_iter_"] == model.n_iter_
    assert meta["array_lists"] == {"inertia_history_": 1}


def test_the_file_is_written_at_exactly_the_path_given(tmp_path):
    model = KMeans(2, random_state=0).fit(_blobs())
    path = tmp_path / "model.kmeans"
    model.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.kmeans"]  # no ".npz" added, no temporary left
    _assert_same_model(load(str(path)), model, _new_data())
    # Saving again replaces the file.
    other = KMeans(3, random_state=1).fit(_blobs())
    other.save(path)
    assert load(path).n_clusters == 3


def test_an_array_init_is_saved_as_an_array_entry(tmp_path):
    X = _blobs()
    init = X[:3].copy()
    model = KMeans(3, init=init, n_init=1, random_state=0).fit(X)
    model.save(tmp_path / "model.npz")
    with np.load(tmp_path / "model.npz", allow_pickle=False) as archive:
        np.testing.assert_array_equal(archive["param:init"], init)
        assert json.loads(str(archive["__meta__"]))["params"]["init"] == {"__array__": "param:init"}
    loaded = load(tmp_path / "model.npz")
    assert isinstance(loaded.init, np.ndarray)
    np.testing.assert_array_equal(loaded.init, init)
    # Refitting the loaded model starts from the same centers: the same model again.
    refit = KMeans(**loaded.get_params()).fit(X)
    np.testing.assert_array_equal(refit.cluster_centers_, model.cluster_centers_)


@pytest.mark.parametrize(
    "random_state",
    [np.random.default_rng(3), np.random.RandomState(4), np.random.Generator(np.random.MT19937(5))],
    ids=["Generator", "RandomState", "MT19937"],
)
def test_a_numpy_random_state_is_saved_with_its_state(tmp_path, random_state):
    model = KMeans(3, random_state=random_state).fit(_blobs())
    model.save(tmp_path / "model.npz")
    loaded = load(tmp_path / "model.npz")
    assert type(loaded.random_state) is type(random_state)
    # The loaded generator continues where the saved one was.
    np.testing.assert_array_equal(loaded.random_state.random(4), model.random_state.random(4))


def test_a_callable_init_is_refused_with_what_to_do(tmp_path):
    def my_init(X, n_clusters, random_state):
        return X[:n_clusters]

    model = KMeans(3, init=my_init, n_init=1).fit(_blobs())
    path = tmp_path / "model.npz"
    with pytest.raises(ValueError, match="'init' parameter is a callable") as exc:
        model.save(path)
    assert "set_params(init=km.cluster_centers_)" in str(exc.value) and "'k-means++'" in str(exc.value)
    assert not path.exists() and list(tmp_path.iterdir()) == []
    # Done as the message says, it saves.
    model.set_params(init=model.cluster_centers_).save(path)
    _assert_same_model(load(path), model, _new_data())


def test_a_refused_save_leaves_an_existing_file_as_it_was(tmp_path):
    path = tmp_path / "model.npz"
    KMeans(2, random_state=0).fit(_blobs()).save(path)
    with pytest.raises(ValueError):
        KMeans(3, init=lambda X, k, random_state: X[:k], n_init=1).fit(_blobs()).save(path)
    assert load(path).n_clusters == 2


def test_an_unfitted_model_cannot_be_saved(tmp_path):
    with pytest.raises(NotFittedError, match="not fitted yet"):
        KMeans(3).save(tmp_path / "model.npz")
    assert list(tmp_path.iterdir()) == []


def test_feature_names_are_stored_as_text_and_restored(tmp_path):
    model = KMeans(3, random_state=0).fit(_blobs())
    # Set as scikit-learn sets it for DataFrame input: an object array of str.
    model.feature_names_in_ = np.asarray(["width", "height", "depth"], dtype=object)
    model.set_output(transform="default")
    model.save(tmp_path / "model.npz")
    with np.load(tmp_path / "model.npz", allow_pickle=False) as archive:
        assert archive["feature_names_in_"].dtype.kind == "U"
    loaded = load(tmp_path / "model.npz")
    assert loaded.feature_names_in_.dtype == object
    assert loaded.feature_names_in_.tolist() == ["width", "height", "depth"]
    assert loaded._sklearn_output_config == {"transform": "default"}


def _rewrite(source, target, change):
    """Copy the model file ``source`` to ``target`` with its metadata changed by ``change``."""
    with np.load(source, allow_pickle=False) as archive:
        entries = {key: archive[key] for key in archive.files}
    meta = json.loads(str(entries["__meta__"]))
    change(meta)
    entries["__meta__"] = np.array(json.dumps(meta))
    np.savez(target, **entries)


def test_a_newer_format_version_is_refused_naming_both_versions(tmp_path):
    KMeans(2, random_state=0).fit(_blobs()).save(tmp_path / "model.npz")
    newer = tmp_path / "newer.npz"
    _rewrite(tmp_path / "model.npz", newer, lambda meta: meta.update(format_version=2, anykmeans_version="9.0"))
    with pytest.raises(ModelFileError) as exc:
        load(newer)
    message = str(exc.value)
    assert str(newer) in message
    assert "model format version 2 (written by anykmeans 9.0)" in message
    assert "reads format version 1" in message and "upgrade anykmeans" in message


def test_files_that_are_not_anykmeans_models_are_refused_naming_the_file(tmp_path):
    other = tmp_path / "other.npz"
    np.savez(other, weights=np.arange(3))
    with pytest.raises(ModelFileError, match="has no '__meta__' entry") as exc:
        load(other)
    assert str(other) in str(exc.value)

    text = tmp_path / "data.csv"
    text.write_text("1,2\n3,4\n")
    with pytest.raises(ModelFileError, match="is not an anykmeans model file: expected a .npz archive"):
        load(text)

    array = tmp_path / "array.npy"
    np.save(array, np.ones((2, 2)))
    with pytest.raises(ModelFileError, match="holds a single NumPy array"):
        load(array)

    KMeans(2, random_state=0).fit(_blobs()).save(tmp_path / "model.npz")
    foreign = tmp_path / "foreign.npz"
    _rewrite(tmp_path / "model.npz", foreign, lambda meta: meta.update(format="something.else"))
    with pytest.raises(ModelFileError, match="does not describe a 'anykmeans.KMeans' model"):
        load(foreign)

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes((tmp_path / "model.npz").read_bytes()[:300])
    with pytest.raises(ModelFileError, match="is a damaged .npz archive"):
        load(truncated)

    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.npz")
    assert issubclass(ModelFileError, ValueError)


def test_a_model_fitted_on_torch_loads_into_numpy(tmp_path):
    torch = pytest.importorskip("torch")
    X = _blobs(dtype="float32")
    model = KMeans(3, random_state=0).fit(torch.asarray(X))
    assert isinstance(model.cluster_centers_, torch.Tensor)
    model.save(tmp_path / "model.npz")
    loaded = load(tmp_path / "model.npz")
    for name in ("cluster_centers_", "labels_", "_fit_mean"):
        assert isinstance(getattr(loaded, name), np.ndarray), name
    np.testing.assert_array_equal(loaded.cluster_centers_, model.cluster_centers_.numpy())
    X_new = _new_data(dtype="float32")
    np.testing.assert_array_equal(loaded.predict(X_new), model.predict(torch.asarray(X_new)).numpy())
    np.testing.assert_array_equal(loaded.predict(X_new), KMeans(3, random_state=0).fit(X).predict(X_new))


def test_a_model_fitted_on_array_api_strict_loads_into_numpy(tmp_path):
    xp = pytest.importorskip("array_api_strict")
    X = _blobs()
    model = KMeans(3, random_state=0).fit(xp.asarray(X))
    model.save(tmp_path / "model.npz")
    loaded = load(tmp_path / "model.npz")
    assert isinstance(loaded.cluster_centers_, np.ndarray) and isinstance(loaded.labels_, np.ndarray)
    np.testing.assert_array_equal(loaded.cluster_centers_, np.asarray(model.cluster_centers_))
    X_new = _new_data()
    np.testing.assert_array_equal(loaded.predict(X_new), np.asarray(model.predict(xp.asarray(X_new))))
    assert loaded._fit_stats["namespace"] == "array_api_strict"


def test_a_model_fitted_on_dask_loads_into_numpy(tmp_path):
    da = pytest.importorskip("dask.array")
    X = _blobs()
    model = KMeans(3, random_state=0).fit(da.from_array(X, chunks=(30, 3)))
    model.save(tmp_path / "model.npz")
    loaded = load(tmp_path / "model.npz")
    assert isinstance(loaded.cluster_centers_, np.ndarray)
    np.testing.assert_array_equal(loaded.cluster_centers_, model.cluster_centers_.compute())
    np.testing.assert_array_equal(loaded.labels_, model.labels_.compute())


def test_pickle_round_trip_gives_identical_results():
    X = _blobs()
    model = KMeans(3, random_state=0).fit(X)
    restored = pickle.loads(pickle.dumps(model))
    _assert_same_model(restored, model, _new_data())
    np.testing.assert_array_equal(restored.labels_, model.labels_)


def _cupy_or_skip():
    cupy = pytest.importorskip("cupy")
    from anykmeans._placement import cuda_devices

    if cuda_devices()[2] is not None:
        pytest.skip("no CUDA device")
    return cupy


@pytest.mark.gpu
def test_a_loaded_model_predicts_identically_on_the_gpu(tmp_path):
    cupy = _cupy_or_skip()
    X = _blobs(2000, 8)
    km = KMeans(3, random_state=0).fit(X)
    km.save(tmp_path / "model.npz")
    loaded = load(tmp_path / "model.npz")
    with anykmeans.config_context(device="cuda"):
        on_gpu = loaded.predict(X)  # NumPy in: computed on the GPU, NumPy out
    np.testing.assert_array_equal(on_gpu, km.predict(X))
    labels = loaded.predict(cupy.asarray(X))  # CuPy in: the centers move to the data
    assert isinstance(labels, cupy.ndarray)
    np.testing.assert_array_equal(cupy.asnumpy(labels), km.predict(X))


@pytest.mark.gpu
def test_a_model_fitted_on_cupy_saves_and_loads_into_numpy(tmp_path):
    cupy = _cupy_or_skip()
    X = _blobs(2000, 8)
    km = KMeans(3, random_state=0).fit(cupy.asarray(X))
    km.save(tmp_path / "model.npz")
    loaded = load(tmp_path / "model.npz")
    assert isinstance(loaded.cluster_centers_, np.ndarray) and loaded._fit_stats["namespace"].endswith("cupy")
    np.testing.assert_array_equal(loaded.predict(X), cupy.asnumpy(km.predict(cupy.asarray(X))))


def test_a_minibatch_model_loads_as_minibatch_and_predicts_identically(tmp_path):
    X = _blobs(600)
    km = anykmeans.MiniBatchKMeans(3, batch_size=64, random_state=0).fit(X)
    km.save(tmp_path / "model.npz")
    loaded = load(tmp_path / "model.npz")
    assert type(loaded) is anykmeans.MiniBatchKMeans
    assert loaded.get_params() == km.get_params()
    np.testing.assert_array_equal(loaded.predict(X), km.predict(X))
    np.testing.assert_array_equal(loaded.cluster_centers_, km.cluster_centers_)
    assert loaded.n_steps_ == km.n_steps_ and loaded.inertia_ == km.inertia_
