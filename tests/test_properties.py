"""Properties of k-means that hold for any data: Lloyd never raises the inertia, labels are
the nearest centers, and the fit commutes with permuting, scaling and translating the data.

The data are distinct points drawn around a few well-separated blob centers (a grid), with
the seed chosen by Hypothesis, so that exact or near ties between centers do not occur.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from anykmeans import ConvergenceWarning, KMeans
from anykmeans import backends
from anykmeans._lloyd import lloyd
from anykmeans._passes import Plan
from conftest import make_placement

# The autouse configuration fixture is function-scoped; it only resets settings, which the
# examples do not change, so sharing it across examples is safe.
PROPERTY_SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
PLACEMENTS = ["numpy", "torch-cpu", "strict-device1"]


def _placement(name):
    if name.startswith("torch"):
        pytest.importorskip("torch")
    if name.startswith("strict"):
        pytest.importorskip("array_api_strict")
    return make_placement(name)


@st.composite
def blobs(draw, max_features=3, max_blobs=4, max_per_blob=25, max_clusters=5):
    """``(X, n_clusters, seed)``: distinct float64 points around distinct grid points 20 apart,
    with at least ``n_clusters`` rows."""
    n_features = draw(st.integers(1, max_features))
    grid = draw(
        arrays(np.int8, (draw(st.integers(1, max_blobs)), n_features), elements=st.integers(-3, 3))
    )
    blob_centers = 20.0 * np.unique(grid, axis=0)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, max_per_blob + 1, size=blob_centers.shape[0])
    X = np.repeat(blob_centers, sizes, axis=0)
    X = X + rng.normal(size=X.shape) * rng.uniform(0.5, 3.0)
    n_clusters = draw(st.integers(1, min(max_clusters, X.shape[0])))
    return X, n_clusters, seed


def _initial_centers(X, n_clusters, seed, spread):
    """Distinct rows of X, or points anywhere in (a box ``spread`` times) the data's range:
    the latter often start clusters empty, so the relocation runs too."""
    rng = np.random.default_rng(seed + 1)
    if spread == 0:
        return X[rng.choice(X.shape[0], size=n_clusters, replace=False)].copy()
    low, high = X.min(axis=0), X.max(axis=0)
    middle, half = (low + high) / 2, (high - low) / 2 * spread + 1.0
    return rng.uniform(middle - half, middle + half, size=(n_clusters, X.shape[1]))


def _sqdist(X, centers):
    return ((X[:, None, :] - centers[None, :, :]) ** 2).sum(axis=-1)


def _sqnorm_scale(X):
    """Rounding of expanded distances is relative to ‖x‖², not to the (smaller) result."""
    return float((X * X).sum(axis=1).max()) + 1.0


# --------------------------------------------------------------------------- Lloyd


@pytest.mark.parametrize("placement_name", PLACEMENTS)
@PROPERTY_SETTINGS
@given(
    data=blobs(),
    spread=st.sampled_from([0.0, 1.5]),
    weighting=st.sampled_from(["unit", "positive", "some zero"]),
)
def test_lloyd_never_increases_the_inertia(placement_name, data, spread, weighting):
    placement = _placement(placement_name)
    X_host, n_clusters, seed = data
    rng = np.random.default_rng(seed + 2)
    weights_host = {
        "unit": np.ones(X_host.shape[0]),
        "positive": rng.uniform(0.1, 3.0, size=X_host.shape[0]),
        "some zero": rng.uniform(0.1, 3.0, size=X_host.shape[0])
        * (rng.random(X_host.shape[0]) > 0.3),
    }[weighting]
    init_host = _initial_centers(X_host, n_clusters, seed, spread)

    # As KMeans.fit runs it: a plan for the placement, then Lloyd on mean-centered data.
    xp, device = placement.xp, placement.device
    X = placement.asarray(X_host, "float64")
    plan = Plan.create(
        xp, device, backends.select_kernels("auto", xp, device), working_memory=2**28,
        n_features=X.shape[1], n_columns=n_clusters, itemsize=8,
    )
    mean = xp.mean(X, axis=0)
    inertias = []
    result = lloyd(
        X - mean, placement.asarray(weights_host, "float64"),
        placement.asarray(init_host, "float64") - mean,
        plan=plan, max_iter=100, tol=0.0,
        on_iteration=lambda i, inertia: inertias.append(inertia),
    )

    slack = 1e-12 * float(weights_host.sum()) * _sqnorm_scale(X_host - X_host.mean(axis=0))
    assert len(inertias) == result.n_iter >= 1
    for before, after in zip(inertias, inertias[1:]):
        assert after <= before * (1 + 1e-9) + slack, inertias
    assert result.inertia <= inertias[-1] * (1 + 1e-9) + slack
    # The reported inertia is that of the returned labels and centers.
    centers = placement.to_numpy(result.centers) + X_host.mean(axis=0)
    labels = placement.to_numpy(result.labels)
    direct = float(weights_host @ ((X_host - centers[labels]) ** 2).sum(axis=1))
    assert result.inertia == pytest.approx(direct, rel=1e-9, abs=slack)


# --------------------------------------------------------------------------- fitted model


@pytest.mark.parametrize("placement_name", PLACEMENTS)
@PROPERTY_SETTINGS
@given(
    data=blobs(),
    init=st.sampled_from(["k-means++", "random", "rows", "anywhere"]),
    tol=st.sampled_from([0.0, 1e-4]),
    zero_weights=st.booleans(),
)
def test_labels_are_the_nearest_centers(placement_name, data, init, tol, zero_weights):
    placement = _placement(placement_name)
    X_host, n_clusters, seed = data
    if init in ("rows", "anywhere"):
        init = placement.asarray(
            _initial_centers(X_host, n_clusters, seed, 0.0 if init == "rows" else 1.5), "float64"
        )
    weights = None
    if zero_weights:
        rng = np.random.default_rng(seed + 4)
        weights = rng.uniform(0.5, 2.0, size=X_host.shape[0]) * (rng.random(X_host.shape[0]) > 0.3)
        weights[0] = 1.0
        weights = placement.asarray(weights, "float64")
    km = KMeans(n_clusters=n_clusters, init=init, n_init=1, tol=tol, random_state=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        km.fit(placement.asarray(X_host, "float64"), sample_weight=weights)
    labels = placement.to_numpy(km.labels_)
    centers = placement.to_numpy(km.cluster_centers_)

    sqdist = _sqdist(X_host, centers)
    assigned = sqdist[np.arange(X_host.shape[0]), labels]
    nearest = sqdist.min(axis=1)
    atol = 1e-12 * _sqnorm_scale(X_host - X_host.mean(axis=0))
    assert np.all(assigned <= nearest * (1 + 1e-9) + atol)
    predicted = km.predict(placement.asarray(X_host, "float64"))
    np.testing.assert_array_equal(placement.to_numpy(predicted), labels)
    # A cluster can end without points only where points weigh zero (a cluster of those is
    # "empty" and parked at the origin), and then, only then, the fit warns.
    n_distinct = np.unique(labels).size
    warned = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert [str(w.message) for w in caught if w not in warned] == []
    assert bool(warned) == (n_distinct < n_clusters)
    if not zero_weights:
        assert n_distinct == n_clusters


@pytest.mark.parametrize("placement_name", PLACEMENTS)
def test_labels_follow_a_relocation_in_the_last_iteration(placement_name):
    # Cluster 1 starts empty. Iteration 0 relocates the farthest point, -8, which weighs 0:
    # cluster 1 stays empty and parks at the origin. Iteration 1 gives the same labels (a
    # strict convergence) but relocates 30 into cluster 1: the labels must follow.
    placement = _placement(placement_name)
    X = placement.asarray([[-10.0], [-8.0], [30.0], [40.0]], "float64")
    weights = placement.asarray([1.0, 0.0, 1.0, 3.0], "float64")
    init = placement.asarray([[-25.0], [100.0], [35.0]], "float64")
    km = KMeans(n_clusters=3, init=init, tol=0).fit(X, sample_weight=weights)
    np.testing.assert_array_equal(placement.to_numpy(km.labels_), [0, 0, 1, 2])
    np.testing.assert_allclose(placement.to_numpy(km.cluster_centers_), [[-10.0], [30.0], [40.0]])
    assert km.inertia_ == pytest.approx(0.0, abs=1e-12)
    assert km.n_iter_ == 2


# Initial centers are rows of X below wherever rounding may differ between the two fits:
# starting from arbitrary points leaves clusters empty, and the relocation then moves "the
# farthest point", which is an exact tie in a two-point cluster (both are as far from their
# mean), decided by row order or rounding. That is the algorithm (scikit-learn's too), not
# a property of the data.


@PROPERTY_SETTINGS
@given(data=blobs())
def test_permuting_rows_permutes_labels(data):
    X, n_clusters, seed = data
    init = _initial_centers(X, n_clusters, seed, spread=0.0)
    perm = np.random.default_rng(seed + 3).permutation(X.shape[0])

    km = KMeans(n_clusters=n_clusters, init=init, tol=0).fit(X)
    km_perm = KMeans(n_clusters=n_clusters, init=init, tol=0).fit(X[perm])
    np.testing.assert_array_equal(km_perm.labels_, km.labels_[perm])
    np.testing.assert_allclose(
        km_perm.cluster_centers_, km.cluster_centers_, rtol=1e-10, atol=1e-10
    )
    assert km_perm.inertia_ == pytest.approx(km.inertia_, rel=1e-10, abs=1e-10)
    # With tol=0 a fit stops when the centers stop moving or, one iteration later, when the
    # labels stop changing: a rounding-level shift can move it from one to the other.
    assert abs(km_perm.n_iter_ - km.n_iter_) <= 1


@PROPERTY_SETTINGS
@given(
    data=blobs(),
    spread=st.sampled_from([0.0, 1.5]),
    power=st.integers(-6, 6),
    factor=st.floats(0.05, 20.0),
)
def test_scaling_the_data_scales_the_centers(data, spread, power, factor):
    X, n_clusters, seed = data
    init = _initial_centers(X, n_clusters, seed, spread)
    km = KMeans(n_clusters=n_clusters, init=init, tol=1e-4).fit(X)

    # A power of two scales every floating-point operation exactly.
    c = 2.0**power
    scaled = KMeans(n_clusters=n_clusters, init=c * init, tol=1e-4).fit(c * X)
    np.testing.assert_array_equal(scaled.labels_, km.labels_)
    np.testing.assert_allclose(scaled.cluster_centers_, c * km.cluster_centers_, rtol=1e-14, atol=0)
    assert scaled.inertia_ == pytest.approx(c * c * km.inertia_, rel=1e-14)
    assert scaled.n_iter_ == km.n_iter_

    # Otherwise only rounding differs; tol=0 keeps a center shift near tol from ending early.
    init = _initial_centers(X, n_clusters, seed, spread=0.0)
    km = KMeans(n_clusters=n_clusters, init=init, tol=0).fit(X)
    scaled = KMeans(n_clusters=n_clusters, init=factor * init, tol=0).fit(factor * X)
    np.testing.assert_array_equal(scaled.labels_, km.labels_)
    np.testing.assert_allclose(
        scaled.cluster_centers_, factor * km.cluster_centers_, rtol=1e-9, atol=1e-9 * factor
    )
    assert scaled.inertia_ == pytest.approx(factor**2 * km.inertia_, rel=1e-9)


@PROPERTY_SETTINGS
@given(data=blobs(), shift=st.data())
def test_translating_the_data_translates_the_centers(data, shift):
    X, n_clusters, seed = data
    v = shift.draw(arrays(np.float64, X.shape[1], elements=st.floats(-1e3, 1e3)))
    init = _initial_centers(X, n_clusters, seed, spread=0.0)
    km = KMeans(n_clusters=n_clusters, init=init, tol=0).fit(X)

    moved = KMeans(n_clusters=n_clusters, init=init + v, tol=0).fit(X + v)
    np.testing.assert_array_equal(moved.labels_, km.labels_)
    # Data are centered inside the fit, so only the rounding of x + v remains.
    scale = float(np.abs(X).max() + np.abs(v).max())
    np.testing.assert_allclose(
        moved.cluster_centers_, km.cluster_centers_ + v, rtol=0, atol=1e-12 * scale
    )
    assert moved.inertia_ == pytest.approx(km.inertia_, rel=1e-9, abs=1e-12 * scale**2)
