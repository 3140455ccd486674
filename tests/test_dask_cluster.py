"""Dask input on a real cluster: a ``distributed.LocalCluster`` of two worker processes.

The data is made on the workers (``dask.array.random``), never on the client; the in-memory
NumPy fits it is compared with get a copy gathered by the test itself. Checked: the results
against the in-memory fit from the same initial centers; labels that stay Dask arrays with
X's row chunks; the bytes the client sends and receives per Lloyd iteration, which must not
grow with the number of rows; a worker lost or the cluster restarted during a fit; NumPy
initial centers and weights with a Dask X; ``predict``, ``transform`` and ``score``.
"""

from __future__ import annotations

import logging
import os
import signal

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")

import dask  # noqa: E402

from anykmeans import KMeans  # noqa: E402
from anykmeans._blockwise import BlockwisePlan  # noqa: E402

N_FEATURES = 8
N_CLUSTERS = 8
BLOCK_ROWS = 50_000


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        silence_logs=logging.CRITICAL,
    )
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _centers(dtype: str) -> np.ndarray:
    return (np.random.default_rng(1).normal(scale=3.0, size=(N_CLUSTERS, N_FEATURES))).astype(dtype)


def _data(n_rows: int, dtype: str = "float32", *, spread: float = 1.0, block_rows: int = BLOCK_ROWS):
    """Overlapping blobs made on the workers: ``(X, host copy)``, X persisted on the cluster."""
    rng = da.random.default_rng(7)
    chunks = (block_rows, N_FEATURES)
    labels = rng.integers(0, N_CLUSTERS, size=n_rows, chunks=block_rows)
    noise = rng.standard_normal((n_rows, N_FEATURES), chunks=chunks) * spread
    X = (da.take(da.from_array(_centers("float64")), labels, axis=0) + noise).astype(dtype)
    (X,) = dask.persist(X)
    return X, X.compute()


def _init(dtype: str) -> np.ndarray:
    # Initial centers near, not at, the blobs' centers: NumPy, as users pass them.
    return (_centers("float64") + np.random.default_rng(2).normal(scale=0.7, size=(N_CLUSTERS, N_FEATURES))).astype(dtype)


def _assert_like_in_memory(model: KMeans, reference: KMeans, *, rtol: float) -> None:
    centers = model.cluster_centers_.compute()
    np.testing.assert_allclose(centers, reference.cluster_centers_, rtol=rtol, atol=rtol)
    np.testing.assert_array_equal(model.labels_.compute(), reference.labels_)
    assert model.n_iter_ == reference.n_iter_
    assert model.inertia_ == pytest.approx(reference.inertia_, rel=rtol)


# --------------------------------------------------------------------------- results


@pytest.mark.parametrize("dtype, rtol", [("float32", 1e-4), ("float64", 1e-10)])
def test_fit_from_numpy_init_matches_the_in_memory_fit(client, dtype, rtol):
    X, X_host = _data(200_000, dtype, spread=1.5)
    params = dict(n_clusters=N_CLUSTERS, init=_init(dtype), n_init=1, max_iter=30, tol=0)
    model = KMeans(**params).fit(X)
    reference = KMeans(**params).fit(X_host)
    assert reference.n_iter_ > 3  # the iterations, not only the first assignment, are compared
    _assert_like_in_memory(model, reference, rtol=rtol)
    # Labels stay on the cluster, in X's row blocks; the centers come back in X's library.
    assert isinstance(model.labels_, da.Array) and model.labels_.chunks == (X.chunks[0],)
    assert isinstance(model.cluster_centers_, da.Array)
    assert model.cluster_centers_.dtype == np.dtype(dtype)
    # The blocks ran the compiled kernels of NumPy blocks where they are installed.
    expected = "numba" if _numba_installed() else "numpy"
    assert model._fit_stats["kernels"] == expected


def test_sample_weight_as_dask_matches_and_as_numpy_is_refused(client):
    X, X_host = _data(100_000)
    weights = np.random.default_rng(3).uniform(0.0, 2.0, size=X.shape[0])
    params = dict(n_clusters=N_CLUSTERS, init=_init("float32"), n_init=1, max_iter=30, tol=0)
    model = KMeans(**params).fit(X, sample_weight=da.from_array(weights, chunks=50_000))
    reference = KMeans(**params).fit(X_host, sample_weight=weights)
    _assert_like_in_memory(model, reference, rtol=1e-4)
    # One weight per row is as large as a column of X: not shipped from the client.
    refused = KMeans(**params)
    with pytest.raises(TypeError, match="sample_weight is an array of numpy but X is an array of dask"):
        refused.fit(X, sample_weight=weights)
    assert not hasattr(refused, "cluster_centers_")


def test_kmeans_plusplus_on_the_cluster_draws_the_rows_numpy_draws(client):
    X, X_host = _data(100_000, "float64")
    model = KMeans(N_CLUSTERS, random_state=0, max_iter=5, tol=0).fit(X)
    reference = KMeans(N_CLUSTERS, random_state=0, max_iter=5, tol=0).fit(X_host)
    _assert_like_in_memory(model, reference, rtol=1e-10)


def test_predict_transform_score_on_the_cluster(client):
    X, X_host = _data(100_000)
    reference = KMeans(N_CLUSTERS, init=_init("float32"), n_init=1, max_iter=5, tol=0).fit(X_host)
    model = KMeans(N_CLUSTERS, init=_init("float32"), n_init=1, max_iter=5, tol=0).fit(X)
    new, new_host = _data(150_000)
    labels = model.predict(new)
    distances = model.transform(new)
    assert isinstance(labels, da.Array) and labels.chunks == (new.chunks[0],)
    assert isinstance(distances, da.Array) and distances.chunks == (new.chunks[0], (N_CLUSTERS,))
    np.testing.assert_array_equal(labels.compute(), reference.predict(new_host))
    np.testing.assert_allclose(distances.compute(), reference.transform(new_host), rtol=1e-4, atol=1e-4)
    assert model.score(new) == pytest.approx(reference.score(new_host), rel=1e-5)


# --------------------------------------------------------------------------- what the client holds


class _CommBytes:
    """Bytes the client sends to and receives from the scheduler: the frames of every message
    on this process's connections to the scheduler's address (the scheduler of a LocalCluster
    runs in this process too; its own connections, to the workers, are not counted)."""

    def __init__(self, client, monkeypatch: pytest.MonkeyPatch) -> None:
        import contextvars

        import distributed.comm.tcp as tcp

        self.sent = self.received = 0
        scheduler = client.scheduler.address
        to_scheduler = contextvars.ContextVar("to_scheduler", default=False)
        read, write, to_frames, from_frames = tcp.TCP.read, tcp.TCP.write, tcp.to_frames, tcp.from_frames

        async def counting_read(comm, *args, **kwargs):
            to_scheduler.set(comm.peer_address == scheduler)
            return await read(comm, *args, **kwargs)

        async def counting_write(comm, *args, **kwargs):
            to_scheduler.set(comm.peer_address == scheduler)
            return await write(comm, *args, **kwargs)

        async def counting_to_frames(*args, **kwargs):
            frames = await to_frames(*args, **kwargs)
            if to_scheduler.get():
                self.sent += sum(memoryview(f).nbytes for f in frames)
            return frames

        async def counting_from_frames(frames, *args, **kwargs):
            if to_scheduler.get():
                self.received += sum(memoryview(f).nbytes for f in frames)
            return await from_frames(frames, *args, **kwargs)

        monkeypatch.setattr(tcp.TCP, "read", counting_read)
        monkeypatch.setattr(tcp.TCP, "write", counting_write)
        monkeypatch.setattr(tcp, "to_frames", counting_to_frames)
        monkeypatch.setattr(tcp, "from_frames", counting_from_frames)

    def during(self, fn) -> tuple[int, int]:
        sent, received = self.sent, self.received
        fn()
        return self.sent - sent, self.received - received


def test_bytes_per_iteration_do_not_grow_with_the_rows(client, monkeypatch):
    comm = _CommBytes(client, monkeypatch)
    per_iteration = {}
    for n_rows in (100_000, 400_000):
        # Four blocks each; overlapping blobs, which take more than 8 iterations to converge.
        X, _ = _data(n_rows, spread=4.0, block_rows=n_rows // 4)
        fits = {}
        for max_iter in (2, 8):
            model = KMeans(N_CLUSTERS, init=_init("float32"), n_init=1, max_iter=max_iter, tol=0)
            fits[max_iter] = comm.during(lambda model=model: model.fit(X))
            assert model.n_iter_ == max_iter
        per_iteration[n_rows] = [(fits[8][i] - fits[2][i]) / 6 for i in (0, 1)]
    small, large = per_iteration[100_000], per_iteration[400_000]
    # X's float32 rows would be 3.2 MB and 12.8 MB, its labels 0.4 MB and 1.6 MB per pass:
    # what moves per iteration is graphs, task messages and k × (d + 1) sums, the same for
    # both sizes (the same number of blocks).
    for direction in (0, 1):
        assert large[direction] < 50_000, per_iteration
        assert abs(large[direction] - small[direction]) < 0.1 * small[direction] + 1_000, per_iteration


def test_graphs_of_the_passes_hold_no_large_literal(client, monkeypatch):
    # Every pass submits its graph through dask.persist or dask.compute: no value in any of
    # them (the tasks' literal arguments included) may be anywhere near X's or a row's size.
    X, _ = _data(200_000)
    largest = []
    persist, compute = dask.persist, dask.compute

    def literal_bytes(collections) -> int:
        sizes = [0]
        for collection in collections:
            if dask.is_dask_collection(collection):
                graph = collection.__dask_graph__()
                for task in dict(graph).values():
                    sizes.append(len(_pickled(task)))
        return max(sizes)

    def recording_persist(*args, **kwargs):
        largest.append(literal_bytes(args))
        return persist(*args, **kwargs)

    def recording_compute(*args, **kwargs):
        largest.append(literal_bytes(args))
        return compute(*args, **kwargs)

    monkeypatch.setattr(dask, "persist", recording_persist)
    monkeypatch.setattr(dask, "compute", recording_compute)
    KMeans(N_CLUSTERS, init=_init("float32"), n_init=1, max_iter=3, tol=0).fit(X)
    assert len(largest) >= 3  # the passes of the iterations were seen
    assert max(largest) < 50_000, largest  # a row of X's labels would be 800 kB


def _pickled(task) -> bytes:
    import cloudpickle

    return cloudpickle.dumps(task)


# --------------------------------------------------------------------------- workers lost


def test_a_worker_killed_during_a_fit_gives_the_same_result(client, monkeypatch):
    X, _ = _data(200_000, spread=1.5)
    params = dict(n_clusters=N_CLUSTERS, init=_init("float32"), n_init=1, max_iter=30, tol=0)
    expected = KMeans(**params).fit(X)
    expected_centers, expected_labels = expected.cluster_centers_.compute(), expected.labels_.compute()
    calls = []
    original = BlockwisePlan.assign_and_sum

    def killing_one_worker(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            # Its results so far (X's blocks, the labels of the last pass) are lost with it
            # and must be recomputed from their graphs.
            address = sorted(client.scheduler_info()["workers"])[0]
            pid = client.run(os.getpid, workers=[address])[address]
            os.kill(pid, signal.SIGKILL)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(BlockwisePlan, "assign_and_sum", killing_one_worker)
    model = KMeans(**params).fit(X)
    assert len(calls) > 3
    np.testing.assert_array_equal(model.cluster_centers_.compute(), expected_centers)
    np.testing.assert_array_equal(model.labels_.compute(), expected_labels)
    assert model.n_iter_ == expected.n_iter_ and model.inertia_ == expected.inertia_
    client.wait_for_workers(2, timeout=60)


def test_a_cluster_restart_during_a_fit_fails_clearly(client, monkeypatch):
    X, _ = _data(100_000, spread=1.5)
    calls = []
    original = BlockwisePlan.assign_and_sum

    def restarting(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            client.restart()  # every result on the cluster is dropped, X's blocks included
        return original(self, *args, **kwargs)

    monkeypatch.setattr(BlockwisePlan, "assign_and_sum", restarting)
    model = KMeans(N_CLUSTERS, init=_init("float32"), n_init=1, max_iter=30, tol=0)
    with pytest.raises(Exception) as excinfo:
        model.fit(X)
    # distributed's own error says what happened: the results the fit was reading were lost
    # ("... cancelled for reason: lost dependencies"), not a fitted model from half the data.
    assert "cancel" in str(excinfo.value).lower() or "lost" in str(excinfo.value).lower(), repr(excinfo.value)
    assert not hasattr(model, "cluster_centers_")  # nothing half-fitted is left behind
    client.wait_for_workers(2, timeout=60)


def _numba_installed() -> bool:
    from anykmeans.backends import list_kernels

    return list_kernels()["numba"].supports(__import__("array_api_compat").numpy, "cpu")
