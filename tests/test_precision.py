"""``matmul_precision``: reduced-precision scores, exact labels.

The reference kernels emulate the tensor cores' product (inputs rounded to TF32's or BF16's
significand, float32 products and sums), so the certificate and the recheck are tested here
on every CPU namespace; the GPU's own path is tested in test_cupy_backend.
"""

from __future__ import annotations

import array_api_compat.numpy as np_xp
import numpy as np
import pytest

import anykmeans
from anykmeans.backends import precision, reference

REDUCED = ["high", "medium"]
BITS = {"high": 11, "medium": 8}


def _round_to_nearest_even(x: np.ndarray, bits: int) -> np.ndarray:
    """An independent oracle: float32 rounded to ``bits`` significant bits on the bit pattern."""
    drop = 24 - bits
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    half = (1 << (drop - 1)) - 1 + ((u >> drop) & 1)
    return ((u + half) & ~np.uint64((1 << drop) - 1)).astype(np.uint32).view(np.float32)


def adversarial(n: int = 2000, d: int = 64, k: int = 8, *, bits: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows near the bisectors of pairs of centers whose every coordinate sits next to a
    midpoint of the reduced grid, half of the centers just below one and half just above:
    the rounding errors of a pair's two products add up coherently, over all d features,
    in opposite directions, and flip about half of the labels."""
    rng = np.random.default_rng(seed)
    step = 2.0 ** -(bits - 1)  # the reduced grid's spacing on [1, 2)

    def near_midpoints(shape, fraction):
        return (1 + (rng.integers(0, 2 ** (bits - 1), size=shape) + fraction) * step).astype(np.float32)

    centers = np.concatenate([near_midpoints((k // 2, d), 0.49), near_midpoints((k - k // 2, d), 0.51)])
    first, second = rng.integers(0, k // 2, n), rng.integers(k // 2, k, n)
    middle = (centers[first].astype(np.float64) + centers[second]) / 2
    offset = rng.uniform(-1, 1, (n, 1)) * 2.0**-9
    return (middle + offset * (centers[second].astype(np.float64) - centers[first])).astype(np.float32), centers


def _exact_scores(X: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """``‖c‖² − 2·x·c`` with the float32 ``‖c‖²`` the scores use and an exact product (float64
    is exact for these float32 inputs up to d·2⁻⁵³, far below every bound tested)."""
    c_sqnorm = np_xp.vecdot(centers, centers, axis=-1).astype(np.float64)
    return c_sqnorm - 2 * (X.astype(np.float64) @ centers.astype(np.float64).T)


def _blobs(n=3000, d=16, k=20, seed=0):
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(n, n_features=d, centers=k, cluster_std=2.0, random_state=seed)
    return X.astype(np.float32)


def _uniform(n=3000, d=32, seed=1):
    return np.random.default_rng(seed).random((n, d), dtype=np.float32)


def _digits():
    from sklearn.datasets import load_digits

    return load_digits().data.astype(np.float32)


# --------------------------------------------------------------------------- the pieces


@pytest.mark.parametrize("bits", [11, 8])
def test_rounding_keeps_the_leading_bits_to_nearest(bits):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(20000) * np.exp(rng.uniform(-20, 20, 20000))).astype(np.float32)
    rounded = precision.round_significand(x, bits=bits, xp=np_xp)
    assert rounded.dtype == np.float32
    # On the reduced grid: the dropped bits are zero.
    assert not np.any(rounded.view(np.uint32) & np.uint32((1 << (24 - bits)) - 1))
    # Within half a unit of the reduced grid, and equal to round-to-nearest-even except at
    # exact halfway points (where Veltkamp's splitting may go either way).
    assert np.all(np.abs(rounded - x) <= 2.0**-bits * np.abs(x))
    oracle = _round_to_nearest_even(x, bits)
    halfway = np.abs(x.astype(np.float64) - oracle) == np.abs(x.astype(np.float64) - rounded)
    assert np.all((rounded == oracle) | halfway)


@pytest.mark.parametrize("name", REDUCED)
@pytest.mark.parametrize("data", ["blobs", "uniform", "adversarial", "large-norms"])
def test_fast_and_highest_scores_are_within_the_margin(name, data):
    """The guarantee itself: every emulated fast score and every float32 score is within its
    share of the margin of the exact score (``margin = 2·(A + H)·slack``)."""
    rng = np.random.default_rng(3)
    if data == "adversarial":
        X, centers = adversarial(bits=BITS[name])
    else:
        X = {"blobs": _blobs, "uniform": _uniform}.get(data, lambda: (_uniform() - 0.5) * 1e6)()
        centers = X[rng.choice(X.shape[0], 16, replace=False)] + 0.01
    exact = _exact_scores(X, centers)
    fast, margins = precision.fast_scores(X, centers, precision=name, xp=np_xp)
    highest = reference._scores(X, centers, xp=np_xp)
    error = np.abs(fast - exact).max(axis=1) + np.abs(highest - exact).max(axis=1)
    assert np.all(error <= margins / 2)
    # And the bound is not vacuous: the margins are a small part of the scores' scale.
    scale = np.linalg.norm(X, axis=1) * np.linalg.norm(centers, axis=1).max()
    assert np.median(margins / scale) < 2.0 ** -(BITS[name] - 4)


@pytest.mark.parametrize("name", REDUCED)
def test_adversarial_rows_defeat_the_fast_argmin_and_a_naive_bound_but_not_the_certificate(name):
    X, centers = adversarial(bits=BITS[name])
    exact_labels = _exact_scores(X, centers).argmin(axis=1)
    fast, margins = precision.fast_scores(X, centers, precision=name, xp=np_xp)
    flipped = fast.argmin(axis=1) != exact_labels
    assert flipped.mean() > 0.3  # the data is adversarial
    ordered = np.sort(fast, axis=1)
    gap = ordered[:, 1] - ordered[:, 0]
    # A bound relative to the scores (one rounding of each at the reduced precision) would
    # certify many of the wrong labels; the margin certifies none of them.
    naive = 2.0 ** -BITS[name] * (np.abs(ordered[:, 0]) + np.abs(ordered[:, 1]))
    assert (flipped & (gap > naive)).mean() > 0.2
    assert not np.any(flipped & (gap > margins))
    uncertain = precision.near_ties(X, centers, precision=name, shift=None, xp=np_xp)
    assert np.all(uncertain[flipped])
    labels, sqdist = reference.assign(X, centers, shift=None, xp=np_xp, precision=name)
    expected, _ = reference.assign(X, centers, shift=None, xp=np_xp)
    np.testing.assert_array_equal(labels, expected)
    diff = X.astype(np.float64) - centers[labels]
    np.testing.assert_allclose(sqdist, (diff * diff).sum(axis=1), rtol=1e-5)


@pytest.mark.parametrize("name", REDUCED)
def test_clustered_data_needs_almost_no_recheck(name):
    X = _blobs(n=4000, d=32, k=16, seed=2)
    X = X - X.mean(axis=0)
    from sklearn.cluster import KMeans

    centers = KMeans(16, n_init=1, random_state=0).fit(X).cluster_centers_.astype(np.float32)
    uncertain = precision.near_ties(X, centers, precision=name, shift=None, xp=np_xp)
    assert uncertain.mean() < {"high": 0.01, "medium": 0.05}[name]


def test_float64_data_and_highest_are_never_rechecked():
    X = _uniform().astype(np.float64)
    assert not precision.near_ties(X, X[:8], precision="high", shift=None, xp=np_xp).any()
    X32 = _uniform()
    assert not precision.near_ties(X32, X32[:8], precision="highest", shift=None, xp=np_xp).any()


# --------------------------------------------------------------------------- whole fits


def _fit(placement, X, *, init=None, n_clusters=8, **params):
    Xp = placement.asarray(X, "float32")
    if init is not None:
        params["init"] = placement.asarray(init, "float32")
    return anykmeans.KMeans(n_clusters, random_state=0, n_init=1, max_iter=20, tol=0, **params).fit(Xp)


@pytest.mark.parametrize("name", REDUCED)
@pytest.mark.parametrize("data", ["blobs", "uniform", "digits", "adversarial"])
def test_every_mode_fits_exactly_as_highest_on_every_namespace(placement, name, data):
    init = None
    if data == "adversarial":
        X, init = adversarial(n=1200, bits=BITS[name])
    else:
        X = {"blobs": _blobs, "uniform": _uniform, "digits": _digits}[data]()
    with anykmeans.config_context(kernels="array_api"):
        expected = _fit(placement, X, init=init)
        with anykmeans.config_context(matmul_precision=name):
            got = _fit(placement, X, init=init)
    np.testing.assert_array_equal(placement.to_numpy(got.labels_), placement.to_numpy(expected.labels_))
    np.testing.assert_array_equal(
        placement.to_numpy(got.cluster_centers_), placement.to_numpy(expected.cluster_centers_)
    )
    assert got.n_iter_ == expected.n_iter_
    assert got.inertia_ == pytest.approx(expected.inertia_, rel=1e-6)


@pytest.mark.parametrize("algorithm", ["lloyd", "elkan"])
def test_the_setting_reaches_every_default_backend_and_changes_no_result(placement, algorithm):
    X = _blobs()
    expected = _fit(placement, X, algorithm=algorithm)
    with anykmeans.config_context(matmul_precision="medium"):
        got = _fit(placement, X, algorithm=algorithm)
        predicted = got.predict(placement.asarray(X, "float32"))
        score = got.score(placement.asarray(X, "float32"))
    np.testing.assert_array_equal(placement.to_numpy(got.labels_), placement.to_numpy(expected.labels_))
    np.testing.assert_array_equal(placement.to_numpy(predicted), placement.to_numpy(expected.labels_))
    assert score == pytest.approx(expected.score(placement.asarray(X, "float32")), rel=1e-5)


def test_minibatch_and_dask_passes_carry_the_precision():
    pytest.importorskip("dask")
    import dask.array as da

    X, init = adversarial(n=1200, bits=11)
    with anykmeans.config_context(kernels="array_api"):
        expected = anykmeans.MiniBatchKMeans(8, init=init, n_init=1, random_state=0, batch_size=256).fit(X)
        lazy = da.from_array(X, chunks=(400, -1))
        expected_dask = anykmeans.KMeans(8, init=init, n_init=1, max_iter=5, tol=0).fit(lazy)
        with anykmeans.config_context(matmul_precision="high"):
            got = anykmeans.MiniBatchKMeans(8, init=init, n_init=1, random_state=0, batch_size=256).fit(X)
            got_dask = anykmeans.KMeans(8, init=init, n_init=1, max_iter=5, tol=0).fit(lazy)
    np.testing.assert_array_equal(got.labels_, expected.labels_)
    np.testing.assert_array_equal(got.cluster_centers_, expected.cluster_centers_)
    np.testing.assert_array_equal(np.asarray(got_dask.labels_), np.asarray(expected_dask.labels_))


def test_reduced_passes_recheck_through_the_backends_exact_assign():
    """The recheck goes to the ``exact`` primitive with only the near-tie rows."""
    X, centers = adversarial(n=500, bits=8)
    X = np.concatenate([X, _blobs(n=500, d=64, k=4) * 100])
    seen = []

    def exact(rows, centers_, /, *, shift, xp):
        seen.append(rows.shape[0])
        return reference.assign(rows, centers_, shift=shift, xp=xp)

    labels, _ = precision.assign(X, centers, precision="medium", shift=None, xp=np_xp, exact=exact)
    uncertain = precision.near_ties(X, centers, precision="medium", shift=None, xp=np_xp)
    assert seen == [int(uncertain.sum())] and 0 < seen[0] < X.shape[0]
    np.testing.assert_array_equal(labels, reference.assign(X, centers, shift=None, xp=np_xp)[0])


# --------------------------------------------------------------------------- half-precision input


@pytest.mark.parametrize("estimator", [anykmeans.KMeans, anykmeans.MiniBatchKMeans])
def test_float16_input_is_clustered_in_float32_and_centers_keep_its_dtype(estimator):
    X16 = (_blobs() / 4).astype(np.float16)
    X16_before = X16.copy()
    got = estimator(8, random_state=0, n_init=1).fit(X16)
    expected = estimator(8, random_state=0, n_init=1).fit(X16.astype(np.float32))
    np.testing.assert_array_equal(X16, X16_before)
    assert got.cluster_centers_.dtype == np.float16
    np.testing.assert_array_equal(got.cluster_centers_, expected.cluster_centers_.astype(np.float16))
    np.testing.assert_array_equal(got.labels_, expected.labels_)
    np.testing.assert_array_equal(got.predict(X16), expected.predict(X16.astype(np.float32)))


def test_torch_bfloat16_input_on_the_cpu():
    torch = pytest.importorskip("torch")
    X = torch.from_numpy(_blobs() / 4).to(torch.bfloat16)
    got = anykmeans.KMeans(8, random_state=0, n_init=1).fit(X)
    expected = anykmeans.KMeans(8, random_state=0, n_init=1).fit(X.to(torch.float32))
    assert got.cluster_centers_.dtype == torch.bfloat16
    assert torch.equal(got.cluster_centers_, expected.cluster_centers_.to(torch.bfloat16))
    assert torch.equal(got.labels_, expected.labels_)
    # NumPy has no bfloat16: results sent there stay float32.
    with anykmeans.config_context(output="numpy"):
        to_numpy = anykmeans.KMeans(8, random_state=0, n_init=1).fit(X)
    assert to_numpy.cluster_centers_.dtype == np.float32
    np.testing.assert_array_equal(to_numpy.cluster_centers_, expected.cluster_centers_.numpy())


def test_kernels_written_before_the_option_run_at_highest():
    from anykmeans.backends import Kernels, register_kernels, unregister_kernels

    calls = []

    class OldKernels(Kernels):
        name = "old_signature"
        priority = -5

        def supports(self, xp, device):
            return True

        def assign(self, X, centers, /, *, shift, xp):
            calls.append(X.shape[0])
            return reference.assign(X, centers, shift=shift, xp=xp)

    register_kernels(OldKernels())
    try:
        X, init = adversarial(n=600, bits=11)
        expected = anykmeans.KMeans(8, init=init, n_init=1, max_iter=5, tol=0).fit(X)
        with anykmeans.config_context(kernels="old_signature", matmul_precision="high"):
            got = anykmeans.KMeans(8, init=init, n_init=1, max_iter=5, tol=0).fit(X)
            predicted = got.predict(X)
    finally:
        unregister_kernels("old_signature")
    assert calls and all(rows == X.shape[0] for rows in calls)  # never a recheck of a few rows
    np.testing.assert_array_equal(got.labels_, expected.labels_)
    np.testing.assert_array_equal(predicted, expected.labels_)


def test_float16_input_is_read_in_float32_chunks_never_copied_whole():
    import tracemalloc

    rng = np.random.default_rng(0)
    X16 = (rng.normal(size=(16, 32))[rng.integers(0, 16, 200_000)] + rng.normal(size=(200_000, 32))).astype(np.float16)
    init = X16[:16].astype(np.float32)
    expected = anykmeans.KMeans(16, init=init, n_init=1, max_iter=5, tol=0).fit(X16.astype(np.float32))
    for kernels in ("numpy", "array_api"):
        with anykmeans.config_context(kernels=kernels, working_memory=4):
            tracemalloc.start()
            try:
                got = anykmeans.KMeans(16, init=init, n_init=1, max_iter=5, tol=0).fit(X16)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
        float32_copy = X16.size * 4
        assert peak < float32_copy / 2, (kernels, peak, float32_copy)
        np.testing.assert_array_equal(got.labels_, expected.labels_)
        np.testing.assert_array_equal(got.cluster_centers_, expected.cluster_centers_.astype(np.float16))


def test_plots_take_float16_data_whose_squares_overflow_it():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from anykmeans.plot import plot_clusters, plot_elbow

    X16 = (np.random.default_rng(0).normal(size=(3000, 5)) * 300).astype(np.float16)  # squares > 65504
    km = anykmeans.KMeans(4, random_state=0, n_init=1).fit(X16)
    ax = plot_clusters(X16, km)
    points = ax.collections[0].get_offsets()
    assert points.shape == (3000, 2) and np.isfinite(points).all()
    ax = plot_elbow(X16, range(2, 4), silhouette=False)
    assert len(ax.lines[0].get_xdata()) == 2
