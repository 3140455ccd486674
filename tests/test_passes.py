"""The pass runner (chunking, sums in a fixed order) and the core's equal-centers rule."""

from __future__ import annotations

import numpy as np
import pytest

import anykmeans
from anykmeans import KMeans, backends
from anykmeans._lloyd import equal_center_map, merge_equal_centers
from anykmeans._passes import Plan


def _plan(placement, kernels="array_api", working_memory=2**20, n_columns=4, n_features=3):
    return Plan.create(
        placement.xp, placement.device, backends.list_kernels()[kernels],
        working_memory=working_memory, n_features=n_features, n_columns=n_columns, itemsize=8,
    )


def test_chunks_cover_the_rows_in_order():
    import array_api_compat.numpy as xp

    plan = Plan(xp, "cpu", backends.list_kernels()["array_api"], 0, 3, 8, chunk_rows=100)
    assert [(s.start, s.stop) for s in plan.chunks(250)] == [(0, 100), (100, 200), (200, 250)]
    # Seeding chunks hold whole blocks: rounded down to a multiple, at least one block.
    assert [(s.start, s.stop) for s in plan.chunks(250, multiple_of=64)] == [(0, 64), (64, 128), (128, 192), (192, 250)]
    assert [(s.start, s.stop) for s in plan.chunks(250, multiple_of=256)] == [(0, 250)]
    whole = Plan(xp, "cpu", backends.list_kernels()["array_api"], 0, 3, 8, chunk_rows=None)
    assert [(s.start, s.stop) for s in whole.chunks(10**9)] == [(0, 10**9)]


def test_chunk_rows_follow_the_working_memory_and_the_kernels(placement):
    # The reference: rows × (2·k + 2·d + 2) items within the budget.
    assert _plan(placement, working_memory=8 * (2 * 4 + 2 * 3 + 2) * 1000).chunk_rows == 1000
    assert _plan(placement, working_memory=1).chunk_rows == 1
    if placement.id == "numpy":
        assert _plan(placement, kernels="numpy", working_memory=2**40).chunk_rows == 2**14
        if "numba" in backends.list_kernels() and backends.list_kernels()["numba"].supports(placement.xp, "cpu"):
            assert _plan(placement, kernels="numba", working_memory=1).chunk_rows is None


def test_passes_over_many_chunks_equal_one_pass(placement):
    rng = np.random.default_rng(0)
    X = placement.asarray(rng.normal(size=(300, 3)), "float64")
    weights = placement.asarray(rng.uniform(0, 2, size=300), "float64")
    centers = placement.asarray(rng.normal(size=(4, 3)), "float64")
    shift = placement.asarray(rng.normal(size=3), "float64")
    whole = _plan(placement).centered(shift)
    chunked = _plan(placement, working_memory=8 * 16 * 32).centered(shift)
    assert whole.chunk_rows >= 300 and chunked.chunk_rows == 32
    for a, b in zip(whole.assign_and_sum(X, weights, centers), chunked.assign_and_sum(X, weights, centers)):
        np.testing.assert_allclose(placement.to_numpy(a), placement.to_numpy(b), rtol=1e-12)
    np.testing.assert_allclose(
        placement.to_numpy(whole.pairwise(X, centers)), placement.to_numpy(chunked.pairwise(X, centers)), rtol=1e-12
    )


def test_a_pass_given_the_previous_labels_counts_the_changed_ones(placement):
    rng = np.random.default_rng(4)
    X = placement.asarray(rng.normal(size=(300, 3)), "float64")
    weights = placement.asarray(np.ones(300), "float64")
    centers = placement.asarray(rng.normal(size=(4, 3)), "float64")
    plan = _plan(placement, working_memory=8 * 16 * 32)  # 10 chunks: the counts are summed
    labels = placement.to_numpy(plan.assign(X, centers)[0])
    previous = labels.copy()
    previous[[0, 5, 299]] = (previous[[0, 5, 299]] + 1) % 4
    previous[100:140] = (previous[100:140] + 2) % 4
    got = plan.assign_and_sum(X, weights, centers, previous=placement.asarray(previous))
    assert len(got) == 5 and int(got[4]) == 43
    np.testing.assert_array_equal(placement.to_numpy(got[0]), labels)
    assert int(plan.assign_and_sum(X, weights, centers, previous=placement.asarray(labels))[4]) == 0
    assert len(plan.assign_and_sum(X, weights, centers)) == 4


@pytest.mark.parametrize("init", ["array", "k-means++"])
def test_tiny_working_memory_chunks_give_the_same_fit(placement, init):
    rng = np.random.default_rng(6)
    X = rng.normal(scale=8.0, size=(4, 3))[rng.integers(0, 4, size=320)] + rng.normal(size=(320, 3))
    Xd = placement.asarray(X, "float64")
    init = placement.asarray(X[:4], "float64") if init == "array" else init
    params = dict(n_clusters=4, init=init, random_state=0, tol=0)
    one_chunk = KMeans(**params).fit(Xd)
    # 0.004 MiB is 32 rows of 4 clusters and 3 features on the reference: 10 chunks (a lazy
    # namespace builds a graph per chunk, so many more would only make the test slow).
    with anykmeans.config_context(working_memory=0.004, kernels="array_api"):
        plan = _plan(placement, working_memory=int(0.004 * 2**20))
        assert len(list(plan.chunks(X.shape[0]))) >= 10
        chunked = KMeans(**params).fit(Xd)
        # predict and transform go through the chunked passes as well.
        np.testing.assert_array_equal(placement.to_numpy(one_chunk.predict(Xd)), placement.to_numpy(chunked.labels_))
        np.testing.assert_allclose(
            placement.to_numpy(chunked.transform(Xd)), placement.to_numpy(one_chunk.transform(Xd)), rtol=1e-10
        )
    np.testing.assert_array_equal(placement.to_numpy(chunked.labels_), placement.to_numpy(one_chunk.labels_))
    np.testing.assert_allclose(
        placement.to_numpy(chunked.cluster_centers_), placement.to_numpy(one_chunk.cluster_centers_), rtol=1e-10
    )
    assert chunked.n_iter_ == one_chunk.n_iter_


# --------------------------------------------------------------------------- memory


class _RowLimitedKernels(backends.Kernels):
    """The reference kernels on a device that holds the temporaries of at most ``limit`` rows:
    a call given more raises MemoryError, as a GPU library does when an allocation fails."""

    def __init__(self, limit, name="row_limited"):
        self.limit, self.name, self.calls = limit, name, []

    def supports(self, xp, device):
        return True

    def _check(self, X):
        self.calls.append(X.shape[0])
        if X.shape[0] > self.limit:
            raise MemoryError(f"out of memory for {X.shape[0]} rows")

    def assign_and_sum(self, X, *rest, **options):
        self._check(X)
        return super().assign_and_sum(X, *rest, **options)

    def assign(self, X, *rest, **options):
        self._check(X)
        return super().assign(X, *rest, **options)

    def seeding_pass(self, X, *rest, **options):
        self._check(X)
        return super().seeding_pass(X, *rest, **options)


def test_a_pass_out_of_memory_halves_its_chunks_and_the_next_passes_start_small(placement):
    rng = np.random.default_rng(7)
    X = placement.asarray(rng.normal(size=(300, 3)), "float64")
    weights = placement.asarray(rng.uniform(0, 2, size=300), "float64")
    centers = placement.asarray(rng.normal(size=(4, 3)), "float64")
    kernels = _RowLimitedKernels(limit=70)
    plan = Plan.create(placement.xp, placement.device, kernels, working_memory=2**30, n_features=3, n_columns=4, itemsize=8)
    if getattr(plan, "host_shift", False) is not False:
        pytest.skip("a Dask plan runs the kernels in its block tasks")
    assert plan.chunk_rows >= 300
    expected = _plan(placement).assign_and_sum(X, weights, centers)
    got = plan.assign_and_sum(X, weights, centers)
    # 300 rows fail, then 150, then 75; 37 rows fit: the rest of the pass goes 37 at a time.
    assert kernels.calls[:4] == [300, 150, 75, 37] and plan.halvings.count == 3
    for a, b in zip(got, expected):
        np.testing.assert_allclose(placement.to_numpy(a), placement.to_numpy(b), rtol=1e-12)
    # Plans made from this one (other widths, a shift) start at the halved size.
    kernels.calls.clear()
    plan.for_columns(4).centered(None).assign(X, centers)
    assert max(kernels.calls) == 37
    # Seeding chunks hold whole blocks of 32 rows: 37 rows round down to one block.
    kernels.calls.clear()
    closest = placement.asarray(np.full(300, np.inf), "float64")
    plan.seeding_pass(X, weights, closest, centers[:1, :], centers, block_rows=32)
    assert set(kernels.calls) == {32, 300 - 9 * 32}


def test_a_pass_that_fits_not_even_one_row_says_so():
    import array_api_compat.numpy as xp

    kernels = _RowLimitedKernels(limit=0)
    plan = Plan.create(xp, "cpu", kernels, working_memory=2**30, n_features=3, n_columns=4, itemsize=8)
    X, centers = np.ones((10, 3)), np.zeros((4, 3))
    with pytest.raises(MemoryError, match=r"assign pass ran out of memory on cpu even with 1 row\(s\) at a time") as info:
        plan.assign(X, centers)
    assert isinstance(info.value.__cause__, MemoryError)


def test_a_fit_out_of_memory_gives_the_fit_with_enough_memory():
    rng = np.random.default_rng(8)
    X = rng.normal(scale=6.0, size=(5, 4))[rng.integers(0, 5, size=2000)] + rng.normal(size=(2000, 4))
    params = dict(n_clusters=5, random_state=0, n_init=2, tol=0)
    with anykmeans.config_context(kernels="array_api", working_memory=1024):
        expected = KMeans(**params).fit(X)
    kernels = backends.register_kernels(_RowLimitedKernels(limit=300, name="row_limited_fit"))
    try:
        with anykmeans.config_context(kernels="row_limited_fit", working_memory=1024):
            got = KMeans(**params).fit(X)
    finally:
        backends.unregister_kernels("row_limited_fit")
    assert max(kernels.calls) > 300 and kernels.calls[-1] <= 300
    np.testing.assert_array_equal(got.labels_, expected.labels_)
    np.testing.assert_allclose(got.cluster_centers_, expected.cluster_centers_, rtol=1e-12)
    assert got.n_iter_ == expected.n_iter_


def test_auto_working_memory_on_other_accelerators_and_their_out_of_memory_errors():
    from anykmeans.backends._protocol import is_accelerator, power_of_two_at_most

    torch = pytest.importorskip("torch")
    # Kernels that do not ask a device for its free memory give accelerators 256 MiB.
    assert backends.Kernels().auto_working_memory(torch.device("cuda:0")) == 256 * 2**20
    assert [is_accelerator(d) for d in (torch.device("cuda:1"), torch.device("mps"), torch.device("cpu"), "cpu")] == [
        True, True, False, False
    ]
    strict = pytest.importorskip("array_api_strict")
    assert not is_accelerator(strict.Device("device1"))
    assert torch.OutOfMemoryError in backends.Kernels().out_of_memory_errors
    assert [power_of_two_at_most(n) for n in (1, 2, 3, 1000, 2**30 + 5)] == [1, 2, 2, 512, 2**30]


def test_auto_working_memory_is_cache_sized_on_the_host():
    import array_api_compat.numpy as xp
    from pathlib import Path

    budget = backends.Kernels().auto_working_memory("cpu")
    assert 4 * 2**20 <= budget <= 64 * 2**20
    l2 = [
        index / "size" for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")
        if (index / "level").is_file() and (index / "level").read_text().strip() == "2"
    ]
    if l2:
        text = l2[0].read_text().strip()
        assert text.endswith("K")
        assert budget == min(64 * 2**20, max(4 * 2**20, 4 * int(text[:-1]) * 2**10))
    # The default configuration resolves "auto" with the kernels that run the pass.
    from anykmeans._prepare import prepare

    with anykmeans.config_context(kernels="array_api"):
        work = prepare(xp.ones((10, 3)), xp.ones(10), config=anykmeans.get_config(), n_columns=4)
    assert anykmeans.get_config()["working_memory"] == "auto" and work.plan.working_memory == budget
    with anykmeans.config_context(kernels="array_api", working_memory=3):
        work = prepare(xp.ones((10, 3)), xp.ones(10), config=anykmeans.get_config(), n_columns=4)
    assert work.plan.working_memory == 3 * 2**20


# --------------------------------------------------------------------------- equal centers


def test_equal_center_map_finds_the_lowest_equal_index(placement):
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(9, 4))
    assert equal_center_map(placement.asarray(centers), xp=placement.xp) is None
    centers[6] = centers[1]
    centers[8] = centers[1]
    centers[4] = centers[3]
    # One ulp apart in one feature: different centers, never merged.
    centers[7] = centers[0]
    centers[7, 2] = np.nextafter(centers[0, 2], np.inf)
    first = equal_center_map(placement.asarray(centers), xp=placement.xp)
    np.testing.assert_array_equal(placement.to_numpy(first), [0, 1, 2, 3, 3, 5, 1, 7, 1])
    assert first.dtype == placement.xp.int32


def test_merging_equal_centers_moves_their_rows_and_sums_to_the_lowest_index(placement):
    first = placement.asarray(np.array([0, 1, 1, 0, 4], dtype=np.int32))
    labels = placement.asarray(np.array([3, 2, 1, 4, 0, 2], dtype=np.int32))
    sums = placement.asarray(np.arange(10.0).reshape(5, 2))
    weight_sums = placement.asarray(np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    got = merge_equal_centers(first, labels, sums, weight_sums, xp=placement.xp)
    labels, sums, weight_sums = map(placement.to_numpy, got)
    np.testing.assert_array_equal(labels, [0, 1, 1, 4, 0, 1])
    np.testing.assert_array_equal(sums, [[6.0, 8.0], [6.0, 8.0], [0, 0], [0, 0], [8.0, 9.0]])
    np.testing.assert_array_equal(weight_sums, [5.0, 5.0, 0.0, 0.0, 5.0])


def test_equal_initial_centers_tie_to_the_lowest_index_whatever_the_kernels_score(placement):
    # Two equal initial centers: the rows near them go to the lower index, the higher one is
    # left empty and relocated, as scikit-learn does.
    rng = np.random.default_rng(2)
    X = np.concatenate([rng.normal(size=(100, 5)), rng.normal(size=(100, 5)) + 20.0])
    init = np.stack([X[0], X[150], X[0]])
    km = KMeans(3, init=placement.asarray(init, "float64"), max_iter=1).fit(placement.asarray(X, "float64"))
    labels = placement.to_numpy(km.labels_)
    # After one iteration the relocated third center took the farthest point, and the final
    # assignment gives each row its nearest center (lowest index among equals).
    assert set(np.unique(labels)) <= {0, 1, 2}
    centers = placement.to_numpy(km.cluster_centers_)
    assert not np.array_equal(centers[0], centers[2])
    d2 = ((X[:, None, :] - centers[None]) ** 2).sum(axis=-1)
    np.testing.assert_array_equal(labels, d2.argmin(axis=1))


def test_predict_ties_equal_centers_to_the_lowest_index_on_every_backend(placement):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(500, 7)) * 3.0
    km = KMeans(4, init=X[:4], max_iter=1).fit(X)
    centers = np.stack([X[10], X[20], X[10], X[20]])
    km.cluster_centers_ = placement.asarray(centers, "float64")
    d2 = ((X[:, None, :] - centers[None, :2]) ** 2).sum(axis=-1)
    for name, kernels in backends.list_kernels().items():
        if not kernels.supports(placement.xp, placement.device):
            continue
        with anykmeans.config_context(kernels=name):
            labels = placement.to_numpy(km.predict(placement.asarray(X, "float64")))
        np.testing.assert_array_equal(labels, d2.argmin(axis=1), err_msg=name)


def test_a_lloyd_iteration_on_dask_is_one_pass_and_no_other_computation():
    # The convergence test (changed labels) and the iteration's numbers come with the pass's
    # sums: each further iteration adds one persist of the pass and one read of its sums.
    da = pytest.importorskip("dask.array")
    from dask.callbacks import Callback

    rng = np.random.default_rng(5)
    X = da.from_array(rng.normal(size=(4000, 3)), chunks=(500, 3))
    init = rng.normal(size=(5, 3))

    def computations(max_iter):
        started = []
        with Callback(start=lambda dsk: started.append(1)):
            fitted = KMeans(5, init=init, n_init=1, max_iter=max_iter, tol=0).fit(X)
        assert fitted.n_iter_ == max_iter
        return len(started)

    assert computations(6) - computations(3) == 3 * 2
