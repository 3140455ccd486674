"""Host data streamed to another placement in row blocks (the path of data larger than the GPU).

On a GPU, host X that does not fit is viewed as a Dask array over the same memory and each
block's pass runs on the device (copied there, outputs brought back). The mechanism does
not depend on CUDA: here the "device" is array-api-strict's ``device1`` (which refuses to
mix devices) and the kernels the reference ones, so that every step of a fit — passes,
k-means++ draws, moved rows, the driver's arithmetic — is checked against the in-memory fit
on the CPU. The CUDA-specific parts (pinned staging, a stream per block) are in the `gpu`
tests of ``test_cupy_backend.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from anykmeans import backends
from anykmeans._kmeans_parallel import kmeans_parallel
from anykmeans._lloyd import lloyd
from anykmeans._passes import Plan
from anykmeans._seeding import greedy_kmeans_plusplus

pytest.importorskip("dask.array")
xs = pytest.importorskip("array_api_strict")


class _RecordingKernels(backends.Kernels):
    """The reference kernels, recording the namespace and device of every block they get
    (the composites call the primitives: every pass is recorded)."""

    name = "recording"

    def __init__(self):
        self.seen = set()

    def supports(self, xp, device):
        return True

    def _record(self, X):
        from array_api_compat import array_namespace, device

        self.seen.add((array_namespace(X).__name__, str(device(X))))

    def assign(self, X, *rest, **options):
        self._record(X)
        return super().assign(X, *rest, **options)

    def segment_sum(self, X, *rest, **options):
        self._record(X)
        return super().segment_sum(X, *rest, **options)

    def assign_and_sum(self, X, *rest, **options):
        self._record(X)
        return super().assign_and_sum(X, *rest, **options)

    def assign_with_inertia(self, X, *rest, **options):
        self._record(X)
        return super().assign_with_inertia(X, *rest, **options)

    def seeding_pass(self, X, *rest, **options):
        self._record(X)
        return super().seeding_pass(X, *rest, **options)

    def seeding_draw(self, X, *rest, **options):
        self._record(X)
        return super().seeding_draw(X, *rest, **options)


def _data(n=3000, d=5, k=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(scale=5.0, size=(k, d))[rng.integers(0, k, size=n)] + rng.normal(size=(n, d))
    return X, rng.uniform(0.5, 2.0, size=n)


def _streamed(X, weights, kernels, n_columns):
    from anykmeans import _prepare

    device = xs.Device("device1")
    strict = pytest.importorskip("array_api_compat").array_namespace(xs.asarray([1.0], device=device))
    with pytest.MonkeyPatch.context() as patch:
        # Blocks of 1/16 of the "free memory": 8 blocks of 375 rows.
        patch.setattr(kernels, "free_memory", lambda device: 16 * 375 * X.shape[1] * X.itemsize, raising=False)
        work = _prepare._blockwise_work(
            X, weights, kernels, (np, "cpu"), (np, "cpu"), (strict, device),
            budget="auto", n_columns=n_columns,
        )
    assert work.X.chunks[0] == (375,) * 8
    return work


def _in_memory(kernels, n_features, n_columns):
    import array_api_compat.numpy as host

    return Plan.create(host, "cpu", kernels, working_memory=2**26, n_features=n_features, n_columns=n_columns, itemsize=8)


def test_a_streamed_pass_runs_each_block_on_the_device_and_equals_the_in_memory_pass():
    X, weights = _data()
    centers = X[:6].copy()
    kernels = _RecordingKernels()
    work = _streamed(X, weights, kernels, 6)
    assert work.plan.compute_options == (("num_workers", 2), ("scheduler", "threads"))
    labels, inertia, sums, weight_sums = work.plan.assign_and_sum(work.X, work.weights, centers)
    assert kernels.seen == {("array_api_strict", "array_api_strict.Device('device1')")}
    expected = _in_memory(backends.list_kernels()["array_api"], 5, 6).assign_and_sum(X, weights, centers)
    np.testing.assert_array_equal(np.asarray(labels.compute()), expected[0])
    for got, want in zip((inertia, sums, weight_sums), expected[1:]):
        assert isinstance(got, np.ndarray)
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_a_streamed_fit_is_the_in_memory_fit():
    # k-means++ (draws read only the drawn blocks, on the device), then Lloyd iterations and
    # the final pass: the same seeds, centers, labels, inertia and iterations as in memory.
    X, weights = _data(seed=1)
    kernels = _RecordingKernels()
    work = _streamed(X, weights, kernels, 6)
    mean = X.mean(axis=0)
    streamed_plan = work.plan.centered(mean)
    memory_plan = _in_memory(backends.list_kernels()["array_api"], 5, 6).centered(mean)

    seeds, indices = greedy_kmeans_plusplus(work.X, work.weights, 6, np.random.RandomState(0), plan=streamed_plan)
    expected_seeds, expected_indices = greedy_kmeans_plusplus(X, weights, 6, np.random.RandomState(0), plan=memory_plan)
    np.testing.assert_array_equal(np.asarray(indices), np.asarray(expected_indices))
    np.testing.assert_allclose(np.asarray(seeds), expected_seeds, rtol=1e-12)

    got = lloyd(work.X, work.weights, np.asarray(seeds), plan=streamed_plan, max_iter=50, tol=0)
    expected = lloyd(X, weights, expected_seeds, plan=memory_plan, max_iter=50, tol=0)
    assert kernels.seen == {("array_api_strict", "array_api_strict.Device('device1')")}
    np.testing.assert_array_equal(np.asarray(got.labels.compute()), expected.labels)
    np.testing.assert_allclose(got.centers, expected.centers, rtol=1e-10)
    assert got.n_iter == expected.n_iter and got.inertia == pytest.approx(expected.inertia, rel=1e-12)


def test_host_data_streams_only_when_it_does_not_fit_the_free_memory():
    from anykmeans import _prepare

    kernels = backends.Kernels()
    X = np.zeros((1000, 10))  # 80,000 bytes
    assert not _prepare._does_not_fit(X, kernels, "cpu")  # host memory: never streamed
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kernels, "free_memory", lambda device: 160_001, raising=False)
        assert not _prepare._does_not_fit(X, kernels, "gpu")
        patch.setattr(kernels, "free_memory", lambda device: 159_999, raising=False)
        assert _prepare._does_not_fit(X, kernels, "gpu")


_DEVICE1 = ("array_api_strict", "array_api_strict.Device('device1')")


def test_streamed_k_means_parallel_runs_on_the_device_and_equals_the_in_memory_one():
    X, weights = _data(seed=2)
    kernels = _RecordingKernels()
    work = _streamed(X, weights, kernels, 6)
    mean = X.mean(axis=0)
    got = kmeans_parallel(work.X, work.weights, 6, np.random.RandomState(3), plan=work.plan.centered(mean))
    expected = kmeans_parallel(
        X, weights, 6, np.random.RandomState(3),
        plan=_in_memory(backends.list_kernels()["array_api"], 5, 6).centered(mean),
    )
    assert kernels.seen == {_DEVICE1}
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-12)


def test_streamed_mini_batch_steps_run_on_the_device():
    from anykmeans._minibatch import _StepPlacement

    X, weights = _data(seed=3)
    kernels = _RecordingKernels()
    work = _streamed(X, weights, kernels, 6)
    steps = _StepPlacement(work.plan.centered(X.mean(axis=0)), 6, {"kernels": "auto"})
    batch = steps.gather(work.X, np.arange(0, 3000, 7))
    assert steps.plan.kernels is kernels
    assert (type(batch).__module__.split(".")[0], str(batch.device)) == _DEVICE1
    steps.plan.assign_and_sum(batch, steps.gather(work.weights, np.arange(0, 3000, 7)), steps.place(X[:6]))
    assert kernels.seen == {_DEVICE1}
