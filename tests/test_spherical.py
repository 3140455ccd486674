"""Spherical k-means (``metric="cosine"``) on both estimators, against a direct NumPy
implementation, FAISS's ``spherical=True`` and scikit-learn's cosine distances."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn import datasets  # noqa: E402
from sklearn.metrics.pairwise import cosine_distances  # noqa: E402

import anykmeans  # noqa: E402
from anykmeans import InvalidParameterError, KMeans, MiniBatchKMeans  # noqa: E402
from conftest import make_placement  # noqa: E402


# ---------------------------------------------------------------- the references


def _unit(X):
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def spherical_kmeans(X, init, weights=None, max_iter=300):
    """Spherical k-means written out directly: the highest cosine wins (lowest index among
    ties), each center is the normalised weighted sum of its unit rows; until the labels stop
    changing. Returns ``(labels, centers, inertia, n_iter)``."""
    Xn, centers = _unit(X), _unit(init)
    weights = np.ones(X.shape[0]) if weights is None else weights
    previous = None
    for iteration in range(max_iter):
        labels = np.argmax(Xn @ centers.T, axis=1)
        sums = np.zeros_like(centers)
        np.add.at(sums, labels, weights[:, None] * Xn)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        centers = np.where(norms > 0, sums / np.where(norms > 0, norms, 1), centers)
        if previous is not None and np.array_equal(labels, previous):
            break
        previous = labels
    labels = np.argmax(Xn @ centers.T, axis=1)
    cosine = np.sum(Xn * centers[labels], axis=1)
    return labels, centers, float(np.sum(weights * (1 - cosine))), iteration + 1


def minibatch_spherical_step(X, weights, centers, counts):
    """One mini-batch update of unit centers (scikit-learn's counts-based rates, no
    reassignment), then the centers put back on the sphere."""
    Xn = _unit(X)
    labels = np.argmax(Xn @ centers.T, axis=1)
    sums = np.zeros_like(centers)
    np.add.at(sums, labels, weights[:, None] * Xn)
    received = np.bincount(labels, weights=weights, minlength=centers.shape[0])
    new_counts = counts + received
    moved = (centers * counts[:, None] + sums) / np.where(received > 0, new_counts, 1)[:, None]
    moved = np.where(received[:, None] > 0, moved, centers)
    return _unit(moved), new_counts


# ---------------------------------------------------------------- data


def _directions(n=3000, d=20, k=6, seed=0, spread=0.35):
    """Rows around k directions, with lengths over three orders of magnitude (which cosine
    ignores and the Euclidean metric would not)."""
    rng = np.random.default_rng(seed)
    axes = _unit(rng.normal(size=(k, d)))
    rows = axes[rng.integers(k, size=n)] + spread * rng.normal(size=(n, d)) / np.sqrt(d)
    return rows * 10.0 ** rng.uniform(-1, 2, size=(n, 1))


def _text_like(seed=0):
    """Non-negative, sparse-ish rows (term counts), as TF-IDF users cluster."""
    rng = np.random.default_rng(seed)
    topics = rng.dirichlet(np.full(50, 0.1), size=5)
    docs = np.stack([rng.multinomial(40, topics[t]) for t in rng.integers(5, size=1500)]).astype(float)
    return docs[docs.sum(axis=1) > 0]


DATASETS = {
    "directions": (_directions, 6),
    "text": (_text_like, 5),
    "digits": (lambda: datasets.load_digits().data, 10),
}


def _init(X, k, seed=0):
    return X[np.random.default_rng(seed).choice(X.shape[0], size=k, replace=False)]


# ---------------------------------------------------------------- KMeans


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("name", sorted(DATASETS))
def test_kmeans_cosine_matches_a_direct_implementation(name, weighted):
    load, k = DATASETS[name]
    X = load()
    init = _init(X, k)
    weights = np.random.default_rng(1).uniform(0.5, 2.0, X.shape[0]) if weighted else None
    labels, centers, inertia, n_iter = spherical_kmeans(X, init, weights)

    model = KMeans(k, init=init, metric="cosine", tol=0, max_iter=300).fit(X, sample_weight=weights)

    np.testing.assert_array_equal(model.labels_, labels)
    np.testing.assert_allclose(model.cluster_centers_, centers, rtol=1e-6, atol=1e-9)
    assert model.inertia_ == pytest.approx(inertia, rel=1e-9)
    assert model.n_iter_ == n_iter
    np.testing.assert_allclose(np.linalg.norm(model.cluster_centers_, axis=1), 1.0, rtol=1e-12)


def test_kmeans_cosine_reaches_faiss_spherical_fixed_point():
    faiss = pytest.importorskip("faiss")
    # Overlapping directions (no empty clusters, which FAISS splits and we refill otherwise).
    X = _directions(n=4000, d=32, k=8, seed=2, spread=0.5).astype(np.float32)
    init = _init(X, 8, seed=3)
    # FAISS's spherical mode assigns by L2 and normalises the centroids: on unit rows that is
    # spherical k-means.
    clustering = faiss.Kmeans(
        32, 8, niter=100, spherical=True, max_points_per_centroid=10**6, min_points_per_centroid=1, seed=0
    )
    clustering.train(_unit(X), init_centroids=_unit(init))
    theirs = clustering.centroids
    _, their_labels = clustering.index.search(_unit(X), 1)

    ours = KMeans(8, init=init, metric="cosine", tol=0, max_iter=100).fit(X)

    np.testing.assert_allclose(ours.cluster_centers_, theirs, atol=1e-5)
    assert np.mean(ours.labels_ == their_labels[:, 0]) >= 0.999


def test_cosine_ignores_row_lengths_and_the_euclidean_metric_does_not():
    X = _directions(seed=4)
    rescaled = X * np.random.default_rng(5).uniform(0.01, 100, size=(X.shape[0], 1))
    a = KMeans(6, metric="cosine", random_state=0).fit(X)
    b = KMeans(6, metric="cosine", random_state=0).fit(rescaled)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=1e-9, atol=1e-12)
    # The same rescaling changes a Euclidean fit: the test would not notice a cosine fit
    # that fell back to Euclidean distances.
    c = KMeans(6, random_state=0).fit(X)
    d = KMeans(6, random_state=0).fit(rescaled)
    assert not np.array_equal(c.labels_, d.labels_)


def test_kmeans_plus_plus_seeds_by_cosine_distance():
    X = _directions(seed=6)
    # Seeding reads the unit rows: the first iteration starts from k-means++ on them, drawn
    # from the same generator.
    seeds, _ = anykmeans.kmeans_plusplus(_unit(X), 6, random_state=np.random.RandomState(7))
    fitted = KMeans(6, metric="cosine", max_iter=1, random_state=np.random.RandomState(7)).fit(X)
    from_seeds = KMeans(6, init=seeds, metric="cosine", max_iter=1).fit(X)
    np.testing.assert_allclose(fitted.cluster_centers_, from_seeds.cluster_centers_, rtol=1e-12)


@pytest.mark.parametrize("init", ["k-means++", "random", "k-means||"])
def test_cosine_inits_find_the_directions(init):
    X = _directions(n=2000, d=10, k=4, seed=8, spread=0.1)
    model = KMeans(4, init=init, metric="cosine", n_init=3, random_state=0).fit(X)
    truth = KMeans(4, init=_unit(X)[[np.argmax(model.labels_ == j) for j in range(4)]], metric="cosine").fit(X)
    assert model.inertia_ == pytest.approx(truth.inertia_, rel=1e-6)
    assert model.inertia_ < 0.02 * X.shape[0]


def test_elkan_gives_lloyds_spherical_fit():
    X = _directions(n=3000, d=48, k=10, seed=9)
    init = _init(X, 10, seed=1)
    lloyd = KMeans(10, init=init, metric="cosine", algorithm="lloyd").fit(X)
    elkan = KMeans(10, init=init, metric="cosine", algorithm="elkan").fit(X)
    np.testing.assert_array_equal(elkan.labels_, lloyd.labels_)
    np.testing.assert_allclose(elkan.cluster_centers_, lloyd.cluster_centers_, rtol=1e-9, atol=1e-12)
    assert elkan.n_iter_ == lloyd.n_iter_


def test_predict_transform_and_score_use_cosine_distances():
    X = _directions(seed=10)
    model = KMeans(6, metric="cosine", random_state=0).fit(X)
    new = _directions(n=200, seed=11)
    expected = cosine_distances(new, model.cluster_centers_)
    np.testing.assert_allclose(model.transform(new), expected, atol=1e-12)
    np.testing.assert_array_equal(model.predict(new), np.argmin(expected, axis=1))
    assert model.score(new) == pytest.approx(-np.sum(np.min(expected, axis=1)), rel=1e-10)
    assert model.inertia_ == pytest.approx(np.sum(np.min(cosine_distances(X, model.cluster_centers_), axis=1)))


def test_tol_is_relative_to_the_variance_of_the_unit_rows():
    X = _directions(seed=12)
    init = _init(X, 6, seed=2)

    def n_iter(data, tol):
        return KMeans(6, init=init, metric="cosine", tol=tol).fit(data).n_iter_

    # The rows' lengths span three orders of magnitude: a tolerance scaled by the variance of
    # X itself would be ~1e4 times larger and stop these fits after one or two updates.
    assert 1 < n_iter(X, 1e-2) < n_iter(X, 0)
    for tol in (1e-3, 1e-2, 1e-1):
        assert n_iter(X * 1000, tol) == n_iter(X, tol)


def test_float32_agrees_with_float64():
    X = _directions(seed=13)
    init = _init(X, 6)
    single = KMeans(6, init=init.astype(np.float32), metric="cosine").fit(X.astype(np.float32))
    double = KMeans(6, init=init, metric="cosine").fit(X)
    assert single.cluster_centers_.dtype == np.float32
    assert np.mean(single.labels_ == double.labels_) > 0.999
    np.testing.assert_allclose(single.cluster_centers_, double.cluster_centers_, atol=1e-4)


def test_rows_of_tiny_and_huge_length_are_normalised_without_overflow():
    X = _directions(n=600, seed=14)
    scales = np.where(np.arange(600) % 3 == 0, 1e-170, np.where(np.arange(600) % 3 == 1, 1e170, 1.0))
    init = _init(X, 6)
    a = KMeans(6, init=init, metric="cosine").fit(X)
    b = KMeans(6, init=init, metric="cosine").fit(X * scales[:, None])
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("estimator", [KMeans, MiniBatchKMeans])
def test_zero_rows_are_a_clear_error_before_any_work(estimator):
    X = _directions(n=100, seed=15)
    X[[7, 40]] = 0
    model = estimator(3, metric="cosine", random_state=0)
    with pytest.raises(ValueError, match=r"X has 2 rows of zero norm \(the first is row 7\).*metric='euclidean'"):
        model.fit(X)
    assert not hasattr(model, "cluster_centers_")
    fitted = estimator(3, metric="cosine", random_state=0).fit(X[X.any(axis=1)])
    with pytest.raises(ValueError, match=r"X has 1 row of zero norm \(the first is row 0\)"):
        fitted.predict(np.zeros((1, X.shape[1])))
    # The Euclidean metric has no such rule.
    estimator(3, random_state=0).fit(X)


def test_zero_init_rows_are_a_clear_error():
    X = _directions(n=100, seed=16)
    init = X[:3].copy()
    init[1] = 0
    with pytest.raises(ValueError, match=r"init has 1 row of zero norm \(the first is row 1\)"):
        KMeans(3, init=init, metric="cosine").fit(X)


@pytest.mark.parametrize("estimator", [KMeans, MiniBatchKMeans])
@pytest.mark.parametrize("metric", ["cos", "l2", None, 1])
def test_unknown_metric(estimator, metric):
    with pytest.raises(InvalidParameterError, match=r"The 'metric' parameter of \w+ must be a str among "
                       r"\{'euclidean', 'cosine'\}"):
        estimator(3, metric=metric).fit(_directions(n=50))


def test_the_input_is_not_modified():
    X = _directions(n=300, seed=17)
    before = X.copy()
    KMeans(3, metric="cosine", random_state=0).fit(X)
    MiniBatchKMeans(3, metric="cosine", random_state=0, batch_size=64).fit(X)
    np.testing.assert_array_equal(X, before)


# ---------------------------------------------------------------- every namespace


@pytest.mark.parametrize("estimator", ["kmeans", "minibatch"])
def test_cosine_on_every_namespace_matches_numpy(placement, estimator):
    X = _directions(n=900, d=12, k=5, seed=18)
    init = _init(X, 5, seed=4)

    def make(init):
        if estimator == "kmeans":
            return KMeans(5, init=init, metric="cosine")
        return MiniBatchKMeans(5, init=init, metric="cosine", batch_size=128, random_state=0)

    expected = make(init).fit(X)
    model = make(placement.asarray(init, "float64")).fit(placement.asarray(X, "float64"))
    np.testing.assert_array_equal(placement.to_numpy(model.labels_), expected.labels_)
    np.testing.assert_allclose(placement.to_numpy(model.cluster_centers_), expected.cluster_centers_, rtol=1e-9, atol=1e-12)
    assert model.inertia_ == pytest.approx(expected.inertia_, rel=1e-9)
    new = placement.asarray(X[:50], "float64")
    np.testing.assert_allclose(placement.to_numpy(model.transform(new)), expected.transform(X[:50]), atol=1e-9)


# ---------------------------------------------------------------- MiniBatchKMeans


def test_partial_fit_matches_a_direct_spherical_minibatch():
    X = _directions(n=2400, d=16, k=6, seed=19)
    init = _init(X, 6, seed=5)
    weights = np.random.default_rng(2).uniform(0.5, 2.0, X.shape[0])
    model = MiniBatchKMeans(6, init=init, metric="cosine", reassignment_ratio=0, random_state=0)
    centers, counts = _unit(init), np.zeros(6)
    for rows in np.array_split(np.arange(X.shape[0]), 12):
        model.partial_fit(X[rows], sample_weight=weights[rows])
        centers, counts = minibatch_spherical_step(X[rows], weights[rows], centers, counts)
        np.testing.assert_allclose(model.cluster_centers_, centers, rtol=1e-9, atol=1e-12)
    last = np.array_split(np.arange(X.shape[0]), 12)[-1]
    expected = cosine_distances(X[last], centers)
    np.testing.assert_array_equal(model.labels_, np.argmin(expected, axis=1))
    assert model.inertia_ == pytest.approx(np.sum(weights[last] * np.min(expected, axis=1)), rel=1e-9)


def test_minibatch_cosine_fit_is_close_to_kmeans():
    X = _directions(n=20000, d=16, k=6, seed=20)
    full = KMeans(6, metric="cosine", random_state=0).fit(X)
    mini = np.mean([
        MiniBatchKMeans(6, metric="cosine", random_state=seed, batch_size=512).fit(X).inertia_ for seed in range(3)
    ])
    assert mini == pytest.approx(full.inertia_, rel=0.02)
    assert np.allclose(np.linalg.norm(MiniBatchKMeans(6, metric="cosine", random_state=0).fit(X).cluster_centers_,
                                      axis=1), 1.0)


@pytest.mark.parametrize("estimator", [KMeans, MiniBatchKMeans])
def test_saved_and_loaded_cosine_models_predict_the_same(tmp_path, estimator):
    X = _directions(n=500, seed=21)
    model = estimator(4, metric="cosine", random_state=0).fit(X)
    model.save(tmp_path / "model.npz")
    loaded = anykmeans.load(tmp_path / "model.npz")
    assert loaded.metric == "cosine"
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_allclose(loaded.transform(X), model.transform(X))


def test_placement_dask_keeps_the_normalisation_lazy():
    pytest.importorskip("dask")
    placement = make_placement("dask")
    X = _directions(n=600, seed=22)
    model = KMeans(4, metric="cosine", random_state=0).fit(placement.asarray(X))
    assert hasattr(model.labels_, "dask")
    expected = KMeans(4, metric="cosine", random_state=0).fit(X)
    np.testing.assert_allclose(placement.to_numpy(model.cluster_centers_), expected.cluster_centers_, rtol=1e-9)


def test_rows_already_of_unit_length_are_not_copied():
    from anykmeans._metric import unit_rows
    import array_api_compat.numpy as xp

    for dtype in (np.float32, np.float64):
        X = _unit(_directions(n=400, d=300, seed=23)).astype(dtype)
        assert unit_rows(X, xp=xp) is X
        assert unit_rows(X * 1.001, xp=xp) is not X
    X = _directions(n=400, seed=24)
    # Normalised beforehand or not, the same fit.
    a = KMeans(5, metric="cosine", random_state=0).fit(X)
    b = KMeans(5, metric="cosine", random_state=0).fit(_unit(X))
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=1e-9, atol=1e-12)
