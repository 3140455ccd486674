"""Ordinary but adversarial use: data far from the origin, forked processes, PyTorch tensors
that require grad, and fits interrupted half-way."""

from __future__ import annotations

import io
import multiprocessing
import pickle
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest

import anykmeans
from anykmeans import KMeans, NotFittedError


def _offset_blobs(offset, dtype, n=3000, d=4, k=5, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=5.0, size=(k, d))
    X = centers[rng.integers(0, k, size=n)] + rng.normal(size=(n, d)) + offset
    return X.astype(dtype)


# --------------------------------------------------------------------------- offset data


@pytest.mark.parametrize("offset", [1e3, 1e4, 1e6])
def test_float32_transform_is_accurate_far_from_the_origin(placement, offset):
    X = _offset_blobs(offset, "float32")
    km = KMeans(5, random_state=0).fit(placement.asarray(X))
    distances = placement.to_numpy(km.transform(placement.asarray(X)))
    centers = placement.to_numpy(km.cluster_centers_).astype(np.float64)
    exact = np.sqrt(((X.astype(np.float64)[:, None, :] - centers[None]) ** 2).sum(axis=-1))
    # Relative to the distance, plus an absolute term relative to the data's spread.
    spread = np.sqrt(((X - X.astype(np.float64).mean(axis=0)) ** 2).sum(axis=1).max())
    assert np.all(np.abs(distances - exact) <= 1e-5 * exact + 1e-5 * spread)


@pytest.mark.parametrize("offset, dtype", [(1e5, "float32"), (1e9, "float64")])
def test_predict_and_score_agree_with_the_fit_far_from_the_origin(placement, offset, dtype):
    X = _offset_blobs(offset, dtype, seed=1)
    Xd = placement.asarray(X)
    km = KMeans(5, random_state=0).fit(Xd)
    np.testing.assert_array_equal(placement.to_numpy(km.predict(Xd)), placement.to_numpy(km.labels_))
    assert -km.score(Xd) == pytest.approx(km.inertia_, rel=1e-5 if dtype == "float32" else 1e-9)


def test_a_model_pickled_without_the_fit_mean_predicts_far_from_the_origin():
    X = _offset_blobs(1e6, "float32", seed=2)
    fitted = KMeans(5, random_state=0).fit(X)
    older = pickle.loads(pickle.dumps(fitted))
    del older._fit_mean  # as a model pickled by an earlier version: its centers' mean serves
    # Another centering rounds differently: both give a nearest stored center (float32
    # cluster_centers_ at 1e6 are themselves rounded to 1/16, so labels_, found with the
    # fit's unrounded centers, can differ from them on near-ties).
    centers = fitted.cluster_centers_.astype(np.float64)
    exact = ((X.astype(np.float64)[:, None, :] - centers[None]) ** 2).sum(axis=-1)
    rows = np.arange(len(X))
    for model in (older, fitted):
        labels = model.predict(X)
        np.testing.assert_allclose(exact[rows, labels], exact.min(axis=1), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(older.transform(X), fitted.transform(X), rtol=1e-5, atol=1e-4)


# --------------------------------------------------------------------------- fork


def _run(code, timeout=120):
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
        timeout=timeout, cwd=tempfile.gettempdir(),
    )


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no fork on this platform")
def test_fit_in_a_forked_child_of_a_process_that_fitted_before():
    result = _run(
        """
        import os, numpy as np, anykmeans
        X = np.random.default_rng(0).normal(size=(50_000, 8)).astype(np.float32)
        parent = anykmeans.KMeans(4, random_state=0).fit(X)
        pid = os.fork()
        if pid == 0:
            child = anykmeans.KMeans(4, random_state=0).fit(X)
            os._exit(0 if (child.cluster_centers_ == parent.cluster_centers_).all() else 3)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
        """,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "child 0"


_POOL_SCRIPT = """
import multiprocessing, sys
import numpy as np
import anykmeans


def fit_centers(X):
    return anykmeans.KMeans(4, random_state=0).fit(X).cluster_centers_


if __name__ == "__main__":
    X = np.random.default_rng(1).normal(size=(40_000, 6)).astype(np.float32)
    expected = fit_centers(X)  # the parent's thread pool exists before the workers start
    with multiprocessing.get_context(sys.argv[1]).Pool(2) as pool:
        results = pool.map_async(fit_centers, [X, X]).get(timeout=100)
    print(all((centers == expected).all() for centers in results))
"""


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_fits_in_a_multiprocessing_pool_after_a_fit_in_the_parent(method, tmp_path):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    # In a fresh interpreter: this one has imported libraries that warn when it forks.
    script = tmp_path / "pool_fit.py"
    script.write_text(_POOL_SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script), method], capture_output=True, text=True, timeout=150, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


# --------------------------------------------------------------------------- autograd


def test_tensors_that_require_grad_are_fitted_without_autograd():
    torch = pytest.importorskip("torch")
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(4000, 8, generator=generator, requires_grad=True)
    weights = torch.rand(4000, generator=generator, requires_grad=True)
    init = torch.randn(4, 8, generator=generator, requires_grad=True)
    # The suite turns warnings into errors: PyTorch's "requires_grad to a scalar" would fail.
    km = KMeans(4, init=init).fit(X, sample_weight=weights)
    plain = KMeans(4, init=init.detach()).fit(X.detach(), sample_weight=weights.detach())
    for got in (km.cluster_centers_, km.transform(X), km.predict(X)):
        assert not got.requires_grad and got.grad_fn is None
    assert torch.equal(km.cluster_centers_, plain.cluster_centers_)
    assert torch.equal(km.labels_, plain.labels_)
    assert km.score(X, sample_weight=weights) == plain.score(X.detach(), sample_weight=weights.detach())
    centers, indices = anykmeans.kmeans_plusplus(X, 3, random_state=0)
    assert not centers.requires_grad and centers.grad_fn is None
    # The inputs keep their autograd state.
    assert X.requires_grad and weights.requires_grad and init.requires_grad


# --------------------------------------------------------------------------- interrupted fits


class _InterruptAt:
    """A stdout that raises ``exception`` when the fit prints its ``at``-th iteration."""

    def __init__(self, at, exception):
        self.at, self.exception, self.seen = at, exception, 0
        self.buffer = io.StringIO()

    def write(self, text):
        if text.startswith("Iteration "):
            self.seen += 1
            if self.seen == self.at:
                raise self.exception
        return self.buffer.write(text)

    def flush(self):
        pass


def _state(model):
    return pickle.dumps({k: np.asarray(v) if hasattr(v, "shape") else v for k, v in vars(model).items()})


@pytest.mark.parametrize("exception", [KeyboardInterrupt(), RuntimeError("callback failed")], ids=repr)
def test_an_interrupted_fit_leaves_the_estimator_as_it_was(monkeypatch, exception):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2000, 5)) + rng.normal(scale=4.0, size=(6, 5))[rng.integers(0, 6, size=2000)]
    model = KMeans(6, random_state=0, verbose=1, tol=0)
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stdout", _InterruptAt(1, exception))
        with pytest.raises(type(exception)):
            model.fit(X)
    with pytest.raises(NotFittedError):
        model.predict(X)
    assert not hasattr(model, "labels_") and not hasattr(model, "_fit_mean")

    with monkeypatch.context() as patch:
        patch.setattr(sys, "stdout", io.StringIO())
        model.fit(X[:1000])
    before = _state(model)
    writer = _InterruptAt(3, exception)
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stdout", writer)
        with pytest.raises(type(exception)):
            model.set_params(random_state=1).fit(X)
    assert writer.seen == 3  # interrupted in the middle of the Lloyd iterations
    model.set_params(random_state=0)
    assert _state(model) == before
