"""Bounded memory: the n_samples × n_clusters distance matrix is never allocated."""

import tracemalloc

import numpy as np
import pytest

import anykmeans


@pytest.mark.slow
def test_fit_never_allocates_an_n_by_k_array():
    n_samples, n_features, n_clusters = 2_000_000, 8, 256
    X = np.random.default_rng(0).standard_normal((n_samples, n_features), dtype=np.float32)
    n_by_k_bytes = n_samples * n_clusters * X.itemsize  # 1.9 GiB
    working_memory_mib = 64

    with anykmeans.config_context(working_memory=working_memory_mib):
        tracemalloc.start()
        try:
            model = anykmeans.KMeans(n_clusters, init="random", max_iter=3, random_state=0).fit(X)
            model.predict(X)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

    assert model.labels_.shape == (n_samples,)
    # Not even an eighth of the n × k block: what is held is the centered copy of X, a few
    # n-sized vectors (labels, distances) and chunk temporaries bounded by working_memory.
    assert peak < n_by_k_bytes / 8
    assert peak < 2 * X.nbytes + 2 * working_memory_mib * 2**20


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["auto", "numpy"])
def test_fit_holds_less_than_a_third_of_the_input_in_extra_memory(backend):
    # The data is centered chunk by chunk, never copied whole (scikit-learn holds about
    # 2.5 times the input here). The default settings, k-means++ included.
    X = np.random.default_rng(0).standard_normal((1_000_000, 32), dtype=np.float32)
    with anykmeans.config_context(kernels=backend):
        anykmeans.KMeans(4, max_iter=2, random_state=0).fit(X[:5000])  # compile, warm up
        tracemalloc.start()
        try:
            anykmeans.KMeans(16, max_iter=5, random_state=0).fit(X)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak <= 0.3 * X.nbytes, f"{peak / X.nbytes:.2f} × the input"
