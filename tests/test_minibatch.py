"""MiniBatchKMeans: scikit-learn's algorithm, draws and results, on every namespace.

With a ``numpy.random.RandomState`` seeded alike, anykmeans draws scikit-learn's numbers in
scikit-learn's order (validation rows, init rows, seeding, each batch, each reassignment), so
the fits are compared with scikit-learn's to rounding, not statistically.
"""

from __future__ import annotations

import json
import pickle
import re
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn import datasets  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.cluster import MiniBatchKMeans as SklearnMiniBatchKMeans  # noqa: E402

import anykmeans  # noqa: E402
from anykmeans import InvalidParameterError, MiniBatchKMeans  # noqa: E402
from anykmeans._minibatch import _BatchSampler, _shift  # noqa: E402
from conftest import make_placement  # noqa: E402


def _blobs():
    X, _ = datasets.make_blobs(n_samples=3000, n_features=12, centers=8, cluster_std=2.5, random_state=3)
    return X


# name -> (loader, n_clusters); digits is integer-valued: exact distance ties are common.
DATASETS = {
    "blobs": (_blobs, 8),
    "digits": (lambda: datasets.load_digits().data, 10),
}

EXACT = dict(reassignment_ratio=0, tol=0, max_no_improvement=None)


def _init(X, k, seed=0):
    return X[np.random.default_rng(seed).choice(X.shape[0], size=k, replace=False)]


def _weights(n, dtype="float64"):
    return np.random.default_rng(1).uniform(0.5, 2.0, size=n).astype(dtype)


def _relative(ours, theirs):
    return float(np.max(np.abs(np.asarray(ours) - theirs)) / np.max(np.abs(theirs)))


def _assert_same_fit(ours, theirs, rtol=1e-6, labels=True):
    assert _relative(ours.cluster_centers_, theirs.cluster_centers_) <= rtol
    assert ours.n_steps_ == theirs.n_steps_
    assert ours.inertia_ == pytest.approx(theirs.inertia_, rel=rtol)
    if labels:
        np.testing.assert_array_equal(ours.labels_, theirs.labels_)


# ---------------------------------------------------------------- parity with scikit-learn


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("seed", [0, 3, 6, 8])
@pytest.mark.parametrize("name", list(DATASETS))
def test_same_init_and_draws_give_scikit_learns_fit(name, seed, weighted):
    # Seeds 3, 6 and 8 on digits have rows exactly as far from two centers in the first
    # batch: a shift by the exact mean would round the tie away (see _shift).
    loader, k = DATASETS[name]
    X = loader()
    init = _init(X, k, seed)
    weights = _weights(X.shape[0]) if weighted else None
    params = dict(init=init, random_state=None, **EXACT)
    theirs = SklearnMiniBatchKMeans(k, **{**params, "random_state": np.random.RandomState(seed)})
    theirs.fit(X, sample_weight=weights)
    ours = MiniBatchKMeans(k, **{**params, "random_state": np.random.RandomState(seed)})
    ours.fit(X, sample_weight=weights)
    _assert_same_fit(ours, theirs)
    assert ours.n_iter_ == theirs.n_iter_ == 100  # no early stop: max_iter passes
    assert ours.n_steps_ == 100 * X.shape[0] // 1024


@pytest.mark.parametrize(
    "params",
    [
        {},  # the defaults: reassignments and the early stop on the averaged inertia
        {"batch_size": 100, "max_iter": 20, "reassignment_ratio": 0.2},
        {"batch_size": 256, "tol": 1e-3},
        {"batch_size": 64, "max_no_improvement": 0},
        {"batch_size": 500, "init_size": 700, "compute_labels": False},
    ],
    ids=["defaults", "reassignments", "tol", "max_no_improvement=0", "init_size-no-labels"],
)
@pytest.mark.parametrize("name", list(DATASETS))
def test_stopping_rules_and_reassignments_match_scikit_learn(name, params):
    loader, k = DATASETS[name]
    X = loader()
    init = _init(X, k)
    theirs = SklearnMiniBatchKMeans(k, init=init, random_state=np.random.RandomState(2), **params).fit(X)
    ours = MiniBatchKMeans(k, init=init, random_state=np.random.RandomState(2), **params).fit(X)
    compute_labels = params.get("compute_labels", True)
    _assert_same_fit(ours, theirs, labels=compute_labels)
    assert ours.n_iter_ == theirs.n_iter_
    assert hasattr(ours, "labels_") == compute_labels


@pytest.mark.parametrize("n_init", [1, 3])
@pytest.mark.parametrize("init", ["k-means++", "random"])
@pytest.mark.parametrize("name", list(DATASETS))
def test_own_inits_match_scikit_learns(name, init, n_init):
    # The inits draw scikit-learn's numbers too: the subsample, k-means++'s trials or the
    # random rows, and the validation set that picks the best of n_init.
    loader, k = DATASETS[name]
    X = loader()
    for weights in (None, _weights(X.shape[0])):
        theirs = SklearnMiniBatchKMeans(k, init=init, n_init=n_init, random_state=np.random.RandomState(4))
        ours = MiniBatchKMeans(k, init=init, n_init=n_init, random_state=np.random.RandomState(4))
        _assert_same_fit(ours.fit(X, sample_weight=weights), theirs.fit(X, sample_weight=weights))


def test_float32_matches_scikit_learn():
    X = datasets.load_digits().data.astype(np.float32)
    init = _init(X, 10)
    theirs = SklearnMiniBatchKMeans(10, init=init, random_state=np.random.RandomState(0)).fit(X)
    ours = MiniBatchKMeans(10, init=init, random_state=np.random.RandomState(0)).fit(X)
    assert ours.cluster_centers_.dtype == np.float32
    _assert_same_fit(ours, theirs, rtol=1e-4)


def test_predict_transform_score_match_scikit_learn():
    X = _blobs()
    init = _init(X, 8)
    theirs = SklearnMiniBatchKMeans(8, init=init, random_state=np.random.RandomState(0)).fit(X)
    ours = MiniBatchKMeans(8, init=init, random_state=np.random.RandomState(0)).fit(X)
    new = X[::3] + 0.25
    weights = np.linspace(0.1, 3.0, new.shape[0])
    np.testing.assert_array_equal(ours.predict(new), theirs.predict(new))
    np.testing.assert_allclose(ours.transform(new), theirs.transform(new), rtol=1e-6)
    assert ours.score(new, sample_weight=weights) == pytest.approx(theirs.score(new, sample_weight=weights), rel=1e-6)
    again = MiniBatchKMeans(8, init=init, random_state=np.random.RandomState(0))
    np.testing.assert_array_equal(again.fit_predict(X), theirs.labels_)


def test_verbose_output_matches_scikit_learn(capsys):
    X = datasets.load_digits().data
    params = dict(init="random", n_init=2, batch_size=100, max_iter=3, reassignment_ratio=0.5)
    SklearnMiniBatchKMeans(10, random_state=np.random.RandomState(0), verbose=1, **params).fit(X)
    expected = capsys.readouterr().out.splitlines()
    MiniBatchKMeans(10, random_state=np.random.RandomState(0), verbose=1, **params).fit(X)
    ours = capsys.readouterr().out.splitlines()

    def shape(lines):  # the words, without the numbers
        return [re.sub(r"[-+.\deE]+", "#", line) for line in lines]

    assert shape(ours) == shape(expected)
    assert any("Reassigning" in line for line in ours)
    assert any(line.startswith("Converged") for line in ours)


@pytest.mark.parametrize("name", list(DATASETS))
def test_default_fit_inertia_close_to_scikit_learns(name):
    # Our own random streams (Generators), scikit-learn's defaults: the same algorithm lands
    # within 2% on average over 5 seeds (single fits vary by several percent either way).
    loader, k = DATASETS[name]
    X = loader()
    ours = [MiniBatchKMeans(k, random_state=seed).fit(X).inertia_ for seed in range(5)]
    theirs = [SklearnMiniBatchKMeans(k, random_state=seed).fit(X).inertia_ for seed in range(5)]
    assert np.mean(ours) == pytest.approx(np.mean(theirs), rel=0.02)


@pytest.mark.slow
def test_default_fit_inertia_close_to_scikit_learns_on_a_million_rows():
    X, _ = datasets.make_blobs(n_samples=1_000_000, n_features=10, centers=20, cluster_std=3.0, random_state=0)
    # Three seeds, not five: scikit-learn renormalises the weights of all rows for every
    # batch (O(n) a step), and each of its fits takes about 50 s here. Over a million rows
    # single fits vary less (within 5% of each other here).
    ours = [MiniBatchKMeans(20, random_state=seed).fit(X).inertia_ for seed in range(3)]
    theirs = [SklearnMiniBatchKMeans(20, random_state=seed).fit(X).inertia_ for seed in range(3)]
    assert np.mean(ours) == pytest.approx(np.mean(theirs), rel=0.02)


def test_batch_draws_are_numpys_weighted_choice():
    # The sampler is what scikit-learn calls every step: rng.choice(n, size, p=w / w.sum()).
    for dtype in ("float64", "float32"):
        weights = _weights(5000, dtype)
        weights[::7] = 0
        for make in (lambda: np.random.RandomState(3), lambda: np.random.default_rng(3)):
            sampler, rng, reference = _BatchSampler(weights), make(), make()
            for size in (1, 1024, 4096):
                drawn = sampler.draw(rng, size)
                expected = reference.choice(5000, size, p=weights / weights.sum(), replace=True)
                np.testing.assert_array_equal(drawn, expected)
            assert not np.any(weights[drawn] == 0)


# ---------------------------------------------------------------- partial_fit


def _chunks(n, count=6):
    return np.array_split(np.arange(n), count)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("init", ["array", "k-means++"])
@pytest.mark.parametrize("name", list(DATASETS))
def test_partial_fit_matches_scikit_learns(name, init, weighted):
    loader, k = DATASETS[name]
    X = loader()
    weights = _weights(X.shape[0]) if weighted else None
    init = _init(X, k) if init == "array" else init
    theirs = SklearnMiniBatchKMeans(k, init=init, batch_size=200, random_state=np.random.RandomState(1))
    ours = MiniBatchKMeans(k, init=init, batch_size=200, random_state=np.random.RandomState(1))
    for rows in _chunks(X.shape[0]):
        w = None if weights is None else weights[rows]
        theirs.partial_fit(X[rows], sample_weight=w)
        ours.partial_fit(X[rows], sample_weight=w)
        _assert_same_fit(ours, theirs)  # labels_ and inertia_: those of the chunk
    assert ours.n_steps_ == 6
    assert not hasattr(ours, "n_iter_")  # as scikit-learn: partial_fit takes steps, not passes


def test_partial_fit_after_fit_continues_as_scikit_learns():
    X = _blobs()
    init = _init(X, 8)
    theirs = SklearnMiniBatchKMeans(8, init=init, random_state=np.random.RandomState(0), max_iter=2).fit(X)
    ours = MiniBatchKMeans(8, init=init, random_state=np.random.RandomState(0), max_iter=2).fit(X)
    for rows in _chunks(X.shape[0], 4):
        theirs.partial_fit(X[rows] + 1.0)
        ours.partial_fit(X[rows] + 1.0)
    _assert_same_fit(ours, theirs)


def test_partial_fit_reassigns_starved_centers_as_scikit_learn():
    # Two centers far from all the data never win a row: their counts stay 0 and they are
    # moved to rows of the chunk.
    X = _blobs()
    init = np.vstack([X[:4], np.full((2, X.shape[1]), 1e3)])
    theirs = SklearnMiniBatchKMeans(6, init=init, reassignment_ratio=0.5, random_state=np.random.RandomState(0))
    ours = MiniBatchKMeans(6, init=init, reassignment_ratio=0.5, random_state=np.random.RandomState(0))
    for rows in _chunks(X.shape[0]):
        theirs.partial_fit(X[rows])
        ours.partial_fit(X[rows])
    _assert_same_fit(ours, theirs)
    assert np.abs(ours.cluster_centers_).max() < 100  # nothing left out at 1e3


def test_partial_fit_checks_later_chunks():
    X = _blobs()
    km = MiniBatchKMeans(8, random_state=0)
    with pytest.raises(ValueError, match="n_samples=5 should be >= n_clusters=8"):
        km.partial_fit(X[:5])
    km.partial_fit(X[:500])
    with pytest.raises(ValueError, match="X has 3 features, but MiniBatchKMeans is expecting 12 features"):
        km.partial_fit(X[:50, :3])
    km.partial_fit(X[:3])  # later chunks may be smaller than n_clusters
    # A chunk of another dtype is cast to the model's.
    km.partial_fit(X[500:900].astype(np.float32))
    assert km.cluster_centers_.dtype == np.float64
    with pytest.raises(ValueError, match="fitted with 8 clusters"):
        km.set_params(n_clusters=4).partial_fit(X[:100])


def test_partial_fit_chunks_from_several_libraries():
    torch = pytest.importorskip("torch")
    X = _blobs()
    chunks = _chunks(X.shape[0])
    reference = MiniBatchKMeans(8, random_state=np.random.RandomState(0))
    mixed = MiniBatchKMeans(8, random_state=np.random.RandomState(0))
    for i, rows in enumerate(chunks):
        reference.partial_fit(X[rows])
        mixed.partial_fit(torch.asarray(X[rows]) if i % 2 else X[rows])
        # Each call's results are placed as its input.
        assert isinstance(mixed.cluster_centers_, torch.Tensor) == bool(i % 2)
    centers = mixed.cluster_centers_.numpy()
    np.testing.assert_allclose(centers, reference.cluster_centers_, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------- namespaces and devices


def _small_digits():
    X = datasets.load_digits().data[:900]
    return X, _weights(X.shape[0])


def test_fit_on_every_namespace_equals_numpys(placement):
    X, weights = _small_digits()
    params = dict(n_clusters=10, n_init=2, init="random", batch_size=128, max_iter=5)
    reference = MiniBatchKMeans(random_state=np.random.RandomState(0), **params).fit(X, sample_weight=weights)
    model = MiniBatchKMeans(random_state=np.random.RandomState(0), **params)
    model.fit(placement.asarray(X), sample_weight=placement.asarray(weights))

    centers = model.cluster_centers_
    assert type(centers) is type(placement.asarray(X[:2]))
    np.testing.assert_allclose(placement.to_numpy(centers), reference.cluster_centers_, rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(placement.to_numpy(model.labels_), reference.labels_)
    assert model.inertia_ == pytest.approx(reference.inertia_, rel=1e-10)
    assert model.n_steps_ == reference.n_steps_ and model.n_iter_ == reference.n_iter_
    new = placement.asarray(X[::5] + 0.5)
    np.testing.assert_array_equal(placement.to_numpy(model.predict(new)), reference.predict(X[::5] + 0.5))


def test_partial_fit_on_every_namespace_equals_numpys(placement):
    X, weights = _small_digits()
    reference = MiniBatchKMeans(10, random_state=np.random.RandomState(0), reassignment_ratio=0.1)
    model = MiniBatchKMeans(10, random_state=np.random.RandomState(0), reassignment_ratio=0.1)
    for rows in _chunks(X.shape[0], 5):
        reference.partial_fit(X[rows], sample_weight=weights[rows])
        model.partial_fit(placement.asarray(X[rows]), sample_weight=placement.asarray(weights[rows]))
    np.testing.assert_allclose(
        placement.to_numpy(model.cluster_centers_), reference.cluster_centers_, rtol=1e-10, atol=1e-10
    )
    np.testing.assert_array_equal(placement.to_numpy(model.labels_), reference.labels_)
    assert model.inertia_ == pytest.approx(reference.inertia_, rel=1e-10)


# ---------------------------------------------------------------- numerics


def test_exact_ties_go_to_the_lower_index():
    # Integer rows; [1, 1] is exactly as far from both initial centers. The first column's
    # mean, 7/3, is not representable: a shift by it would round the tie one way or the
    # other. The rounded shift keeps it exact, and the lower index wins, as in scikit-learn.
    X = np.array([[0, 0], [2, 0], [1, 1], [0, 2], [9, 1], [2, 2]], dtype=float)
    init = np.array([[0.0, 1.0], [2.0, 1.0]])
    for cls in (SklearnMiniBatchKMeans, MiniBatchKMeans):
        km = cls(2, init=init, batch_size=6, random_state=np.random.RandomState(0), **EXACT).partial_fit(X)
        # [0, 0], [1, 1], [0, 2] to center 0; [2, 0], [9, 1], [2, 2] to center 1.
        np.testing.assert_array_equal(np.asarray(km._counts), [3.0, 3.0])
        np.testing.assert_allclose(km.cluster_centers_, [[1 / 3, 1.0], [13 / 3, 1.0]], rtol=1e-15)
    # Each column's mean rounded to a multiple of a power of two at most 1/16 of its range
    # (9 -> 1/2, 2 -> 1/8).
    shift, mean = _shift(X, xp=np)
    assert shift.tolist() == [2.5, 1.0] and mean.tolist() == np.mean(X, axis=0).tolist()


def test_data_far_from_the_origin_keeps_its_precision():
    # Translating the data translates the centers: the fit works on shifted rows. In
    # float32, unshifted expanded distances at 1e4 from the origin would lose all precision
    # (|x|^2 ~ 1e9 against distances ~ 1).
    X = _blobs().astype(np.float32)
    init = _init(X, 8)
    near = MiniBatchKMeans(8, init=init, random_state=np.random.RandomState(0)).fit(X)
    offset = np.float32(1e4)
    far = MiniBatchKMeans(8, init=init + offset, random_state=np.random.RandomState(0)).fit(X + offset)
    np.testing.assert_array_equal(far.labels_, near.labels_)
    np.testing.assert_allclose(far.cluster_centers_ - offset, near.cluster_centers_, atol=2e-2)
    assert far.inertia_ == pytest.approx(near.inertia_, rel=1e-3)


# ---------------------------------------------------------------- the estimator API


def test_parameters_are_scikit_learns():
    ours = MiniBatchKMeans().get_params()
    theirs = SklearnMiniBatchKMeans().get_params()
    # scikit-learn's, with their defaults, and one of ours: spherical k-means.
    assert ours.pop("metric") == "euclidean"
    assert ours == theirs
    model = MiniBatchKMeans(5, batch_size=64, random_state=3)
    twin = clone(model)
    assert twin is not model and twin.get_params() == model.get_params()


INVALID = [
    ("n_clusters", 0), ("n_clusters", 1.5), ("init", "foo"), ("max_iter", 0), ("batch_size", 0),
    ("batch_size", 2.5), ("verbose", -1), ("compute_labels", "yes"), ("tol", -1.0),
    ("max_no_improvement", -1), ("max_no_improvement", 1.5), ("init_size", 0), ("n_init", 0),
    ("n_init", "many"), ("reassignment_ratio", -0.1), ("reassignment_ratio", "x"),
]


def _sorted_options(message):
    return re.sub(r"\{([^}]*)\}", lambda m: "{" + ", ".join(sorted(m.group(1).split(", "))) + "}", message)


@pytest.mark.parametrize("name, value", INVALID, ids=[f"{n}={v!r}" for n, v in INVALID])
def test_invalid_parameters_raise_scikit_learns_errors(name, value):
    from sklearn.utils._param_validation import InvalidParameterError as SklearnInvalidParameterError

    X = np.random.default_rng(0).normal(size=(40, 3))
    X[0, 0] = np.nan  # the parameters are checked first
    with pytest.raises(SklearnInvalidParameterError) as theirs:
        SklearnMiniBatchKMeans(2).set_params(**{name: value}).fit(X)
    with pytest.raises(InvalidParameterError) as ours:
        MiniBatchKMeans(2).set_params(**{name: value}).fit(X)
    # scikit-learn lists the options of a str parameter in the order of a set of strings,
    # which changes from process to process (hash randomisation): compared sorted.
    assert _sorted_options(str(ours.value)) == _sorted_options(str(theirs.value))
    with pytest.raises(InvalidParameterError):
        MiniBatchKMeans(2).set_params(**{name: value}).partial_fit(X)


def test_invalid_random_state():
    with pytest.raises(InvalidParameterError, match="'random_state'"):
        MiniBatchKMeans(2, random_state="x").fit(np.ones((5, 2)))


def test_warnings_as_scikit_learns():
    X = _blobs()
    with pytest.warns(RuntimeWarning, match=r"init_size=3 should be larger than n_clusters=8"):
        MiniBatchKMeans(8, init_size=3, random_state=0).fit(X)
    with pytest.warns(RuntimeWarning, match="performing only one init in MiniBatchKMeans instead of n_init=3"):
        MiniBatchKMeans(8, init=_init(X, 8), n_init=3, random_state=0).fit(X)


def test_n_init_auto_is_three_for_callable_inits():
    X = datasets.load_digits().data
    calls = []

    def init(data, k, random_state):
        calls.append((data.shape, float(data.min()), float(data.max())))
        return data[:k]

    MiniBatchKMeans(10, init=init, batch_size=100, random_state=0, max_iter=1).fit(X)
    # Three inits, each on init_size = 3 * batch_size rows of X as they are (digits are in
    # [0, 16]; centered rows would go negative), as scikit-learn passes them.
    assert calls == [((300, 64), 0.0, 16.0)] * 3


def test_compute_labels_false():
    X = _blobs()
    init = _init(X, 8)
    theirs = SklearnMiniBatchKMeans(8, init=init, compute_labels=False, random_state=np.random.RandomState(0)).fit(X)
    km = MiniBatchKMeans(8, init=init, compute_labels=False, random_state=np.random.RandomState(0)).fit(X)
    assert not hasattr(km, "labels_")
    # The averaged batch inertia times the total weight, as scikit-learn reports it.
    assert km.inertia_ == pytest.approx(theirs.inertia_, rel=1e-9)
    # scikit-learn's fit_predict fails here for want of labels_; ours predicts.
    np.testing.assert_array_equal(km.fit_predict(X), km.predict(X))
    # A later fit with labels, then one without: no stale labels_.
    km.set_params(compute_labels=True).fit(X)
    assert km.labels_.shape == (X.shape[0],)
    km.set_params(compute_labels=False).fit(X)
    assert not hasattr(km, "labels_")


def test_random_state_kinds():
    X = _blobs()
    first = MiniBatchKMeans(8, random_state=7).fit(X)
    second = MiniBatchKMeans(8, random_state=7).fit(X)
    np.testing.assert_array_equal(first.cluster_centers_, second.cluster_centers_)
    rng = np.random.default_rng(7)
    a = MiniBatchKMeans(8, random_state=rng).fit(X).cluster_centers_
    b = MiniBatchKMeans(8, random_state=rng).fit(X).cluster_centers_
    assert not np.array_equal(a, b)  # a generator is shared state


def test_feature_names_set_output_and_names_out():
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(_blobs()[:, :3], columns=["a", "b", "c"])
    km = MiniBatchKMeans(4, random_state=0).fit(X)
    np.testing.assert_array_equal(km.feature_names_in_, ["a", "b", "c"])
    np.testing.assert_array_equal(km.get_feature_names_out(), [f"minibatchkmeans{i}" for i in range(4)])
    out = km.set_output(transform="pandas").transform(X)
    assert list(out.columns) == [f"minibatchkmeans{i}" for i in range(4)]
    with pytest.raises(ValueError, match="Feature names unseen at fit time"):
        km.partial_fit(X.rename(columns={"a": "x"}))
    streamed = MiniBatchKMeans(4, random_state=0).partial_fit(X[:100])
    np.testing.assert_array_equal(streamed.feature_names_in_, ["a", "b", "c"])
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        streamed.partial_fit(X.to_numpy()[100:200])


def test_pickle_round_trip_continues_the_stream():
    X = _blobs()
    km = MiniBatchKMeans(8, random_state=np.random.RandomState(0))
    for rows in _chunks(X.shape[0])[:3]:
        km.partial_fit(X[rows])
    copy = pickle.loads(pickle.dumps(km))
    for rows in _chunks(X.shape[0])[3:]:
        km.partial_fit(X[rows])
        copy.partial_fit(X[rows])
    np.testing.assert_array_equal(copy.cluster_centers_, km.cluster_centers_)
    np.testing.assert_array_equal(copy.predict(X), km.predict(X))


def test_save_writes_the_model(tmp_path):
    X = _blobs()
    km = MiniBatchKMeans(8, random_state=np.random.RandomState(0)).partial_fit(X[:1000])
    path = tmp_path / "model.npz"
    km.save(path)
    with np.load(path, allow_pickle=False) as archive:
        meta = json.loads(str(archive["__meta__"][()]))
        assert meta["estimator"] == "MiniBatchKMeans"
        assert meta["params"]["batch_size"] == 1024
        np.testing.assert_array_equal(archive["cluster_centers_"], km.cluster_centers_)
        np.testing.assert_array_equal(archive["_counts"], km._counts)
    assert hasattr(km, "_random_state")  # saving left the model as it was


def test_exports():
    assert anykmeans.MiniBatchKMeans is MiniBatchKMeans
    assert "MiniBatchKMeans" in anykmeans.__all__


def test_fit_leaves_the_input_alone():
    X = _blobs()
    before = X.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MiniBatchKMeans(8, random_state=0).fit(X)
    np.testing.assert_array_equal(X, before)


def test_dask_steps_run_on_the_blocks():
    da = pytest.importorskip("dask.array")
    X = _blobs()
    placement = make_placement("dask")
    km = MiniBatchKMeans(8, random_state=np.random.RandomState(0)).fit(placement.asarray(X))
    reference = MiniBatchKMeans(8, random_state=np.random.RandomState(0)).fit(X)
    assert isinstance(km.cluster_centers_, da.Array)
    assert km._fit_stats["namespace"].startswith("dask")
    np.testing.assert_allclose(km.cluster_centers_.compute(), reference.cluster_centers_, rtol=1e-10)


def test_docstring_example():
    import doctest

    import anykmeans._minibatch

    result = doctest.testmod(anykmeans._minibatch)
    assert result.attempted > 0 and result.failed == 0
