"""k-means|| seeding (``init="k-means||"``): the quality of its seeds and of the fits from them
against greedy k-means++, the passes it makes over the data, the same centers on every
namespace, the edge cases (tiny data, duplicates, zero weights, float32) and its randomness."""

import numpy as np
import pytest
from sklearn.datasets import load_digits, make_blobs

import anykmeans
from anykmeans import ConvergenceWarning, InvalidParameterError, KMeans, backends
from anykmeans._kmeans_parallel import DEFAULT_N_ROUNDS, kmeans_parallel
from anykmeans._prepare import prepare
from anykmeans._seeding import greedy_kmeans_plusplus


def _plan(X, k, sample_weight=None):
    """``(X, weights, plan)`` placed and centered as a fit would, from the current settings."""
    weights = np.ones(X.shape[0], dtype=X.dtype) if sample_weight is None else sample_weight
    work = prepare(X, weights, config=anykmeans.get_config(), n_columns=k)
    plan = work.plan.centered(work.plan.xp.mean(work.X, axis=0))
    return work.X, work.weights, plan


def _seeds(X, k, seed, sample_weight=None, **options):
    """k-means|| centers moved back to the input's coordinates (NumPy input)."""
    X, weights, plan = _plan(X, k, sample_weight)
    centers = kmeans_parallel(X, weights, k, np.random.default_rng(seed), plan=plan, **options)
    return np.asarray(centers) + np.asarray(plan.shift)


def _potential(X, centers, weights=None):
    """Σ w · (squared distance to the nearest center), in the direct form."""
    nearest = np.full(X.shape[0], np.inf)
    for center in centers:
        nearest = np.minimum(nearest, ((X - center) ** 2).sum(axis=1))
    return float(nearest.sum() if weights is None else (weights * nearest).sum())


def _matching_rows(X, centers, rtol=1e-10):
    """For each center, the index of the row of X it equals (to ``rtol``), or -1."""
    matches = []
    for center in centers:
        sqdist = ((X - center) ** 2).sum(axis=1)
        row = int(np.argmin(sqdist))
        matches.append(row if sqdist[row] <= rtol**2 * max(1.0, float((center**2).sum())) else -1)
    return np.array(matches)


# ---------------------------------------------------------------- quality

_DATA = {
    "blobs": lambda: make_blobs(n_samples=20_000, centers=64, n_features=8, random_state=0)[0],
    "digits": lambda: load_digits().data.astype(np.float64),
    "uniform": lambda: np.random.default_rng(0).uniform(size=(10_000, 5)),
}


def _mean_inertias(X, k, seeds):
    parallel = [KMeans(k, init="k-means||", n_init=1, random_state=s).fit(X).inertia_ for s in seeds]
    plusplus = [KMeans(k, init="k-means++", n_init=1, random_state=s).fit(X).inertia_ for s in seeds]
    return float(np.mean(parallel)), float(np.mean(plusplus))


@pytest.mark.parametrize("data", sorted(_DATA))
def test_fits_from_kmeans_parallel_seeds_are_as_good_as_from_kmeans_plusplus(data):
    X = _DATA[data]()
    parallel, plusplus = _mean_inertias(X, 64, range(10))
    assert parallel <= 1.01 * plusplus, parallel / plusplus


@pytest.mark.slow
def test_fits_with_256_clusters_are_as_good_as_from_kmeans_plusplus():
    X = make_blobs(n_samples=20_000, centers=256, n_features=8, random_state=0)[0]
    parallel, plusplus = _mean_inertias(X, 256, range(10))
    assert parallel <= 1.01 * plusplus, parallel / plusplus


@pytest.mark.parametrize("data", sorted(_DATA))
def test_seeds_are_as_good_as_greedy_kmeans_plusplus_seeds(data):
    X = _DATA[data]()
    k = 64
    Xp, weights, plan = _plan(X, k)
    shift = np.asarray(plan.shift)
    parallel, plusplus = [], []
    for seed in range(10):
        centers = kmeans_parallel(Xp, weights, k, np.random.default_rng(seed), plan=plan)
        greedy, _ = greedy_kmeans_plusplus(Xp, weights, k, np.random.default_rng(seed), plan=plan)
        parallel.append(_potential(X, np.asarray(centers) + shift))
        plusplus.append(_potential(X, np.asarray(greedy) + shift))
    assert np.mean(parallel) <= 1.05 * np.mean(plusplus), np.mean(parallel) / np.mean(plusplus)


# ---------------------------------------------------------------- passes over the data


_NumpyKernels = type(backends.list_kernels()["numpy"])


class _CountingKernels(_NumpyKernels):
    """The NumPy kernels, counting the rows of ``data`` that each operation is given."""

    name = "counting-rows-for-kmeans-parallel"
    priority = -1000  # never picked by ``auto``

    def __init__(self):
        self.data = None
        self.rows_read = 0

    def _count(self, X):
        # Conservative: any array that may share memory with the data counts all its rows.
        if self.data is not None and np.may_share_memory(np.asarray(X), self.data):
            self.rows_read += X.shape[0]


def _counted(operation):
    def counting(self, X, *args, **kwargs):
        self._count(X)
        return getattr(_NumpyKernels, operation)(self, X, *args, **kwargs)

    return counting


for _operation in (
    "assign", "pairwise", "segment_sum", "sqdist_to_assigned", "assign_and_sum", "seeding_pass", "seeding_draw",
):
    setattr(_CountingKernels, _operation, _counted(_operation))


@pytest.fixture
def counting_kernels():
    kernels = backends.register_kernels(_CountingKernels(), replace=True)
    try:
        with anykmeans.config_context(kernels=kernels.name):
            yield kernels
    finally:
        backends.unregister_kernels(kernels.name)


def _passes(kernels, X, k, seeding, **options):
    Xp, weights, plan = _plan(X, k)
    assert plan.kernels is kernels
    kernels.data, kernels.rows_read = X, 0
    seeding(Xp, weights, k, np.random.default_rng(0), plan=plan, **options)
    return kernels.rows_read / X.shape[0]


def test_256_clusters_take_at_most_six_passes(counting_kernels):
    X = np.random.default_rng(0).normal(size=(8_000, 8))
    passes = _passes(counting_kernels, X, 256, kmeans_parallel)
    assert 2 <= passes <= 6
    # The count sees the passes: greedy k-means++ makes one per center.
    assert _passes(counting_kernels, X, 16, greedy_kmeans_plusplus) >= 16


def test_passes_grow_with_the_rounds(counting_kernels):
    X = np.random.default_rng(1).normal(size=(5_000, 4))
    assert _passes(counting_kernels, X, 32, kmeans_parallel, n_rounds=2) <= 3
    assert _passes(counting_kernels, X, 32, kmeans_parallel, n_rounds=8) <= 9


def test_a_pass_per_round_is_reported():
    X = np.random.default_rng(2).normal(size=(2_000, 3))
    steps = []
    _seeds(X, 10, 0, n_rounds=4, on_step=lambda step, total: steps.append((step, total)))
    assert len(steps) >= 4
    assert [s for s, _ in steps] == sorted(s for s, _ in steps)
    assert steps[-1] == (steps[-1][1], steps[-1][1])


def test_default_rounds_are_documented():
    assert DEFAULT_N_ROUNDS == 5
    X = np.random.default_rng(3).normal(size=(1_000, 3))
    default = _seeds(X, 8, 4)
    np.testing.assert_array_equal(default, _seeds(X, 8, 4, n_rounds=5))


# ---------------------------------------------------------------- namespaces


def _cross_namespace_problem():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(1_500, 3)) * [1.0, 3.0, 0.5] + [40.0, -7.0, 3.0]  # far from the origin
    weights = rng.uniform(0.5, 2.0, size=X.shape[0])
    weights[rng.choice(X.shape[0], size=300, replace=False)] = 0.0
    return X, weights


_REFERENCE = {}


def _numpy_results(seed):
    if seed not in _REFERENCE:
        X, weights = _cross_namespace_problem()
        seeds = _seeds(X, 12, seed, sample_weight=weights)
        fit = KMeans(12, init="k-means||", n_init=1, random_state=seed).fit(X, sample_weight=weights)
        _REFERENCE[seed] = seeds, fit.cluster_centers_
    return _REFERENCE[seed]


def test_the_same_seed_gives_the_same_centers_on_every_namespace(placement):
    X, weights = _cross_namespace_problem()
    seed = 11
    expected_seeds, expected_centers = _numpy_results(seed)

    Xp, wp, plan = _plan(placement.asarray(X, "float64"), 12, placement.asarray(weights, "float64"))
    centers = kmeans_parallel(Xp, wp, 12, np.random.default_rng(seed), plan=plan)
    seeds = placement.to_numpy(centers) + placement.to_numpy(plan.shift)
    np.testing.assert_allclose(seeds, expected_seeds, rtol=1e-10, atol=1e-10)

    fit = KMeans(12, init="k-means||", n_init=1, random_state=seed).fit(
        placement.asarray(X, "float64"), sample_weight=placement.asarray(weights, "float64")
    )
    np.testing.assert_allclose(placement.to_numpy(fit.cluster_centers_), expected_centers, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------- edge cases


def test_one_cluster():
    X = np.random.default_rng(6).normal(size=(200, 4))
    seeds = _seeds(X, 1, 0)
    assert seeds.shape == (1, 4)
    assert (_matching_rows(X, seeds) >= 0).all()
    fit = KMeans(1, init="k-means||", n_init=1, random_state=0).fit(X)
    np.testing.assert_allclose(fit.cluster_centers_[0], X.mean(axis=0), atol=1e-12)


@pytest.mark.parametrize("n", [2, 7, 40])
def test_as_many_clusters_as_samples_takes_every_row(n):
    X = np.random.default_rng(n).normal(size=(n, 3))
    for seed in range(3):
        rows = _matching_rows(X, _seeds(X, n, seed))
        assert sorted(rows) == list(range(n))
    fit = KMeans(n, init="k-means||", n_init=1, random_state=0).fit(X)
    assert fit.inertia_ <= 1e-20


def test_duplicates_with_fewer_distinct_points_than_clusters():
    rng = np.random.default_rng(7)
    points = rng.normal(size=(5, 3))
    X = np.repeat(points, 40, axis=0)
    seeds = _seeds(X, 8, 0)
    assert seeds.shape == (8, 3) and np.isfinite(seeds).all()
    rows = _matching_rows(X, seeds)
    assert (rows >= 0).all()
    assert len({tuple(X[r]) for r in rows}) == 5  # every distinct point is a center
    with pytest.warns(ConvergenceWarning, match=r"distinct clusters \(5\)"):
        fit = KMeans(8, init="k-means||", n_init=1, random_state=0).fit(X)
    assert np.isfinite(fit.cluster_centers_).all()
    assert fit.inertia_ <= 1e-20


def test_duplicates_with_more_distinct_points_than_clusters_give_distinct_seeds():
    rng = np.random.default_rng(8)
    X = np.repeat(rng.normal(size=(12, 2)), 50, axis=0)
    rng.shuffle(X)
    for seed in range(5):
        seeds = _seeds(X, 10, seed)
        rows = _matching_rows(X, seeds)
        assert (rows >= 0).all()
        assert len({tuple(X[r]) for r in rows}) == 10


def test_rows_of_zero_weight_are_never_centers():
    rng = np.random.default_rng(9)
    X = np.concatenate([rng.normal(size=(500, 2)), rng.normal(size=(500, 2)) + 100.0])
    weights = np.concatenate([np.ones(500), np.zeros(500)])  # the far blob weighs nothing
    for seed in range(5):
        rows = _matching_rows(X, _seeds(X, 16, seed, sample_weight=weights))
        assert (rows >= 0).all() and (weights[rows] > 0).all()


def test_few_rows_of_positive_weight():
    rng = np.random.default_rng(10)
    X = rng.normal(size=(60, 2))
    weights = np.zeros(60)
    positive = rng.choice(60, size=8, replace=False)
    weights[positive] = rng.uniform(1.0, 3.0, size=8)
    # As many clusters as rows of positive weight: exactly those rows.
    rows = _matching_rows(X, _seeds(X, 8, 0, sample_weight=weights))
    assert sorted(rows) == sorted(positive)
    # More clusters than rows of positive weight: those rows, some repeated, and no other.
    rows = _matching_rows(X, _seeds(X, 11, 0, sample_weight=weights))
    assert len(rows) == 11 and set(rows) == set(positive)


def test_small_oversampling_fills_up_to_n_clusters():
    X = np.random.default_rng(11).normal(size=(300, 2))
    seeds = _seeds(X, 20, 0, oversampling_factor=0.05, n_rounds=1)
    rows = _matching_rows(X, seeds)
    assert (rows >= 0).all() and len(set(rows)) == 20


def test_float32():
    X = np.random.default_rng(12).normal(size=(3_000, 5)).astype(np.float32)
    Xp, weights, plan = _plan(X, 9)
    centers = kmeans_parallel(Xp, weights, 9, np.random.default_rng(0), plan=plan)
    assert centers.dtype == np.float32 and centers.shape == (9, 5)
    seeds = np.asarray(centers + plan.shift, dtype=np.float64)
    assert (_matching_rows(X.astype(np.float64), seeds, rtol=1e-6) >= 0).all()
    fit = KMeans(9, init="k-means||", n_init=1, random_state=0).fit(X)
    assert fit.cluster_centers_.dtype == np.float32 and np.isfinite(fit.cluster_centers_).all()


@pytest.mark.parametrize("value", [0, -1, "x", True])
@pytest.mark.parametrize("name", ["oversampling_factor", "init_max_iter"])
def test_invalid_parameters(name, value):
    X = np.random.default_rng(13).normal(size=(50, 2))
    with pytest.raises(InvalidParameterError, match=rf"'{name}' parameter of KMeans must be .* Got {value!r}"):
        KMeans(3, init="k-means||", random_state=0, **{name: value}).fit(X)


def test_valid_parameters_are_used():
    X = np.random.default_rng(14).normal(size=(2_000, 3))
    base = KMeans(8, init="k-means||", n_init=1, max_iter=1, random_state=0).fit(X).cluster_centers_
    for options in ({"oversampling_factor": 0.5}, {"oversampling_factor": 10}, {"init_max_iter": 1}):
        fit = KMeans(8, init="k-means||", n_init=1, max_iter=1, random_state=0, **options).fit(X)
        assert np.isfinite(fit.cluster_centers_).all()
        assert not np.array_equal(fit.cluster_centers_, base), options


# ---------------------------------------------------------------- randomness


def test_the_same_seed_gives_the_same_bits_and_other_seeds_other_centers():
    X = np.random.default_rng(15).normal(size=(5_000, 4))
    first = _seeds(X, 16, 3)
    assert first.tobytes() == _seeds(X, 16, 3).tobytes()
    for seed in (4, 5):
        assert not np.array_equal(_seeds(X, 16, seed), first)
    fits = [KMeans(16, init="k-means||", n_init=1, random_state=s).fit(X).cluster_centers_ for s in (3, 3, 4)]
    assert fits[0].tobytes() == fits[1].tobytes()
    assert not np.array_equal(fits[0], fits[2])

