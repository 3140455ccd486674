"""Elkan's bounds: the kernels' Elkan pass (exact labels, valid bounds, pruning) and
``algorithm="elkan"`` fits, which must give Lloyd's results and scikit-learn's."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from dataclasses import replace

import numpy as np
import pytest

import anykmeans
from anykmeans import backends
from anykmeans._passes import Plan


def _elkan_kernels():
    return [k for k in backends.list_kernels().values() if k.has_elkan_pass and k.supports(np, "cpu")]


def _with_elkan_pass():
    found = _elkan_kernels()
    if not found:
        pytest.skip("no kernels with an Elkan pass (pip install 'anykmeans[cpu]' for Numba)")
    return found


def _blobs(n=2000, d=6, k=8, std=0.6, seed=0, dtype="float64"):
    rng = np.random.default_rng(seed)
    means = rng.uniform(-10, 10, size=(k, d))
    X = means[rng.integers(0, k, size=n)] + std * rng.normal(size=(n, d))
    return X.astype(dtype), means.astype(dtype)


def _distances(X, centers, shift=None):
    rows = np.asarray(X, np.float64) - (0 if shift is None else shift)
    return np.sqrt(((rows[:, None, :] - np.asarray(centers, np.float64)[None]) ** 2).sum(-1))


def test_the_reference_kernels_have_no_elkan_pass():
    reference = backends.list_kernels()["array_api"]
    assert reference.has_elkan_pass is False
    with pytest.raises(NotImplementedError, match="no Elkan pass"):
        reference.elkan_pass(None, None, None, None, None, None, None, initial=True, shift=None, xp=np)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_elkan_passes_give_exact_labels_sums_and_valid_bounds(dtype):
    # Centers that move every pass (toward the blob means, then a jump), rows read shifted.
    X, means = _blobs(dtype=dtype)
    rng = np.random.default_rng(1)
    shift = X.mean(axis=0)
    weights = rng.uniform(0, 2, size=X.shape[0]).astype(dtype)
    weights[:100] = 0
    path = [means - shift + rng.normal(scale=s, size=means.shape) for s in (3.0, 1.0, 0.3, 0.0, 0.0)]
    path.append(path[-1] + 2.0)
    rtol = 1e-4 if dtype == "float32" else 1e-10
    for kernels in _with_elkan_pass():
        n, k = X.shape[0], means.shape[0]
        labels = np.zeros(n, np.int32)
        upper, lower = np.empty(n, dtype), np.empty((n, k), dtype)
        drift, previous = np.zeros(k, dtype), None
        for step, centers in enumerate(path):
            centers = centers.astype(dtype)
            if previous is not None:
                drift = drift + np.sqrt(((centers - previous) ** 2).sum(axis=1)).astype(dtype)
            labels, upper, lower, sums, weight_sums, inertia, measured, examined = kernels.elkan_pass(
                X, weights, labels, upper, lower, centers, drift,
                initial=step == 0, shift=shift.astype(dtype), xp=np,
            )
            previous = centers
            assert 0 <= measured <= examined <= n * k
            true = _distances(X, centers, shift)
            scale = true.max()
            # Each row's label is a nearest center.
            np.testing.assert_allclose(true[np.arange(n), labels], true.min(axis=1), rtol=0, atol=rtol * scale)
            assert labels.dtype == np.int32
            # The bounds hold.
            assert np.all(upper + drift[labels] >= true[np.arange(n), labels] - rtol * scale)
            assert np.all(lower - drift[None, :] <= true + rtol * scale)
            # The sums are those of the rows by their labels.
            rows = X.astype(np.float64) - shift
            expected = np.zeros((k, X.shape[1]))
            np.add.at(expected, labels, weights[:, None].astype(np.float64) * rows)
            np.testing.assert_allclose(sums, expected, rtol=rtol, atol=rtol * np.abs(rows).max() * n)
            np.testing.assert_allclose(weight_sums, np.bincount(labels, weights, minlength=k), rtol=rtol)
            assert sums.dtype == X.dtype and weight_sums.dtype == X.dtype
            # The inertia is exact: direct-form distances to the labels, weighted.
            exact = float(np.sum(weights.astype(np.float64) * true[np.arange(n), labels] ** 2))
            assert float(inertia) == pytest.approx(exact, rel=10 * rtol)
            # Every upper bound is tight after a pass: measured for the labels or the inertia.
            np.testing.assert_allclose(upper + drift[labels], true[np.arange(n), labels], rtol=rtol, atol=rtol * scale)


def test_an_elkan_pass_over_unmoved_centers_measures_no_distance_on_separated_blobs():
    # Blob means as centers: every row is within half the distance from its center to the
    # next, so the pass measures no distance for the labels and rewrites no lower bound
    # (they were loosened on purpose); the upper bounds become the exact distances.
    X, means = _blobs(std=0.3)
    n, k = X.shape[0], means.shape[0]
    weights = np.ones(n)
    for kernels in _with_elkan_pass():
        labels, upper, lower, _, _, _, _, _ = kernels.elkan_pass(
            X, weights, np.zeros(n, np.int32), np.empty(n), np.empty((n, k)), means, np.zeros(k),
            initial=True, shift=None, xp=np,
        )
        upper += 0.125
        lower -= 0.125
        loose_upper, loose_lower = upper.copy(), lower.copy()
        again, upper, lower, sums, _, inertia, measured, examined = kernels.elkan_pass(
            X, weights, labels, upper, lower, means, np.zeros(k), initial=False, shift=None, xp=np
        )
        np.testing.assert_array_equal(again, labels)
        assert measured == 0 == examined
        np.testing.assert_allclose(upper, _distances(X, means)[np.arange(n), labels], rtol=1e-12)
        assert np.all(upper < loose_upper)
        np.testing.assert_array_equal(lower, loose_lower)
        # A far-off row on a Voronoi boundary is measured: its bounds become tight.
        X2 = np.concatenate([X, (means[:1] + means[1:2]) / 2])
        labels2 = np.append(labels, 0).astype(np.int32)
        upper2, lower2 = np.append(upper, 1e3), np.concatenate([lower, np.zeros((1, k))])
        labels2, upper2, lower2, _, _, _, measured2, _ = kernels.elkan_pass(
            X2, np.ones(n + 1), labels2, upper2, lower2, means, np.zeros(k), initial=False, shift=None, xp=np
        )
        assert 2 <= measured2 <= k
        true = _distances(X2[-1:], means)[0]
        assert upper2[-1] == pytest.approx(true[labels2[-1]], rel=1e-12)
        assert true[labels2[-1]] == pytest.approx(true.min(), rel=1e-12)


def test_chunked_elkan_passes_equal_one_pass():
    X, means = _blobs()
    n, k = X.shape[0], means.shape[0]
    weights = np.random.default_rng(0).uniform(0.5, 1.5, size=n)
    for kernels in _with_elkan_pass():
        import array_api_compat.numpy as xp

        whole = Plan.create(xp, "cpu", kernels, working_memory=2**20, n_features=X.shape[1], n_columns=k, itemsize=8)
        chunked = replace(whole, chunk_rows=123)
        results = []
        for plan in (whole, chunked):
            state = (np.zeros(n, np.int32), np.empty(n), np.empty((n, k)))
            for step, centers in enumerate([means + 1.0, means + 0.5, means]):
                drift = np.full(k, 0.5 * np.sqrt(X.shape[1]) * step)
                *state, sums, weight_sums, inertia, _, _ = plan.elkan_pass(X, weights, *state, centers, drift, initial=step == 0)
            results.append((*state, sums, weight_sums, inertia))
        for a, b in zip(*results):
            np.testing.assert_allclose(a, b, rtol=1e-12)


# 32 features or more: where the Numba kernels use the bounds.
DATASETS = {
    "blobs": lambda: _blobs(n=3000, d=40, k=10, std=2.5, seed=3)[0],
    "overlapping": lambda: _blobs(n=3000, d=32, k=10, std=12.0, seed=4)[0],
    "uniform": lambda: np.random.default_rng(7).uniform(-5, 5, size=(2000, 32)),
    "far from the origin": lambda: _blobs(n=2000, d=32, k=5, std=1.0, seed=5)[0] + 1e4,
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_elkan_fits_give_lloyds_results(name, dtype, weighted):
    _with_elkan_pass()
    X = DATASETS[name]().astype(dtype)
    weights = np.random.default_rng(2).uniform(0, 3, size=X.shape[0]) if weighted else None
    lloyd = anykmeans.KMeans(8, algorithm="lloyd", n_init=2, random_state=0).fit(X, sample_weight=weights)
    elkan = anykmeans.KMeans(8, algorithm="elkan", n_init=2, random_state=0).fit(X, sample_weight=weights)
    if dtype == "float64":
        np.testing.assert_array_equal(elkan.labels_, lloyd.labels_)
        np.testing.assert_allclose(elkan.cluster_centers_, lloyd.cluster_centers_, rtol=1e-9, atol=1e-9)
        assert elkan.n_iter_ == lloyd.n_iter_
        assert elkan.inertia_ == pytest.approx(lloyd.inertia_, rel=1e-12)
    else:
        # float32 expanded-form (Lloyd) and direct-form (Elkan) distances may order a near
        # tie differently; the clusterings agree on almost every row.
        assert np.mean(elkan.labels_ == lloyd.labels_) > 0.99
        assert elkan.inertia_ == pytest.approx(lloyd.inertia_, rel=1e-3)
    assert elkan.cluster_centers_.dtype == X.dtype


@pytest.mark.parametrize("name", ["iris", "digits", "wine"])
def test_elkan_fits_match_scikit_learns_elkan_on_real_data(name):
    _with_elkan_pass()
    datasets = pytest.importorskip("sklearn.datasets")
    from sklearn.cluster import KMeans as SklearnKMeans

    X = getattr(datasets, f"load_{name}")().data
    k = 10 if name == "digits" else 3
    init = X[np.random.default_rng(0).choice(X.shape[0], k, replace=False)]
    ours = anykmeans.KMeans(k, init=init, algorithm="elkan", tol=0).fit(X)
    theirs = SklearnKMeans(k, init=init, n_init=1, algorithm="elkan", tol=0).fit(X)
    np.testing.assert_array_equal(ours.labels_, theirs.labels_)
    np.testing.assert_allclose(ours.cluster_centers_, theirs.cluster_centers_, rtol=1e-6, atol=1e-9)
    assert ours.inertia_ == pytest.approx(theirs.inertia_, rel=1e-9)
    # The iterations are Lloyd's. (On digits, integer data full of exact ties, scikit-learn's
    # own Lloyd and Elkan stop one iteration apart: 16 and 15 from these centers.)
    lloyd = SklearnKMeans(k, init=init, n_init=1, algorithm="lloyd", tol=0).fit(X)
    assert ours.n_iter_ == lloyd.n_iter_


def test_the_bounds_are_used_from_32_features_on():
    for kernels in _with_elkan_pass():
        assert kernels.elkan_pays(32, 2) and kernels.elkan_pays(784, 1000)
        assert not kernels.elkan_pays(31, 100)
        assert not kernels.elkan_pays(100, 1)


def test_elkan_handles_empty_clusters_and_equal_initial_centers_as_lloyd_does():
    _with_elkan_pass()
    X, _ = _blobs(n=500, d=32, k=4, std=0.5, seed=6)
    # Two equal centers (one of them must end up empty, then relocated) and one far away.
    init = np.array([X[0], X[0], X[1], np.full(32, 1e3), X[2]])
    fits = [anykmeans.KMeans(5, init=init, algorithm=a, tol=0).fit(X) for a in ("lloyd", "elkan")]
    np.testing.assert_array_equal(fits[1].labels_, fits[0].labels_)
    np.testing.assert_allclose(fits[1].cluster_centers_, fits[0].cluster_centers_, rtol=1e-12)
    assert fits[1].n_iter_ == fits[0].n_iter_
    assert len(np.unique(fits[1].labels_)) == 5


def test_elkan_verbose_prints_the_exact_inertia_of_each_iteration():
    _with_elkan_pass()
    X, _ = _blobs(n=1000, d=32, k=5, std=8.0, seed=8)
    printed = {}
    for algorithm in ("lloyd", "elkan"):
        out = io.StringIO()
        with redirect_stdout(out):
            anykmeans.KMeans(5, algorithm=algorithm, n_init=1, random_state=0, verbose=1).fit(X)
        printed[algorithm] = [float(line.split("inertia ")[1].rstrip(".")) for line in out.getvalue().splitlines()
                              if line.startswith("Iteration")]
    assert len(printed["elkan"]) == len(printed["lloyd"]) > 1
    np.testing.assert_allclose(printed["elkan"], printed["lloyd"], rtol=1e-9)


def test_elkan_without_an_elkan_pass_runs_as_lloyd(placement):
    # The NumPy kernels (and every other namespace's) have no Elkan pass: the same fit.
    X = placement.asarray(_blobs(n=600, d=4, k=5, std=1.5, seed=9)[0], "float64")
    with anykmeans.config_context(kernels="auto" if placement.id != "numpy" else "numpy"):
        lloyd = anykmeans.KMeans(5, algorithm="lloyd", n_init=1, random_state=0).fit(X)
        elkan = anykmeans.KMeans(5, algorithm="elkan", n_init=1, random_state=0).fit(X)
    np.testing.assert_array_equal(placement.to_numpy(elkan.labels_), placement.to_numpy(lloyd.labels_))
    assert elkan.n_iter_ == lloyd.n_iter_ and elkan.inertia_ == lloyd.inertia_


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_first_pass_lower_bounds_never_exceed_the_distances_far_from_the_origin(dtype):
    # The first pass takes its bounds from the expanded form, whose rounding grows with
    # ‖x‖² + ‖c‖²: rows far from the origin, not shifted, are its worst case.
    X, means = _blobs(n=3000, d=40, k=12, std=0.05, seed=10)
    X, means = (X + 3e3).astype(dtype), (means + 3e3).astype(dtype)
    n, k = X.shape[0], means.shape[0]
    for kernels in _with_elkan_pass():
        labels, upper, lower, _, _, _, _, _ = kernels.elkan_pass(
            X, np.ones(n, dtype), np.zeros(n, np.int32), np.empty(n, dtype), np.empty((n, k), dtype),
            means, np.zeros(k, dtype), initial=True, shift=None, xp=np,
        )
        true = _distances(X, means)
        assert np.all(lower.astype(np.float64) <= true)
        assert np.all(upper.astype(np.float64) >= true[np.arange(n), labels] * (1 - 1e-6))
        if dtype == "float64":
            # Still useful. (In float32 so far from the origin the rounding allowance is larger
            # than the distances, and the bounds are 0: valid, and why the fit centers the rows.)
            assert np.median(lower / true) > 0.99


def test_the_bounds_are_dropped_when_they_cost_more_than_lloyds_passes():
    import array_api_compat.numpy as xp

    from anykmeans._lloyd import ElkanBounds

    for kernels in _with_elkan_pass():
        plan = Plan.create(xp, "cpu", kernels, working_memory=2**20, n_features=32, n_columns=16, itemsize=8)
        # Separated blobs, centers at their means: the bounds rule out nearly everything.
        X, means = _blobs(n=4000, d=32, k=16, std=0.5, seed=11)
        bounds = ElkanBounds(X, np.ones(X.shape[0]), plan=plan)
        for step in range(3):
            bounds.assign_and_sum(means + 0.01 * step)
        assert bounds.pays
        # Structureless noise: every row reads every bound.
        noise = np.random.default_rng(12).normal(size=(4000, 32))
        bounds = ElkanBounds(noise, np.ones(4000), plan=plan)
        centers = noise[:16].copy()
        bounds.assign_and_sum(centers)
        assert bounds.pays  # the first pass is not judged
        bounds.assign_and_sum(centers + 0.1)
        assert not bounds.pays
        assert kernels.elkan_relative_cost(4000, 32, 16, 0, 0) == 0
        assert kernels.elkan_relative_cost(4000, 32, 16, 4000 * 16, 4000 * 16) > 1
