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
