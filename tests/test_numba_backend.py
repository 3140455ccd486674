"""The Numba backend beyond the conformance tests: several parts per call, threads, BLAS."""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("numba")
threadpoolctl = pytest.importorskip("threadpoolctl")

import array_api_compat.numpy as xp  # noqa: E402

import anykmeans  # noqa: E402
from anykmeans.backends import numba as numba_backend  # noqa: E402
from anykmeans.backends import reference  # noqa: E402

FUSED = numba_backend.kernels
N_FEATURES = [1, 3, 16, 40]


def _data(n_features, dtype, *, n=3000, k=12, seed=0):
    rng = np.random.default_rng(seed)
    offset = rng.uniform(50, 100, size=n_features)  # far from the origin: the shift matters
    X = (rng.normal(size=(n, n_features)) + offset).astype(dtype)
    shift = X.mean(axis=0)
    centers = (X[rng.choice(n, size=k, replace=False)] - shift).astype(dtype)
    weights = rng.uniform(0.5, 2.0, size=n).astype(dtype)
    return X, shift, centers, weights


@pytest.mark.parametrize("n_features", N_FEATURES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_pass_matches_the_reference_over_several_parts(n_features, dtype):
    X, shift, centers, weights = _data(n_features, dtype, n=20_000)
    assert numba_backend.part_count(X.shape[0], centers.shape[0], n_features) > 1
    labels, inertia, sums, weight_sums = reference.assign_and_sum(X, weights, centers, shift=shift, xp=xp)
    got = FUSED.assign_and_sum(X, weights, centers, shift=shift, xp=xp)
    rtol = 1e-4 if dtype == "float32" else 1e-10
    np.testing.assert_array_equal(got[0], labels)
    np.testing.assert_allclose(got[1], inertia, rtol=rtol)
    assert got[1].shape == () and got[1].dtype == X.dtype
    np.testing.assert_allclose(got[2], sums, rtol=rtol, atol=rtol * np.abs(sums).max())
    np.testing.assert_allclose(got[3], weight_sums, rtol=rtol)
    assert got[2].dtype == X.dtype and got[3].dtype == X.dtype
    got_labels, got_sqdist = FUSED.assign(X, centers, shift=shift, xp=xp)
    _, sqdist = reference.assign(X, centers, shift=shift, xp=xp)
    np.testing.assert_array_equal(got_labels, labels)
    np.testing.assert_allclose(got_sqdist, sqdist, rtol=rtol, atol=rtol * sqdist.max())
    # The shift matters: X is far from the origin.
    assert not np.array_equal(FUSED.assign(X, centers, shift=None, xp=xp)[0], got_labels)


@pytest.mark.parametrize("n_features", N_FEATURES)
def test_fused_pass_is_bit_identical_for_any_number_of_threads(n_features, monkeypatch):
    X, shift, centers, weights = _data(n_features, "float32", n=20_000)

    def run():
        return FUSED.assign_and_sum(X, weights, centers, shift=shift, xp=xp)

    first = run()
    assert numba_backend.part_count(X.shape[0], centers.shape[0], n_features) > 1
    for n_threads in (1, 3):
        monkeypatch.setattr(numba_backend, "thread_count", lambda n=n_threads: n)
        for a, b in zip(first, run()):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_kmeans_plusplus_kernels_match_the_reference_over_several_parts(dtype):
    X, shift, centers, weights = _data(24, dtype, n=20_000)
    closest = np.random.default_rng(1).uniform(0, 60, size=X.shape[0]).astype(dtype)
    rtol = 1e-4 if dtype == "float32" else 1e-10
    assert numba_backend.part_count(X.shape[0], 1, 1) > 1
    # Neither 7 nor 64 divides the rows: the last block is short.
    for block_rows in (7, 64):
        options = dict(shift=shift, block_rows=block_rows, xp=xp)
        expected = reference.seeding_pass(X, weights, closest, centers[9:10], centers[:7], **options)
        got = FUSED.seeding_pass(X, weights, closest, centers[9:10], centers[:7], **options)
        assert got[1].shape == expected[1].shape == (-(-X.shape[0] // block_rows), 7)
        assert got[0].dtype == got[1].dtype == X.dtype
        np.testing.assert_allclose(got[0], expected[0], rtol=rtol, atol=rtol * expected[0].max())
        np.testing.assert_allclose(got[1], expected[1], rtol=rtol, atol=rtol * expected[1].max())
        # The pending center lowered some distances and not others: the test can tell.
        assert (expected[0] < closest).any() and (expected[0] == closest).any()


def test_fits_match_the_numpy_backend_and_repeat_exactly():
    X, _, _, weights = _data(10, "float64", n=4000, k=8)
    params = dict(n_clusters=8, random_state=3, n_init=2, init="k-means++")
    with anykmeans.config_context(kernels="numpy"):
        expected = anykmeans.KMeans(**params).fit(X, sample_weight=weights)
    got = anykmeans.KMeans(**params).fit(X, sample_weight=weights)
    again = anykmeans.KMeans(**params).fit(X, sample_weight=weights)
    np.testing.assert_array_equal(got.labels_, expected.labels_)
    np.testing.assert_allclose(got.cluster_centers_, expected.cluster_centers_, rtol=1e-10)
    np.testing.assert_array_equal(again.cluster_centers_, got.cluster_centers_)
    np.testing.assert_array_equal(again.labels_, got.labels_)


def test_concurrent_fits_from_threads_give_the_sequential_results():
    datasets = [_data(n_features, "float32", n=20_000)[0] for n_features in (4, 32, 48)]
    expected = [anykmeans.KMeans(6, random_state=0).fit(X).cluster_centers_ for X in datasets]
    results = [None] * len(datasets)
    blas_threads = _blas_threads()

    def fit(i):
        results[i] = anykmeans.KMeans(6, random_state=0).fit(datasets[i]).cluster_centers_

    threads = [threading.Thread(target=fit, args=(i,)) for i in range(len(datasets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)
    # The BLAS thread limit the passes set is restored, whatever the interleaving.
    assert _blas_threads() == blas_threads


def _blas_threads():
    return [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]


def test_one_blas_thread_while_the_parts_run_and_the_limit_restored_after():
    numba_backend.blas_libraries()  # loads SciPy's BLAS, as a pass does
    before = _blas_threads()
    with numba_backend.one_blas_thread():
        assert set(_blas_threads()) == {1}
    assert _blas_threads() == before


def test_compiled_kernels_are_cached_outside_the_package(tmp_path):
    # A fresh process with its own user cache directory: the kernels compile there, and
    # nothing is written beside the installed package (uninstalling would leave it behind).
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    code = (
        "import numpy as np, anykmeans, anykmeans.backends.numba as nb\n"
        "anykmeans.KMeans(3, random_state=0).fit(np.random.default_rng(0).normal(size=(2000, 4)))\n"
        "print(nb.__file__)\n"
        "print(nb.kernel_cache_dir())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    module, cache = result.stdout.split()
    assert Path(cache) == tmp_path / "cache" / "anykmeans" / "numba"
    cached = [p.name for p in Path(cache).rglob("*") if p.suffix in (".nbi", ".nbc")]
    assert any(name.startswith("_numba_kernels.assign_rows") for name in cached), cached
    package = Path(module).parent.parent
    assert not [p for p in package.rglob("*") if p.suffix in (".nbi", ".nbc")]
