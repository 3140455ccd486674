"""The CuPy backend beyond the generic backend tests (which run it on the ``cupy`` placement):
both ``nearest`` paths and the GEMM tiling against the reference on the GPU, ties, the
deterministic segment sums, and whole fits against NumPy.

The tests marked ``gpu`` need CuPy and a CUDA device and skip without them; the others check,
on any machine, what can be checked without a GPU.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import array_api_compat
import numpy as np
import pytest

import anykmeans
from anykmeans import KMeans, backends
from anykmeans.backends import reference
from anykmeans.backends import cupy as cupy_backend

DTYPES = ["float32", "float64"]
# Rounding of expanded-form distances and of sums, relative to the magnitudes involved.
RTOL = {"float32": 1e-5, "float64": 1e-12}


def _cuda_available() -> bool:
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - no driver, no device
        return False


def gpu(test):
    """Mark ``test`` as needing a CUDA device, and skip it without one."""
    return pytest.mark.gpu(pytest.mark.skipif(not _cuda_available(), reason="no CUDA device")(test))


@pytest.fixture
def cp():
    import cupy

    return cupy


@pytest.fixture
def xp():
    import array_api_compat.cupy as xp

    return xp


# --------------------------------------------------------------------------- helpers


def _blobs(n, d, k, seed=0, scale=10.0, spread=0.5):
    """float64 points around k random centers, and the centers."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=scale, size=(k, d))
    X = centers[rng.integers(0, k, size=n)] + rng.normal(scale=spread, size=(n, d))
    return X, centers


def _exact_sqdist(X, centers):
    X, centers = np.asarray(X, np.float64), np.asarray(centers, np.float64)
    return ((X[:, None, :] - centers[None, :, :]) ** 2).sum(axis=-1)


def _rounding_bound(X, centers, dtype):
    """How far expanded-form distances in ``dtype`` can be from the exact ones."""
    X, centers = np.asarray(X, np.float64), np.asarray(centers, np.float64)
    scale = (X * X).sum(axis=1).max() + (centers * centers).sum(axis=1).max()
    return 4 * RTOL[dtype] * scale


def _assert_nearest(labels, min_sqdist, X_host, C_host, dtype, expected_labels=None):
    """Labels are a nearest center (the lowest index where the distances are exactly equal,
    ``expected_labels`` wherever the nearest is clear of the rounding), distances close."""
    exact = _exact_sqdist(X_host, C_host)
    bound = _rounding_bound(X_host, C_host, dtype)
    rows = np.arange(exact.shape[0])
    assert labels.dtype.kind == "i"
    near = exact <= exact.min(axis=1, keepdims=True) + bound
    assert near[rows, labels].all(), "a label is not one of the nearest centers"
    clear = near.sum(axis=1) == 1
    expected = exact.argmin(axis=1) if expected_labels is None else expected_labels
    np.testing.assert_array_equal(labels[clear], expected[clear])
    np.testing.assert_allclose(min_sqdist, exact[rows, labels], rtol=RTOL[dtype], atol=bound)
    assert (min_sqdist >= 0).all()


# --------------------------------------------------------------------------- without a GPU


def test_registered_with_priority_20_for_cupy_only():
    import array_api_compat.numpy as np_xp

    kernels = backends.list_kernels()["cupy"]
    assert kernels is cupy_backend.kernels and kernels.priority == 20
    assert not kernels.supports(np_xp, "cpu")


def test_the_module_does_not_import_cupy(tmp_path):
    code = textwrap.dedent(
        """
        import sys
        import array_api_compat.numpy as np_xp
        from anykmeans.backends import cupy as backend
        assert not backend.kernels.supports(np_xp, "cpu")
        assert backend.uses_fused_path(8, 16, 4) and not backend.uses_fused_path(32, 16, 4)
        assert "distance.cu" in [f for f, _ in backend.kernel_programs()]
        print("cupy" in sys.modules)
        """
    )
    # Outside the checkout, so that the installed package is imported, not the source tree.
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert result.stdout.strip() == "False"


def test_kernel_sources_ship_as_package_data_with_every_instantiation():
    programs = cupy_backend.kernel_programs()
    assert {filename for filename, _ in programs} == {"distance.cu", "segment_sum.cu", "precision.cu"}
    assert ("precision.cu", ("round_rows", "nearest_two_from_scores", "sqdist_to_labels")) in programs
    for ctype in ("float", "double"):
        names = [name for _, names in programs for name in names]
        for kernel in ("row_sqnorms", "nearest_from_scores", "pairwise_from_scores",
                       "segment_partials", "segment_merge"):
            assert f"{kernel}<{ctype}>" in names
        assert [f"nearest_fused<{ctype}, {d}>" in names for d in range(1, 34)] == [True] * 32 + [False]
    for filename, names in programs:
        source = cupy_backend.kernel_source(filename)
        for name in names:
            assert f"__global__ void {name.split('<')[0]}(" in source


def test_fused_path_threshold():
    # d <= 16 and k·(round_up(d, 4) + 1)·itemsize <= 48 KiB.
    assert cupy_backend.uses_fused_path(8, 16, 4)
    assert cupy_backend.uses_fused_path(16, 722, 4) and not cupy_backend.uses_fused_path(16, 723, 4)
    assert cupy_backend.uses_fused_path(8, 682, 8) and not cupy_backend.uses_fused_path(8, 683, 8)
    assert not cupy_backend.uses_fused_path(17, 1, 4)
    # The kernel itself runs up to 32 features (for measurements against the GEMM path).
    assert cupy_backend.fused_path_fits(32, 256, 4) and not cupy_backend.fused_path_fits(33, 1, 4)


def test_work_items_cover_every_cluster_within_the_grid():
    """The segment-sum grid (an upper bound computed from the shapes alone) holds every work
    item, whatever the cluster sizes; the piece size depends on n only."""
    rng = np.random.default_rng(0)
    for n, k in [(1, 1), (5, 3), (255, 1000), (256, 1), (10_000, 7), (2_000_000, 3), (700_000, 16_384)]:
        per_item = cupy_backend.rows_per_item(n)
        assert per_item >= 256 and -(-n // per_item) <= cupy_backend.TARGET_ITEMS
        for _ in range(20):
            counts = rng.multinomial(n, rng.dirichlet(np.full(k, rng.uniform(0.01, 10))))
            assert (-(-counts // per_item)).sum() <= cupy_backend.max_items(n, k, per_item)
    assert [cupy_backend.column_tile(c) for c in (1, 9, 32, 33, 129, 257)] == [1, 9, 32, 17, 26, 29]


def test_gemm_tiles_stay_within_the_budget():
    budget = cupy_backend.SCORES_TILE_BYTES
    assert cupy_backend.tile_rows(10, 5, 4) == 10
    assert cupy_backend.tile_rows(10**7, 1024, 4) == budget // 4096  # a multiple of 256
    rows = cupy_backend.tile_rows(10**7, 1000, 4)
    assert rows % 256 == 0 and rows * 4000 <= budget < (rows + 256) * 4000
    rows = cupy_backend.tile_rows(10**7, budget // 400, 4)  # fewer than 256 rows fit
    assert rows == 100
    assert cupy_backend.tile_rows(10, 2**40, 8) == 1
    # A larger budget (a share of the free device memory) gives larger tiles, never smaller.
    assert cupy_backend.tile_rows(10**7, 1024, 4, 2**34) == 2**34 // 4096
    assert cupy_backend.tile_rows(10**7, 1024, 4, 2**20) == budget // 4096


# --------------------------------------------------------------------------- on the GPU

PATH_SHAPES = {
    # (n, d, k): the fused path takes them in both dtypes; the GEMM path is forced.
    "fused": [(5000, 8, 16), (3001, 3, 200), (2000, 16, 100), (1000, 1, 1), (777, 5, 7)],
    "gemm": [(5000, 32, 64), (3001, 130, 500), (2000, 20, 3), (1000, 1, 1), (777, 5, 7)],
}


def _force_path(monkeypatch, path, d, k, itemsize):
    if path == "gemm":
        monkeypatch.setattr(cupy_backend, "FUSED_MAX_FEATURES", 0)
    assert cupy_backend.uses_fused_path(d, k, itemsize) == (path == "fused")


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "path, shape", [(p, s) for p, shapes in PATH_SHAPES.items() for s in shapes]
)
def test_nearest_paths_match_the_reference_on_the_gpu(cp, xp, monkeypatch, path, shape, dtype):
    n, d, k = shape
    X, C = _blobs(n, d, k, seed=n + d + k)
    X_host, C_host = X.astype(dtype), C.astype(dtype)
    Xd, Cd = cp.asarray(X_host), cp.asarray(C_host)
    _force_path(monkeypatch, path, d, k, Xd.itemsize)

    labels, min_sqdist = cupy_backend.kernels.assign(Xd, Cd, shift=None, xp=xp)
    assert isinstance(labels, cp.ndarray) and labels.device == Xd.device
    assert labels.dtype == cp.int32 and min_sqdist.dtype == Xd.dtype
    ref_labels, ref_min = reference.assign(Xd, Cd, shift=None, xp=xp)
    _assert_nearest(labels.get(), min_sqdist.get(), X_host, C_host, dtype,
                    expected_labels=ref_labels.get())
    np.testing.assert_allclose(min_sqdist.get(), ref_min.get(), rtol=RTOL[dtype],
                               atol=_rounding_bound(X_host, C_host, dtype))

    pairwise = cupy_backend.kernels.pairwise(Xd, Cd, shift=None, xp=xp)
    assert pairwise.shape == (n, k) and pairwise.dtype == Xd.dtype
    np.testing.assert_allclose(
        pairwise.get(), reference.pairwise(Xd, Cd, shift=None, xp=xp).get(),
        rtol=RTOL[dtype], atol=_rounding_bound(X_host, C_host, dtype),
    )
    assert (pairwise >= 0).all()


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_several_gemm_tiles_give_the_result_of_one(cp, xp, monkeypatch, dtype):
    n, d, k = 4321, 48, 300
    X, C = _blobs(n, d, k, seed=2)
    X_host, C_host = X.astype(dtype), C.astype(dtype)
    Xd, Cd = cp.asarray(X_host), cp.asarray(C_host)
    assert cupy_backend.tile_rows(n, k, Xd.itemsize) == n
    one_labels, one_min = cupy_backend.kernels.assign(Xd, Cd, shift=None, xp=xp)

    monkeypatch.setattr(cupy_backend, "SCORES_TILE_BYTES", 1000 * k * Xd.itemsize)
    monkeypatch.setattr(cupy_backend, "SCORES_SHARE_OF_FREE", 0.0)
    assert cupy_backend.tile_rows(n, k, Xd.itemsize) == 768  # 6 tiles, the last of 481 rows
    labels, min_sqdist = cupy_backend.kernels.assign(Xd, Cd, shift=None, xp=xp)
    _assert_nearest(labels.get(), min_sqdist.get(), X_host, C_host, dtype,
                    expected_labels=one_labels.get())
    np.testing.assert_allclose(min_sqdist.get(), one_min.get(), rtol=RTOL[dtype],
                               atol=_rounding_bound(X_host, C_host, dtype))


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("path", ["fused", "gemm"])
def test_exact_ties_go_to_the_lowest_index(cp, xp, monkeypatch, path, dtype):
    # Small integers: every distance is exact. The rows are nearest to centers 37, 69, 150
    # and 180 alike (lanes 5, 5, 22 and 20 of the GEMM path's warp; an early, a middle and a
    # late center of the fused path's scan); all others are farther.
    k, d = 200, 4
    C = np.zeros((k, d))
    C[:, 0] = 2.0
    for j, (axis, sign) in {37: (1, 1.0), 69: (1, -1.0), 150: (2, 1.0), 180: (2, -1.0)}.items():
        C[j] = 0.0
        C[j, axis] = sign
    X = np.zeros((70, d))
    X[:, 3] = np.arange(70) % 7  # on the axis that all four are orthogonal to
    _force_path(monkeypatch, path, d, k, np.dtype(dtype).itemsize)
    labels, min_sqdist = cupy_backend.kernels.assign(
        cp.asarray(X, dtype=dtype), cp.asarray(C, dtype=dtype), shift=None, xp=xp
    )
    np.testing.assert_array_equal(labels.get(), np.full(70, 37))
    np.testing.assert_array_equal(min_sqdist.get(), 1.0 + X[:, 3] ** 2)


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_inputs_give_the_same_results(cp, xp, dtype):
    X, C = _blobs(3000, 24, 40, seed=4)
    Xd = cp.asarray(X, dtype=dtype)
    Cd = cp.asarray(C, dtype=dtype)
    labels, min_sqdist = cupy_backend.kernels.assign(Xd, Cd, shift=None, xp=xp)
    wide = cp.zeros((3000, 48), dtype=dtype)
    wide[:, ::2] = Xd
    for variant in (cp.asfortranarray(Xd), wide[:, ::2]):
        got_labels, got_min = cupy_backend.kernels.assign(variant, cp.asfortranarray(Cd), shift=None, xp=xp)
        assert (got_labels == labels).all() and (got_min == min_sqdist).all()
    weights = cp.ones(6000, dtype=dtype)[::2]
    sums, weight_sums = cupy_backend.kernels.segment_sum(
        Xd, cp.ones(3000, dtype=dtype), labels, n_clusters=40, shift=None, xp=xp
    )
    got_sums, got_weight_sums = cupy_backend.kernels.segment_sum(
        cp.asfortranarray(Xd), weights, labels, n_clusters=40, shift=None, xp=xp
    )
    assert (got_sums == sums).all() and (got_weight_sums == weight_sums).all()


SEGMENT_SHAPES = [
    (300_000, 33, 5),    # hundreds of work items per cluster, two column tiles
    (20_000, 7, 2000),   # most clusters empty, the others a few rows each
    (3_000_000, 2, 3),   # more than 256 rows per work item
    (10, 3, 4),
]


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SEGMENT_SHAPES)
def test_segment_sum_is_bit_identical_and_matches_the_reference(cp, xp, shape, dtype):
    n, d, k = shape
    rng = np.random.default_rng(n + k)
    X = (rng.normal(size=(n, d)) * rng.uniform(0.1, 10.0, size=d)).astype(dtype)
    used = rng.choice(k, size=max(1, k // 3), replace=False) if k > 10 else np.arange(k - 1)
    labels = rng.choice(used, size=n)
    weights = rng.uniform(0.5, 2.0, size=n)
    weights[rng.random(n) < 0.2] = 0.0
    weights = weights.astype(dtype)
    args = (cp.asarray(X), cp.asarray(weights), cp.asarray(labels))
    options = dict(n_clusters=k, shift=None, xp=xp)

    first = cupy_backend.kernels.segment_sum(*args, **options)
    KMeans(3, random_state=0, n_init=1).fit(cp.asarray(X[:1000]))  # other work in between
    second = cupy_backend.kernels.segment_sum(*args, **options)
    for a, b in zip(first, second):
        assert a.dtype == X.dtype
        assert a.get().tobytes() == b.get().tobytes()
    sums, weight_sums = (a.get() for a in first)
    assert sums.shape == (k, d) and weight_sums.shape == (k,)

    # Against float64 sums of the stored values: accumulation is in double, so float32 results
    # are within an ulp of them, float64 ones within the two summations' rounding ...
    exact = np.zeros((k, d))
    np.add.at(exact, labels, weights[:, None].astype(np.float64) * X)
    magnitude = np.zeros((k, d))
    np.add.at(magnitude, labels, np.abs(weights[:, None].astype(np.float64) * X))
    exact_weights = np.bincount(labels, weights=weights.astype(np.float64), minlength=k)
    eps = np.finfo(dtype).eps
    assert np.all(np.abs(sums - exact) <= eps * np.abs(exact) + 1e-10 * magnitude)
    assert np.all(np.abs(weight_sums - exact_weights) <= (eps + 1e-10) * exact_weights)
    # ... and against the reference on the GPU.
    ref_sums, ref_weight_sums = (a.get() for a in reference.segment_sum(*args, **options))
    assert np.all(np.abs(sums - ref_sums) <= RTOL[dtype] * (magnitude + np.abs(ref_sums)))
    assert np.all(np.abs(weight_sums - ref_weight_sums) <= RTOL[dtype] * ref_weight_sums)
    empty = np.bincount(labels, minlength=k) == 0
    assert (sums[empty] == 0).all() and (weight_sums[empty] == 0).all()


@gpu
@pytest.mark.parametrize("shape", [(20_000, 8, 16), (20_000, 40, 30)], ids=["fused", "gemm"])
def test_fit_on_cupy_matches_numpy_from_the_same_init(cp, shape):
    n, d, k = shape
    X, centers = _blobs(n, d, k, seed=7, scale=6.0, spread=1.0)
    init = centers + np.random.default_rng(8).normal(scale=0.5, size=centers.shape)
    X32, init32 = X.astype(np.float32), init.astype(np.float32)
    params = dict(n_clusters=k, tol=0, max_iter=50)
    host = KMeans(init=init32, **params).fit(X32)
    Xd = cp.asarray(X32)
    assert backends.select_kernels("auto", array_api_compat.array_namespace(Xd), Xd.device).name == "cupy"
    assert cupy_backend.uses_fused_path(d, k, 4) == (d == 8)
    device = KMeans(init=cp.asarray(init32), **params).fit(Xd)

    assert isinstance(device.cluster_centers_, cp.ndarray)
    assert device.cluster_centers_.dtype == cp.float32
    np.testing.assert_array_equal(device.labels_.get(), host.labels_)
    assert device.n_iter_ == host.n_iter_
    scale = np.abs(host.cluster_centers_).max()
    np.testing.assert_allclose(device.cluster_centers_.get(), host.cluster_centers_,
                               rtol=1e-5, atol=1e-5 * scale)
    assert device.inertia_ == pytest.approx(host.inertia_, rel=1e-5)


@gpu
def test_fits_with_the_same_seed_are_bit_identical(cp):
    X, _ = _blobs(50_000, 32, 64, seed=9, scale=3.0, spread=1.0)
    Xd = cp.asarray(X, dtype=cp.float32)
    fits = []
    with anykmeans.config_context(working_memory=4):  # several chunks per pass
        for seed in (0, 1, 0):
            fits.append(KMeans(64, random_state=seed, max_iter=20, tol=0).fit(Xd))
    first, _, again = fits
    assert first.labels_.get().tobytes() == again.labels_.get().tobytes()
    assert first.cluster_centers_.get().tobytes() == again.cluster_centers_.get().tobytes()
    assert first.inertia_ == again.inertia_ and first.n_iter_ == again.n_iter_


# --------------------------------------------------------------------------- device memory


@gpu
def test_auto_working_memory_is_half_of_the_free_device_memory(cp):
    from anykmeans._prepare import prepare

    X = cp.ones((1000, 8), dtype=cp.float32)
    work = prepare(X, cp.ones(1000, dtype=cp.float32), config=anykmeans.get_config(), n_columns=16)
    free = cupy_backend.free_bytes(X.device.id)
    assert anykmeans.get_config()["working_memory"] == "auto"
    # Half of it, rounded down to a power of two.
    assert 0.24 * free <= work.plan.working_memory <= 0.51 * free
    assert work.plan.chunk_rows >= 1000  # one chunk holds every row


@gpu
def test_a_fit_beyond_the_memory_pool_limit_shrinks_its_chunks_and_matches(cp):
    # The pool may hold X and a chunk of about 1/16 of X's distance block: the first pass
    # runs out of memory, halves its chunks until they fit, and the fit is the one that had
    # enough memory (float64, same init: identical labels).
    n, d, k = 200_000, 16, 512
    X, C = _blobs(n, d, k, seed=9)
    Xd = cp.asarray(X)
    init = cp.asarray(C)
    expected = KMeans(k, init=init, max_iter=5, tol=0).fit(Xd)
    pool = cp.get_default_memory_pool()
    pool.free_all_blocks()
    limit = Xd.nbytes * 2 + n * k * 8 // 16
    assert n * k * 8 > 4 * limit  # one chunk's distance block alone is over four times the limit
    pool.set_limit(size=limit)
    try:
        with anykmeans.config_context(working_memory=2**14):  # 16 GiB: the whole pass in one chunk
            got = KMeans(k, init=init, max_iter=5, tol=0).fit(Xd)
    finally:
        pool.set_limit(size=0)
    np.testing.assert_array_equal(got.labels_.get(), expected.labels_.get())
    np.testing.assert_allclose(got.cluster_centers_.get(), expected.cluster_centers_.get(), rtol=1e-10)
    assert got.n_iter_ == expected.n_iter_


@gpu
def test_a_pass_that_cannot_fit_one_row_raises_a_clear_memory_error(cp, xp):
    from anykmeans._passes import Plan

    Xd = cp.asarray(np.random.default_rng(0).normal(size=(5000, 64)))
    centers = Xd[:1000].copy()
    plan = Plan.create(xp, Xd.device, cupy_backend.kernels, working_memory=2**30, n_features=64,
                       n_columns=1000, itemsize=8)
    pool = cp.get_default_memory_pool()
    pool.free_all_blocks()
    pool.set_limit(size=pool.used_bytes())  # nothing more can be allocated
    try:
        with pytest.raises(MemoryError, match="assign pass ran out of memory on .* even with 1 row"):
            plan.assign(Xd, centers)
    finally:
        pool.set_limit(size=0)


# --------------------------------------------------------------------------- streaming


@gpu
def test_host_to_device_copies_a_host_array_on_a_stream_of_its_own(cp):
    X = np.random.default_rng(0).normal(size=(1000, 7))[:, 1:6]  # not contiguous
    with cp.cuda.Stream(non_blocking=True):
        got = cupy_backend.host_to_device(X)
    assert isinstance(got, cp.ndarray) and got.flags.c_contiguous
    np.testing.assert_array_equal(got.get(), X)
    assert cupy_backend.host_to_device(np.empty((0, 3))).shape == (0, 3)
    # The streaming context runs a thread's blocks on one non-blocking stream of its own.
    device = cp.cuda.Device(0)
    with cupy_backend.kernels.streaming(device):
        first = cp.cuda.get_current_stream()
    with cupy_backend.kernels.streaming(device):
        assert cp.cuda.get_current_stream() is first
    assert first is not cp.cuda.get_current_stream() and first != cp.cuda.Stream.null


@gpu
def test_host_data_larger_than_the_free_memory_is_streamed_and_fits_as_in_memory(cp):
    pytest.importorskip("dask.array")
    n, d, k = 400_000, 32, 64  # X: 102 MB of float64
    X, C = _blobs(n, d, k, seed=10)
    with anykmeans.config_context(device="cuda"):
        expected = KMeans(k, init=C, max_iter=10, tol=0).fit(X)
    pool = cp.get_default_memory_pool()
    pool.free_all_blocks()
    pool.set_limit(size=int(1.5 * X.nbytes))  # X is two thirds of what may be allocated
    try:
        with anykmeans.config_context(device="cuda"):
            got = KMeans(k, init=C, max_iter=10, tol=0).fit(X)
    finally:
        pool.set_limit(size=0)
    assert expected._fit_stats["namespace"] == "cupy" and got._fit_stats["namespace"] == "dask.array"
    assert isinstance(got.labels_, np.ndarray)
    np.testing.assert_array_equal(got.labels_, expected.labels_)
    np.testing.assert_allclose(got.cluster_centers_, expected.cluster_centers_, rtol=1e-10)
    assert got.n_iter_ == expected.n_iter_
    assert got.inertia_ == pytest.approx(expected.inertia_, rel=1e-10)


@gpu
def test_a_dask_array_of_numpy_blocks_fits_on_the_gpu_block_by_block(cp):
    da = pytest.importorskip("dask.array")
    n, d, k = 100_000, 16, 32
    X, C = _blobs(n, d, k, seed=11)
    with anykmeans.config_context(device="cuda"):
        expected = KMeans(k, init=C, max_iter=10, tol=0).fit(X)
        got = KMeans(k, init=C, max_iter=10, tol=0).fit(da.from_array(X, chunks=(12_500, d)))
    assert got._fit_stats["kernels"] == "cupy"  # the blocks' passes ran on the GPU
    np.testing.assert_array_equal(np.asarray(got.labels_), expected.labels_)
    np.testing.assert_allclose(np.asarray(got.cluster_centers_), expected.cluster_centers_, rtol=1e-10)


# --------------------------------------------------------------------------- PyTorch CUDA


@gpu
def test_pytorch_cuda_tensors_run_the_cuda_kernels_and_fit_as_cupy_does(cp):
    torch = pytest.importorskip("torch")
    n, d, k = 50_000, 24, 40
    X, C = _blobs(n, d, k, seed=12)
    expected = KMeans(k, init=cp.asarray(C), max_iter=20, tol=0).fit(cp.asarray(X))
    Xt = torch.as_tensor(X, device="cuda")
    got = KMeans(k, init=torch.as_tensor(C, device="cuda"), max_iter=20, tol=0).fit(Xt)
    assert got._fit_stats["kernels"] == "torch_cuda"
    assert isinstance(got.labels_, torch.Tensor) and got.labels_.device.type == "cuda"
    # The same kernels on the same data: the same bits.
    np.testing.assert_array_equal(got.labels_.cpu().numpy(), expected.labels_.get())
    np.testing.assert_array_equal(got.cluster_centers_.cpu().numpy(), expected.cluster_centers_.get())
    assert got.n_iter_ == expected.n_iter_ and got.inertia_ == expected.inertia_
    # A PyTorch stream of the user's own: the kernels run on it.
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        on_stream = KMeans(k, init=torch.as_tensor(C, device="cuda"), max_iter=20, tol=0).fit(Xt)
    stream.synchronize()
    np.testing.assert_array_equal(on_stream.labels_.cpu().numpy(), expected.labels_.get())


# --------------------------------------------------------------------------- matmul_precision


def test_the_reduced_path_is_taken_for_float32_gemm_shapes_only():
    assert cupy_backend.uses_reduced_path("high", np.float32, 128, 1024)
    assert cupy_backend.uses_reduced_path("medium", np.float32, 768, 8192)
    assert not cupy_backend.uses_reduced_path("highest", np.float32, 128, 1024)
    assert not cupy_backend.uses_reduced_path("high", np.float64, 128, 1024)
    assert not cupy_backend.uses_reduced_path("high", np.float32, 8, 16)  # the fused small-d path


@gpu
@pytest.mark.parametrize("bits", [11, 8])
def test_rows_are_rounded_on_the_gpu_as_the_reference_rounds_them(cp, bits):
    from anykmeans.backends import precision

    rng = np.random.default_rng(0)
    X = (rng.standard_normal((3000, 77)) * np.exp(rng.uniform(-10, 10, (3000, 1)))).astype(np.float32)
    rounded, norm, rounded_norm, residual_norm = cupy_backend.round_rows(cp.asarray(X), bits)
    expected = precision.round_significand(X, bits=bits, xp=array_api_compat.numpy)
    # Round to nearest even on the GPU; Veltkamp's splitting may differ only at exact halfway points.
    got = rounded.get()
    halfway = np.abs(X.astype(np.float64) - got) == np.abs(X.astype(np.float64) - expected)
    assert np.all((got == expected) | halfway)
    for values, rows in ((norm, X), (rounded_norm, got), (residual_norm, X - got)):
        np.testing.assert_allclose(values.get(), np.linalg.norm(rows.astype(np.float64), axis=1), rtol=1e-5)


@gpu
@pytest.mark.parametrize("triton", [True, False], ids=["triton", "cublas"])
@pytest.mark.parametrize("name", ["high", "medium"])
@pytest.mark.parametrize("data", ["blobs", "uniform", "adversarial"])
def test_tensor_core_labels_equal_the_float32_labels(cp, xp, monkeypatch, triton, name, data):
    from test_precision import adversarial

    from anykmeans.backends import _triton_nearest

    if triton and not _triton_nearest.available():
        pytest.skip("Triton or PyTorch is not installed")
    monkeypatch.setattr(cupy_backend, "USE_TRITON", triton)

    if data == "adversarial":
        X, C = adversarial(n=20_000, d=64, k=64, bits={"high": 11, "medium": 8}[name])
    elif data == "blobs":
        X, C = _blobs(50_000, 96, 200, seed=4)
    else:
        X = np.random.default_rng(5).random((50_000, 96), dtype=np.float32)
        C = X[:300] + 0.001
    Xd, Cd = cp.asarray(X, dtype=cp.float32), cp.asarray(C, dtype=cp.float32)
    expected, _ = cupy_backend.kernels.assign(Xd, Cd, shift=None, xp=xp)
    labels, sqdist = cupy_backend.kernels.assign(Xd, Cd, shift=None, xp=xp, precision=name)
    # Equal, except where the recheck's GEMM (of fewer rows: cuBLAS may sum in another order)
    # meets two centers equally near within float32's own rounding.
    X64, C64 = X.astype(np.float64), C.astype(np.float64)
    differ = np.flatnonzero(labels.get() != expected.get())
    gap = np.abs(((X64[differ] - C64[labels.get()[differ]]) ** 2).sum(1)
                 - ((X64[differ] - C64[expected.get()[differ]]) ** 2).sum(1))
    scale = (np.linalg.norm(X64[differ], axis=1) + np.linalg.norm(C64, axis=1).max()) ** 2
    assert np.all(gap <= 4 * X.shape[1] * 2.0**-24 * scale), differ
    assert differ.size <= 2
    diff = X.astype(np.float64) - C.astype(np.float64)[labels.get()]
    np.testing.assert_allclose(sqdist.get(), (diff * diff).sum(axis=1), rtol=1e-4, atol=1e-4)
    # The GPU's scores are within the margins the reference proves for its emulation.
    from anykmeans.backends import precision

    near = precision.near_ties(Xd, Cd, precision=name, shift=None, xp=xp).get()
    if data == "adversarial":
        assert near.mean() > 0.3
    elif data == "blobs":
        assert near.mean() < 0.05


@gpu
@pytest.mark.parametrize("triton", [True, False], ids=["triton", "cublas"])
@pytest.mark.parametrize("name", ["high", "medium"])
def test_a_fit_at_reduced_precision_is_the_fit_at_highest(cp, monkeypatch, triton, name):
    from anykmeans.backends import _triton_nearest

    if triton and not _triton_nearest.available():
        pytest.skip("Triton or PyTorch is not installed")
    monkeypatch.setattr(cupy_backend, "USE_TRITON", triton)
    X, C = _blobs(100_000, 128, 256, seed=6)
    X, C = cp.asarray(X, dtype=cp.float32), cp.asarray(C, dtype=cp.float32)
    expected = KMeans(256, init=C, max_iter=15, tol=0).fit(X)
    with anykmeans.config_context(matmul_precision=name):
        got = KMeans(256, init=C, max_iter=15, tol=0).fit(X)
    np.testing.assert_array_equal(got.labels_.get(), expected.labels_.get())
    np.testing.assert_array_equal(got.cluster_centers_.get(), expected.cluster_centers_.get())
    assert got.n_iter_ == expected.n_iter_ and got.inertia_ == pytest.approx(expected.inertia_, rel=1e-6)


@gpu
def test_cupy_tf32_setting_does_not_leak_into_highest(cp, xp, monkeypatch):
    """CUPY_TF32=1 makes CuPy's float32 matmul TF32; "highest" still asks cuBLAS for IEEE."""
    from cupy._core import _routines_linalg as linalg

    X, C = _blobs(20_000, 64, 100, seed=7)
    Xd, Cd = cp.asarray(X, dtype=cp.float32), cp.asarray(C, dtype=cp.float32)
    expected = cupy_backend.kernels.assign(Xd, Cd, shift=None, xp=xp)
    before = linalg.get_compute_type(np.float32)
    linalg.set_compute_type(np.float32, linalg.COMPUTE_TYPE_TF32)
    try:
        got = cupy_backend.kernels.assign(Xd, Cd, shift=None, xp=xp)
        assert linalg.get_compute_type(np.float32) == linalg.COMPUTE_TYPE_TF32  # restored
        tf32 = cp.matmul(Xd, Cd.T)  # what the setting does to a plain matmul
    finally:
        linalg.set_compute_type(np.float32, before)
    assert not cp.array_equal(tf32, cp.matmul(Xd, Cd.T))  # the setting was in force
    # Labels and the expanded-form distances: the same bits as an IEEE float32 GEMM gives.
    for got_part, expected_part in zip(got, expected):
        np.testing.assert_array_equal(got_part.get(), expected_part.get())


@gpu
@pytest.mark.parametrize("name", ["highest", "high", "medium"])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_pytorch_cuda_input_fits_as_float32(cp, dtype, name):
    torch = pytest.importorskip("torch")
    X, C = _blobs(50_000, 64, 64, seed=8)
    Xt = torch.as_tensor(X, device="cuda").to(getattr(torch, dtype))
    init = torch.as_tensor(C, device="cuda").to(getattr(torch, dtype))
    with anykmeans.config_context(matmul_precision=name):
        got = KMeans(64, init=init, max_iter=10, tol=0).fit(Xt)
    expected = KMeans(64, init=init.float(), max_iter=10, tol=0).fit(Xt.float())
    assert got.cluster_centers_.dtype == getattr(torch, dtype)
    assert torch.equal(got.labels_, expected.labels_)
    assert torch.equal(got.cluster_centers_, expected.cluster_centers_.to(getattr(torch, dtype)))


@gpu
def test_cupy_float16_input_gives_float16_centers(cp):
    X, C = _blobs(20_000, 32, 16, seed=9)
    got = KMeans(16, init=cp.asarray(C, dtype=cp.float16), max_iter=10, tol=0).fit(cp.asarray(X, dtype=cp.float16))
    expected = KMeans(16, init=cp.asarray(C, dtype=cp.float16).astype(cp.float32), max_iter=10, tol=0).fit(
        cp.asarray(X, dtype=cp.float16).astype(cp.float32)
    )
    assert got.cluster_centers_.dtype == cp.float16
    np.testing.assert_array_equal(got.labels_.get(), expected.labels_.get())


@gpu
def test_pytorch_cuda_on_a_stream_of_its_own_at_high_precision(cp):
    torch = pytest.importorskip("torch")
    X, C = _blobs(60_000, 96, 128, seed=10)
    Xt = torch.as_tensor(X, device="cuda", dtype=torch.float32)
    init = torch.as_tensor(C, device="cuda", dtype=torch.float32)
    expected = KMeans(128, init=init, max_iter=10, tol=0).fit(Xt)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream), anykmeans.config_context(matmul_precision="high"):
        got = KMeans(128, init=init, max_iter=10, tol=0).fit(Xt)
    stream.synchronize()
    assert got._fit_stats["kernels"] == "torch_cuda"
    assert torch.equal(got.labels_, expected.labels_)
    assert torch.equal(got.cluster_centers_, expected.cluster_centers_)
