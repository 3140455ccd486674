"""Same answers as scikit-learn: same init and tol=0 give the same centers, labels, inertia."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn import datasets  # noqa: E402
from sklearn.cluster import KMeans as SklearnKMeans  # noqa: E402

import anykmeans  # noqa: E402
from conftest import make_placement  # noqa: E402


def _generated_blobs():
    X, _ = datasets.make_blobs(n_samples=3000, n_features=12, centers=8, cluster_std=2.5, random_state=3)
    return X


def _generated_uniform():
    # No cluster structure at all: many points near Voronoi boundaries.
    return np.random.default_rng(7).uniform(-5, 5, size=(2000, 5))


# name -> (loader, n_clusters)
DATASETS = {
    "iris": (lambda: datasets.load_iris().data, 3),
    "wine": (lambda: datasets.load_wine().data, 3),
    "digits": (lambda: datasets.load_digits().data, 10),
    "breast_cancer": (lambda: datasets.load_breast_cancer().data, 2),
    "blobs": (_generated_blobs, 8),
    "uniform": (_generated_uniform, 6),
}

TOLERANCE = {"float64": 1e-6, "float32": 1e-4}


def _case(name, dtype, weighted):
    loader, k = DATASETS[name]
    X = loader().astype(dtype)
    rng = np.random.default_rng(0)
    init = X[rng.choice(X.shape[0], size=k, replace=False)]
    weights = rng.uniform(0.5, 2.0, size=X.shape[0]).astype(dtype) if weighted else None
    return X, init, weights, k


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(DATASETS))
def test_same_init_same_result_as_sklearn(placement, name, dtype, weighted):
    _fit_and_compare(placement, name, dtype, weighted)


def _fit_and_compare(placement, name, dtype, weighted):
    """Fit both from the same init; assert the same centers, labels and inertia."""
    X, init, weights, k = _case(name, dtype, weighted)
    reference = SklearnKMeans(k, init=init, n_init=1, tol=0, max_iter=300).fit(X, sample_weight=weights)

    model = anykmeans.KMeans(k, init=placement.asarray(init), tol=0, max_iter=300)
    model.fit(
        placement.asarray(X),
        sample_weight=None if weights is None else placement.asarray(weights),
    )

    rtol = TOLERANCE[dtype]
    centers = placement.to_numpy(model.cluster_centers_)
    assert centers.dtype == np.dtype(dtype)
    scale = np.abs(reference.cluster_centers_).max()
    np.testing.assert_allclose(centers, reference.cluster_centers_, rtol=rtol, atol=rtol * scale)
    np.testing.assert_array_equal(placement.to_numpy(model.labels_), reference.labels_)
    assert model.inertia_ == pytest.approx(reference.inertia_, rel=rtol)
    return model, reference


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(DATASETS))
def test_numpy_backend_takes_sklearns_path(name, dtype, weighted):
    # The NumPy backend does scikit-learn's arithmetic (expanded form, same GEMM), so it also
    # takes the same number of iterations. Other backends and libraries round differently
    # (a direct-form distance, another GEMM), which can flip a near-tie in an early iteration
    # and reach the same fixed point by another path: only the result is compared for them.
    with anykmeans.config_context(kernels="numpy"):
        model, reference = _fit_and_compare(make_placement("numpy"), name, dtype, weighted)
    assert model.n_iter_ == reference.n_iter_


@pytest.mark.parametrize("name", ["iris", "digits", "blobs"])
def test_predict_transform_score_match_sklearn(placement, name):
    X, init, _, k = _case(name, "float64", weighted=False)
    reference = SklearnKMeans(k, init=init, n_init=1, tol=0).fit(X)
    model = anykmeans.KMeans(k, init=placement.asarray(init), tol=0).fit(placement.asarray(X))
    new = X[::3] + 0.25
    Xp = placement.asarray(new)
    np.testing.assert_array_equal(placement.to_numpy(model.predict(Xp)), reference.predict(new))
    np.testing.assert_allclose(placement.to_numpy(model.transform(Xp)), reference.transform(new), rtol=1e-6, atol=1e-9)
    assert model.score(Xp) == pytest.approx(reference.score(new), rel=1e-9)
    weights = np.linspace(0.1, 3.0, new.shape[0])
    assert model.score(Xp, sample_weight=placement.asarray(weights)) == pytest.approx(
        reference.score(new, sample_weight=weights), rel=1e-9
    )


@pytest.mark.parametrize("init", ["k-means++", "random"])
@pytest.mark.parametrize("name", ["iris", "wine", "digits", "breast_cancer", "blobs"])
def test_default_fit_inertia_close_to_sklearn(name, init):
    # Different random streams, same algorithm: the best of 10 runs lands within 1%.
    loader, k = DATASETS[name]
    X = loader()
    ours = anykmeans.KMeans(k, init=init, n_init=10, random_state=0).fit(X).inertia_
    theirs = SklearnKMeans(k, init=init, n_init=10, random_state=0).fit(X).inertia_
    assert ours == pytest.approx(theirs, rel=0.01)


def test_kmeans_plusplus_quality_matches_sklearn():
    # Greedy k-means++ seeding: the potential of our seeds is, on average over seeds,
    # within a few percent of scikit-learn's (the algorithm is the same; the draws differ).
    from sklearn.cluster import kmeans_plusplus as sklearn_kmeans_plusplus

    X = datasets.load_digits().data
    ours, theirs = [], []
    for seed in range(10):
        centers, indices = anykmeans.kmeans_plusplus(X, 10, random_state=seed)
        np.testing.assert_array_equal(centers, X[indices])
        ours.append(((X[:, None, :] - centers[None]) ** 2).sum(-1).min(1).sum())
        ref_centers, _ = sklearn_kmeans_plusplus(X, 10, random_state=seed)
        theirs.append(((X[:, None, :] - ref_centers[None]) ** 2).sum(-1).min(1).sum())
    assert np.mean(ours) == pytest.approx(np.mean(theirs), rel=0.05)


def test_empty_cluster_relocation_matches_sklearn():
    # Two initial centers far from all the data end up empty after the first E-step and are
    # moved to the farthest points, as scikit-learn does.
    X = _generated_blobs()
    init = np.vstack([X[:4], np.full((2, X.shape[1]), 1e3)])
    reference = SklearnKMeans(6, init=init, n_init=1, tol=0).fit(X)
    model = anykmeans.KMeans(6, init=init, tol=0).fit(X)
    np.testing.assert_allclose(model.cluster_centers_, reference.cluster_centers_, rtol=1e-6)
    np.testing.assert_array_equal(model.labels_, reference.labels_)
    assert model.inertia_ == pytest.approx(reference.inertia_, rel=1e-6)


@pytest.mark.parametrize("tol", [1e-4, 1e-2])
def test_tolerance_stops_at_the_same_iteration_as_sklearn(tol):
    X = _generated_uniform()
    init = X[:6]
    reference = SklearnKMeans(6, init=init, n_init=1, tol=tol).fit(X)
    model = anykmeans.KMeans(6, init=init, tol=tol).fit(X)
    assert model.n_iter_ == reference.n_iter_
    np.testing.assert_allclose(model.cluster_centers_, reference.cluster_centers_, rtol=1e-6)


def test_verbose_output_matches_sklearn(capsys):
    X, init, _, k = _case("iris", "float64", weighted=False)
    SklearnKMeans(k, init=init, n_init=1, tol=0, verbose=1).fit(X)
    expected = capsys.readouterr().out
    anykmeans.KMeans(k, init=init, tol=0, verbose=1).fit(X)
    ours = capsys.readouterr().out
    assert [line.split(",")[0] for line in ours.splitlines()] == [
        line.split(",")[0] for line in expected.splitlines()
    ]
    assert "strict convergence" in ours


def test_pipeline_grid_search_and_clone():
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = _generated_blobs()
    pipeline = make_pipeline(StandardScaler(), anykmeans.KMeans(random_state=0))
    search = GridSearchCV(pipeline, {"kmeans__n_clusters": [2, 8, 16]}, cv=3).fit(X)
    # score is minus the inertia, which falls as clusters are added.
    assert search.best_params_ == {"kmeans__n_clusters": 16}
    assert search.best_estimator_[-1].cluster_centers_.shape == (16, X.shape[1])
    model = anykmeans.KMeans(5, init="random", tol=0.0, random_state=3)
    twin = clone(model)
    assert twin is not model and twin.get_params() == model.get_params()
    assert not hasattr(twin, "cluster_centers_")


@pytest.mark.parametrize(
    "make_state",
    [lambda: 42, lambda: np.random.default_rng(42), lambda: np.random.RandomState(42)],
    ids=["int", "Generator", "RandomState"],
)
def test_random_state_kinds_make_fits_reproducible(make_state):
    X = _generated_uniform()
    first = anykmeans.KMeans(6, init="random", n_init=2, random_state=make_state()).fit(X)
    second = anykmeans.KMeans(6, init="random", n_init=2, random_state=make_state()).fit(X)
    np.testing.assert_array_equal(first.cluster_centers_, second.cluster_centers_)
    # A generator object is shared state: the next fit with it continues its stream.
    state = make_state()
    if not isinstance(state, int):
        a = anykmeans.KMeans(6, init="random", n_init=1, random_state=state).fit(X).cluster_centers_
        b = anykmeans.KMeans(6, init="random", n_init=1, random_state=state).fit(X).cluster_centers_
        assert not np.array_equal(a, b)


def test_algorithm_elkan_gives_scikit_learns_elkan_results():
    X, _ = datasets.make_blobs(n_samples=2000, centers=6, cluster_std=1.5, random_state=0)
    init = X[:6]
    ours = anykmeans.KMeans(6, init=init, algorithm="elkan", tol=0).fit(X)
    theirs = SklearnKMeans(6, init=init, n_init=1, algorithm="elkan", tol=0).fit(X)
    np.testing.assert_array_equal(ours.labels_, theirs.labels_)
    np.testing.assert_allclose(ours.cluster_centers_, theirs.cluster_centers_, rtol=1e-6)
    assert ours.n_iter_ == theirs.n_iter_ and ours.get_params()["algorithm"] == "elkan"
