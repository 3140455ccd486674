"""The thread cap: ``n_threads`` and threadpoolctl limits bound the CPU time a fit takes per
second of wall time, and the results do not depend on it."""

from __future__ import annotations

import time

import numpy as np
import pytest

import anykmeans
from anykmeans import KMeans

threadpoolctl = pytest.importorskip("threadpoolctl")


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(300_000, 32)).astype(np.float32)


def _cores_used(fit):
    """CPU seconds of this process per wall-clock second while ``fit`` runs."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = fit()
    return (time.process_time() - cpu) / (time.perf_counter() - wall), result


@pytest.mark.parametrize("kernels", ["auto", "numpy"])
def test_n_threads_and_threadpool_limits_cap_the_cpu_time_of_a_fit(kernels):
    X = _data()
    init = X[:64].copy()

    def fit():
        return KMeans(64, init=init, max_iter=8, tol=0).fit(X)

    with anykmeans.config_context(kernels=kernels):
        KMeans(8, max_iter=2, random_state=0).fit(X[:5000])  # compile, start the pools
        _, free = _cores_used(fit)
        with anykmeans.config_context(n_threads=1):
            used, capped = _cores_used(fit)
        assert used < 1.3, f"{used:.2f} cores with n_threads=1"
        with threadpoolctl.threadpool_limits(limits=1):
            used, limited = _cores_used(fit)
        assert used < 1.3, f"{used:.2f} cores under threadpool_limits(1)"
    for other in (capped, limited):
        np.testing.assert_array_equal(other.cluster_centers_, free.cluster_centers_)
        np.testing.assert_array_equal(other.labels_, free.labels_)
    # The user's and our own limits are restored afterwards.
    assert anykmeans.get_config()["n_threads"] == "auto"


def test_n_threads_setting_and_environment_variable():
    with anykmeans.config_context(n_threads=3) as inside:
        assert inside["n_threads"] == 3
    with anykmeans.config_context(n_threads=np.int64(2)) as inside:
        assert inside["n_threads"] == 2 and type(inside["n_threads"]) is int
    for bad in (0, -1, 1.5, "many", True):
        with pytest.raises(ValueError, match="n_threads must be 'auto' or a positive int"):
            anykmeans.set_config(n_threads=bad)
