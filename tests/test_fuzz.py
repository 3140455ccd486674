"""Property-based fuzzing of the public API (``KMeans``, ``kmeans_plusplus``).

Hypothesis draws the shape (n from 1 to 300, d from 1 to 20, k from 1 to min(n, 10)), the
dtype (float16/32/64, signed and unsigned integers, bool), the kind of data (Gaussian,
blobs, small integers with exact ties, a few rows repeated, one constant row), its scale
(1e-15 to 1e15) and offset (up to 1e6), the sample weights (none, positive, mostly zero,
small integers, a scalar, a list), the initialisation (k-means++, random, rows of X, points
in its range, a callable), n_init, max_iter, tol and copy_x, the settings (kernels,
a working memory of a few KiB that cuts passes into chunks, output="numpy"); for NumPy and
PyTorch Fortran order and strided views, for NumPy also reversed views, read-only arrays,
``np.memmap`` files and big-endian dtypes. Every CPU namespace of
``conftest.make_placement`` runs: numpy, strict-cpu, torch-cpu, dask, jax (those not
installed are skipped), and a model fitted in one namespace predicts in every other.

What is checked (each an assertion that can fail):

- the inputs (X, sample_weight, init; a memmap's file) are unchanged, byte for byte, by
  every call, and no call warns except as documented;
- ``labels_`` are int32 in [0, k) and each is a nearest center, up to the rounding the
  fit's working dtype allows at the data's (centered) scale; at exact ties any tied center;
- ``cluster_centers_`` are finite, (k, d), in X's namespace, with X's float dtype
  (float32 and float64 kept, float16 computed in float32 and returned in float16, every other
  dtype cast to the namespace's default float);
- ``inertia_`` equals a float64 recomputation from ``labels_`` and ``cluster_centers_``;
- a fit warns (ConvergenceWarning) exactly when fewer than k distinct labels come out, and
  with positive weights, k-means++ and k well-separated distinct rows it never does;
- ``predict`` agrees with ``labels_`` except at near ties, ``transform`` gives the distances
  and ``score`` the opposite of the inertia of X, at the precision the fit achieves, also
  far from the origin; ``fit_predict`` / ``fit_transform`` give the same bits as fit then
  ``labels_`` / ``transform``;
- the same ``random_state`` gives bit-identical fits; a pickled model predicts the same;
- ``kmeans_plusplus`` returns k rows of X (bit for bit) and their indices; distinct rows of
  positive weight when X has at least k well-separated distinct rows of positive weight.

Tolerances are first-order rounding bounds of the working dtype (float32 or float64) at the
data's centered scale, with a safety factor of 4: a wrong label, a wrong center or an
uncentered distance is off by orders of magnitude more.

The bugs this suite found are fixed; a minimal reproducer of each stays at the end of the file
as a regression test: predict, transform and score far from the origin (bug 1); big-endian
float32 input gave float64 results (bug 2); a Dask fit left its attributes unevaluated graphs
over the training data, unpicklable when the fit ended with the final relabelling (bug 3);
float32 k-means++ could draw a zero-weight row (bug 4, about once in 30 million draws); a
JAX-fitted model made PyTorch warn when it predicted on a tensor (bug 5).

Profiles: the default, ``fuzz-ci``, keeps the whole file to about a minute on two cores. A
longer run (about 20 times the examples) is ``ANYKMEANS_FUZZ_PROFILE=long pytest
tests/test_fuzz.py``. The Hypothesis tests run as inner ``@given`` functions, so that the
example budget can depend on the namespace (Dask and JAX cost a second or more per fit;
JAX also compiles once per new shape, hence its short menu of shapes).
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import os
import pickle
import warnings
from dataclasses import dataclass, replace

import array_api_compat
import numpy as np
import pytest
from hypothesis import given, note, settings, strategies as st

import anykmeans
from anykmeans import ConvergenceWarning, KMeans, kmeans_plusplus
from conftest import make_placement

# --------------------------------------------------------------------------- profiles

settings.register_profile("fuzz-ci", max_examples=60, deadline=None, print_blob=True, database=None)
settings.register_profile("fuzz-long", max_examples=1200, deadline=None, print_blob=True, database=None)
_PROFILE = {"long": "fuzz-long", "fuzz-long": "fuzz-long"}.get(
    os.environ.get("ANYKMEANS_FUZZ_PROFILE", "fuzz-ci"), "fuzz-ci"
)
# Relative cost of one example per namespace: the profile's max_examples is for NumPy.
_COST = {"numpy": 1.0, "strict-cpu": 0.5, "torch-cpu": 0.5, "dask": 0.07, "jax": 0.04}
NAMESPACES = ["numpy", "strict-cpu", "torch-cpu", "dask", "jax"]


def _settings(namespace: str, share: float = 1.0, **overrides) -> settings:
    parent = settings.get_profile(_PROFILE)
    n = max(2, round(parent.max_examples * share * _COST[namespace]))
    return settings(parent, max_examples=n, **overrides)


# A regime that is expected to fail (a known bug): stop at the first failure, no shrinking.


def _placement(name: str):
    module = {"strict-cpu": "array_api_strict", "torch-cpu": "torch", "dask": "dask.array", "jax": "jax"}
    if name in module:
        pytest.importorskip(module[name])
    return make_placement(name)


# --------------------------------------------------------------------------- dtypes

_INTS = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
DTYPES = {
    "numpy": ["float16", "float32", "float64", *_INTS, "bool"],
    "strict-cpu": ["float32", "float64", *_INTS, "bool"],  # array-api-strict has no float16
    "torch-cpu": ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"],
    "dask": ["float16", "float32", "float64", *_INTS, "bool"],
    "jax": ["float16", "float32", "float64", "int8", "int32", "int64", "uint8", "uint32", "bool"],
}


def _working_dtype(placement, dtype: str) -> str:
    """The float dtype the library computes in and returns: float32/float64 (in either byte
    order) kept, float16 computed in float32, anything else the namespace's default."""
    if np.dtype(dtype).kind == "f" and np.dtype(dtype).itemsize in (4, 8):
        return np.dtype(dtype).newbyteorder("=").name
    if np.dtype(dtype).kind == "f":
        return "float32"
    if placement.id == "torch-cpu":
        import torch

        return str(torch.get_default_dtype()).removeprefix("torch.")
    return "float64"  # NumPy, array-api-strict, Dask and JAX (x64 enabled by conftest)


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    n: int
    d: int
    k: int
    dtype: str
    kind: str  # normal | blobs | integers | duplicates | constant
    scale_exp: int
    offset_exp: int | None  # None: no offset
    weights: str  # none | positive | mostly-zero | integers | scalar (a number) | list (of floats)
    weights_dtype: str  # working | float64 | int64
    init: str  # k-means++ | random | rows (of X) | box (points in X's range) | callable
    n_init: int
    max_iter: int
    tol: float
    seed: int
    layout: str = "C"
    copy_x: bool = True
    regime: str = "any"  # any | far (see ``cases``)
    kernels: str = "auto"
    working_memory: float | None = None  # MiB; None: the default
    output: str = "input"
    algorithm: str = "lloyd"


# JAX compiles every operation once per shape and dtype (seconds per new fit shape): a short
# menu of shapes lets the examples share compilations.
_JAX_SHAPES = [(1, 1, 1), (9, 3, 3), (64, 5, 4), (200, 20, 10)]


@st.composite
def cases(draw, namespace: str, *, regime: str = "any", layouts=("C",), dtypes=None) -> Case:
    """A fuzz case. ``regime``: ``any`` (offsets up to 1e6 on top of data of any scale) or
    ``far`` (Gaussian data or blobs whose mean is 1e3 to 1e9 times their spread away from
    the origin)."""
    if namespace == "jax":
        n, d, k = draw(st.sampled_from(_JAX_SHAPES[1:] if regime == "far" else _JAX_SHAPES))
    else:
        n = draw(st.integers(16, 300) if regime == "far" else st.one_of(st.integers(1, 12), st.integers(13, 300)))
        d = draw(st.one_of(st.integers(1, 3), st.integers(1, 20)))
        k = draw(st.one_of(st.just(1), st.integers(1, min(n, 10))) if n > 1 else st.just(1))
    if regime == "far":
        dtype = draw(st.sampled_from(["float32", "float64"]))
    elif dtypes is not None:
        dtype = draw(st.sampled_from(dtypes))
    else:
        # Float dtypes half the time, integer dtypes and bool the other half.
        floats = [t for t in DTYPES[namespace] if t.startswith("float")]
        ints = [t for t in DTYPES[namespace] if not t.startswith("float") and t != "bool"]
        dtype = draw(st.one_of(st.sampled_from(floats), st.sampled_from(floats), st.sampled_from(ints), st.just("bool")))
    kinds = ["normal", "blobs"] if regime == "far" else ["normal", "blobs", "integers", "duplicates", "constant"]
    kind = draw(st.sampled_from(kinds))
    if dtype == "float16":
        scale_exp = draw(st.integers(-8, 2))
    elif np.dtype(dtype).kind in "iu":
        scale_exp = draw(st.integers(0, {1: 1, 2: 3, 4: 8, 8: 15}[np.dtype(dtype).itemsize]))
    else:
        scale_exp = draw(st.integers(-15, 15))
    if regime == "far":
        # offset / spread in [1e3, 1e9], offset at most 1e6.
        scale_exp = draw(st.integers(-3, 3))
        offset_exp = draw(st.integers(max(scale_exp + 3, 0), min(scale_exp + 9, 6)))
    else:
        offset_exp = draw(st.one_of(st.none(), st.integers(-3, 3 if dtype == "float16" else 6)))
    weights = draw(st.sampled_from(["none", "positive", "mostly-zero", "integers", "scalar", "list"]))
    weights_dtype = draw(st.sampled_from(["working", "float64", "int64"] if weights == "integers" else ["working", "float64"]))
    init = draw(st.sampled_from(["k-means++", "random", "rows", "box", "callable"]))
    n_init = draw(st.integers(1, 2)) if init in ("k-means++", "random", "callable") else 1
    slow = namespace in ("dask", "jax")
    max_iter = draw(st.sampled_from([1, 2, 20] if slow else [1, 2, 300]))
    tol = draw(st.sampled_from([0.0, 1e-4]))
    seed = draw(st.integers(0, 2**32 - 1))
    layout = draw(st.sampled_from(layouts))
    copy_x = draw(st.booleans())
    # The backends (auto is Numba for NumPy where installed, PyTorch's own for torch), and a
    # working memory of a few KiB, which cuts the passes into chunks of a few rows.
    kernels = draw(st.sampled_from(_KERNELS.get(namespace, ["auto"])))
    working_memory = None if slow else draw(st.sampled_from([None, None, 0.002]))
    output = "input" if namespace == "numpy" else draw(st.sampled_from(["input", "input", "numpy"]))
    # Elkan's bounds where the kernels have them (Numba), Lloyd's passes elsewhere.
    algorithm = draw(st.sampled_from(["lloyd", "elkan"]))
    return Case(n, d, k, dtype, kind, scale_exp, offset_exp, weights, weights_dtype, init, n_init,
                max_iter, tol, seed, layout, copy_x, regime, kernels, working_memory, output, algorithm)


_KERNELS = {"numpy": ["auto", "numpy", "array_api"], "torch-cpu": ["auto", "array_api"]}


def _config(case: Case):
    changes = {"kernels": case.kernels, "output": case.output}
    if case.working_memory is not None:
        changes["working_memory"] = case.working_memory
    return anykmeans.config_context(**changes)


def _host_values(case: Case) -> np.ndarray:
    """X on the host, in ``case.dtype`` (C order, native byte order), always finite."""
    rng = np.random.default_rng(case.seed)
    n, d, dtype = case.n, case.d, np.dtype(case.dtype)
    if dtype.kind == "b":
        return rng.random((n, d)) < rng.choice([0.1, 0.5])
    if case.kind == "normal":
        base = rng.normal(size=(n, d))
    elif case.kind == "blobs":
        centers = 10 * rng.normal(size=(int(rng.integers(1, 6)), d))
        base = centers[rng.integers(centers.shape[0], size=n)] + 0.1 * rng.normal(size=(n, d))
    elif case.kind == "integers":
        base = rng.integers(-3, 4, size=(n, d)).astype(np.float64)
    elif case.kind == "duplicates":
        rows = rng.normal(size=(int(rng.integers(1, case.k + 3)), d))
        base = rows[rng.integers(rows.shape[0], size=n)]
    else:
        base = np.broadcast_to(rng.normal(size=d), (n, d)).copy()
    signs = rng.choice([-1.0, 1.0], size=d)
    if case.regime == "far":
        base = base - base.mean(axis=0)  # the mean exactly where the offset puts it
    if dtype.kind == "f":
        offset = 0.0 if case.offset_exp is None else 10.0**case.offset_exp
        return (base * 10.0**case.scale_exp + offset * signs).astype(dtype)
    # Integers: rounded, shifted into the dtype's range (exactly representable in float64).
    info = np.iinfo(dtype)
    high = min(float(info.max), 2.0**53)
    low = max(float(info.min), -(2.0**53))
    values = np.round(base * 10.0**case.scale_exp)
    values = np.clip(values, low / 4, high / 4) if info.min < 0 else np.clip(values - values.min(), 0, high / 2)
    if case.offset_exp is not None:
        offset = min(10.0**case.offset_exp, high - values.max(), (values.min() - low) if info.min < 0 else np.inf)
        values = values + np.floor(max(offset, 0.0)) * (signs if info.min < 0 else 1.0)
    return np.clip(values, low, high).astype(dtype)


def _host_weights(case: Case) -> np.ndarray | None:
    rng = np.random.default_rng(case.seed + 1)
    n = case.n
    if case.weights == "none":
        return None
    if case.weights == "scalar":
        return np.full(n, 2.5)
    if case.weights in ("positive", "list"):
        w = rng.uniform(0.1, 3.0, size=n)
    elif case.weights == "mostly-zero":
        w = rng.uniform(0.1, 3.0, size=n) * (rng.random(n) < 0.2)
    else:
        w = rng.integers(0, 3, size=n).astype(np.float64)
    if not w.any():
        w[int(rng.integers(n))] = 1.0
    return w


def _host_init(case: Case, X_work: np.ndarray) -> np.ndarray | None:
    rng = np.random.default_rng(case.seed + 2)
    if case.init == "rows":
        return X_work[rng.choice(case.n, size=case.k, replace=False)].copy()
    if case.init == "box":
        low, high = X_work.min(axis=0), X_work.max(axis=0)
        middle, half = (low + high) / 2, (high - low) * 0.75
        return rng.uniform(middle - half, middle + half, size=(case.k, case.d))
    return None


# --------------------------------------------------------------------------- helpers


_FILE_NUMBERS = itertools.count()


def _layout(X: np.ndarray, layout: str, tmp_dir=None) -> np.ndarray:
    """``X``'s values in the given NumPy layout (a view or file-backed array, never a copy
    that the caller could confuse with X)."""
    if layout == "C":
        return np.ascontiguousarray(X)
    if layout == "F":
        return np.asfortranarray(X)
    if layout == "strided":
        # Every other row and every third column of a larger array whose other elements
        # would poison the result (NaN) if the library ignored the strides.
        fill = np.nan if X.dtype.kind == "f" else (np.iinfo(X.dtype).max if X.dtype.kind in "iu" else True)
        big = np.full((2 * X.shape[0], 3 * X.shape[1]) if X.ndim == 2 else (2 * X.shape[0],), fill, dtype=X.dtype)
        view = big[::2, ::3] if X.ndim == 2 else big[::2]
        view[...] = X
        return view
    if layout == "reversed":
        return np.ascontiguousarray(X[::-1])[::-1]
    if layout == "readonly":
        X = X.copy()
        X.flags.writeable = False
        return X
    if layout in ("memmap", "memmap-readonly"):
        path = os.path.join(tmp_dir, f"array{next(_FILE_NUMBERS)}.dat")
        written = np.memmap(path, dtype=X.dtype, mode="w+", shape=X.shape)
        written[...] = X
        written.flush()
        del written
        return np.memmap(path, dtype=X.dtype, mode="r" if layout == "memmap-readonly" else "r+", shape=X.shape)
    if layout == "big-endian":
        return X.astype(X.dtype.newbyteorder(">"))
    raise ValueError(layout)


def _snapshot(placement, array) -> tuple | None:
    if array is None:
        return None
    host = placement.to_numpy(array)
    extra = ()
    if isinstance(array, np.ndarray):
        extra = (array.flags.writeable, array.flags.c_contiguous, array.flags.f_contiguous)
        if isinstance(array, np.memmap) and array.filename:
            with open(array.filename, "rb") as f:
                extra += (f.read(),)
    return (str(host.dtype), host.shape, host.tobytes(), *extra)


@contextlib.contextmanager
def _no_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
    assert [f"{w.category.__name__}: {w.message}" for w in caught] == []


def _fit(placement, km: KMeans, X, weights, k: int) -> KMeans:
    """Fit, and check the warnings: a ConvergenceWarning exactly when fewer than k distinct
    labels come out (the library's documented reason), nothing else."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        km.fit(X, sample_weight=weights)
    _check_fit_warnings(caught, placement.to_numpy(km.labels_), k)
    return km


def _check_fit_warnings(caught, labels: np.ndarray, k: int) -> None:
    n_distinct = np.unique(labels).size
    convergence = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    others = [f"{w.category.__name__}: {w.message}" for w in caught if w not in convergence]
    assert others == []
    assert len(convergence) == (1 if n_distinct < k else 0), (n_distinct, k, [str(w.message) for w in convergence])


def _same_placement(out, X) -> None:
    """``out`` is where the ``output`` setting puts results: X's namespace and device, or NumPy."""
    if anykmeans.get_config()["output"] == "numpy":
        assert type(out) is np.ndarray
        return
    assert array_api_compat.array_namespace(out) is array_api_compat.array_namespace(X)
    assert array_api_compat.device(out) == array_api_compat.device(X)


# --------------------------------------------------------------------------- the reference

# Rounding bounds below are first-order estimates (a few ulps per operation); this factor
# covers their constants. A bug moves results by orders of magnitude more.
_SAFETY = 4.0


class Reference:
    """float64 distances of the data as the library sees it (X cast to its working dtype)
    to the fitted centers, with the rounding a computation in the working dtype allows."""

    def __init__(self, X_work: np.ndarray, centers: np.ndarray, working_dtype: str, centers_dtype: str | None = None):
        self.X = X_work.astype(np.float64)
        self.C = centers.astype(np.float64)
        info = np.finfo(working_dtype)
        self.eps = eps = float(info.eps)
        n, d = self.X.shape
        self.tiny = 16 * (d + 2) * float(info.smallest_normal)
        self.m = m = self.X.mean(axis=0)
        diff = self.X[:, None, :] - self.C[None, :, :]
        self.D = np.einsum("ikj,ikj->ik", diff, diff)
        # Expanded-form distances in centered coordinates: (d + 2) ulps of (|x'| + |c'|)².
        x_norm = np.linalg.norm(self.X - m, axis=1)
        c_norm = np.linalg.norm(self.C - m, axis=1)
        # The reported centers are the centered ones plus the mean, rounded (to their own
        # dtype, float16 for float16 X): ulps of |c|.
        centers_info = np.finfo(centers_dtype or working_dtype)
        centers_eps = max(eps, float(centers_info.eps))
        self.delta = centers_eps * (np.linalg.norm(self.C, axis=1) + np.linalg.norm(m))
        if centers_info.bits < info.bits:
            # float16 centers of tiny data are subnormal: absolute steps of smallest_subnormal.
            self.delta = self.delta + np.sqrt(d) * float(centers_info.smallest_subnormal)
        rounding = 2 * np.sqrt(self.D) * self.delta[None, :] + self.delta[None, :] ** 2
        self.pair_tol = _SAFETY * ((d + 2) * eps * (x_norm[:, None] + c_norm[None, :]) ** 2 + rounding) + self.tiny
        # At the data's scale (largest centered norms): what transform's distances may be off.
        self.global_tol = (
            _SAFETY * ((d + 2) * eps * (x_norm.max() + c_norm.max()) ** 2
                       + 2 * np.sqrt(self.D) * self.delta.max() + self.delta.max() ** 2)
            + 4 * eps * self.D + self.tiny
        )
        self.x_norm = x_norm

    def assert_nearest(self, labels: np.ndarray, what: str) -> None:
        rows = np.arange(self.X.shape[0])
        assert labels.shape == rows.shape
        assert labels.min(initial=0) >= 0 and labels.max(initial=0) < self.C.shape[0], what
        assigned = self.D[rows, labels] - self.pair_tol[rows, labels]
        best = (self.D + self.pair_tol).min(axis=1)
        bad = np.flatnonzero(assigned > best)
        assert bad.size == 0, (
            f"{what}: {bad.size} rows not at a nearest center, e.g. row {bad[0]}: label {labels[bad[0]]} "
            f"at {self.D[bad[0], labels[bad[0]]]!r}, nearest {self.D[bad[0]].argmin()} at "
            f"{self.D[bad[0]].min()!r}, tolerance {self.pair_tol[bad[0], labels[bad[0]]]!r}"
        )

    def inertia(self, weights: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
        """(float64 inertia of the labels, the tolerance of the library's direct-form sum)."""
        n, d = self.X.shape
        rows = np.arange(n)
        D = self.D[rows, labels]
        err = 2 * self.eps * (self.x_norm + np.sqrt(D)) + self.delta[labels]
        per_row = 2 * np.sqrt(D) * err + err**2 + (d + 2) * self.eps * D
        total = float(weights @ D)
        tol = _SAFETY * (float(weights @ per_row) + (n + 2) * self.eps * total) + n * self.tiny
        return total, tol


def _distinct_rows_resolvable(X_work: np.ndarray, weights: np.ndarray, k: int, eps: float) -> bool:
    """Whether X has at least k distinct rows of positive weight, every two of them farther
    apart than the rounding of an expanded-form distance at the data's scale."""
    X = X_work.astype(np.float64)
    distinct = np.unique(X[weights > 0], axis=0)
    if distinct.shape[0] < k:
        return False
    if distinct.shape[0] < 2:
        return True
    centered = distinct - X.mean(axis=0)
    scale = float((centered**2).sum(axis=1).max())
    diff = distinct[:, None, :] - distinct[None, :, :]
    sq = np.einsum("ijk,ijk->ij", diff, diff)
    np.fill_diagonal(sq, np.inf)
    return bool(sq.min() > 8 * _SAFETY * (X.shape[1] + 2) * eps * scale)


# --------------------------------------------------------------------------- building a case


@dataclass
class Built:
    X: object
    weights: object
    init: object
    X_work: np.ndarray  # X as the library computes with it, on the host
    weights_work: np.ndarray  # the weights as the library uses them (ones if none)
    working_dtype: str
    centers_dtype: str  # of the fitted centers: float16 for float16 X, else the working dtype


def _build(placement, case: Case, tmp_dir=None, byteorder: str = "native") -> Built:
    host = _host_values(case)
    xp = placement.xp
    if placement.id == "numpy":
        X = _layout(host, case.layout, tmp_dir)
        if byteorder == "big-endian":
            X = _layout(X, "big-endian")
    elif placement.id == "torch-cpu" and case.layout != "C":
        import torch

        X = torch.asarray(_layout(host, case.layout) if case.layout != "strided" else host)
        if case.layout == "strided":
            big = torch.zeros((2 * case.n, 3 * case.d), dtype=X.dtype)
            big[::2, ::3] = X
            X = big[::2, ::3]
    else:
        X = placement.asarray(host)
    working = _working_dtype(placement, case.dtype)
    X_work = placement.to_numpy(xp.astype(placement.asarray(host), getattr(xp, working)))

    w_host = _host_weights(case)
    weights = None
    weights_work = np.ones(case.n)
    if w_host is not None:
        wdtype = {"working": working, "float64": "float64", "int64": "int64"}[case.weights_dtype]
        if case.weights in ("scalar", "list"):  # not arrays: the library makes them its own
            wdtype = "float64"
        weights = placement.asarray(w_host, wdtype)
        if placement.id == "numpy" and case.layout != "C":
            weights = _layout(weights, "strided" if case.layout == "F" else case.layout, tmp_dir)
            if byteorder == "big-endian":
                weights = _layout(weights, "big-endian")
        weights_work = w_host.astype(wdtype).astype(working).astype(np.float64)
        if case.weights == "scalar":
            weights = 2.5
        elif case.weights == "list":
            weights = w_host.tolist()

    init_host = _host_init(case, X_work)
    init = None
    if init_host is not None:
        # Of X's dtype when that is a float dtype the namespace has, else the working one.
        init_dtype = case.dtype if np.dtype(case.dtype).kind == "f" else working
        init = placement.asarray(init_host, init_dtype)
        if placement.id == "numpy":
            init = _layout(init, "readonly")
    return Built(X, weights, init, X_work, weights_work, working, "float16" if case.dtype == "float16" else working)


def _first_rows(X, n_clusters, random_state):
    """A callable init: the first rows of the (centered) data it is given."""
    assert isinstance(random_state, (np.random.Generator, np.random.RandomState))
    return X[:n_clusters, ...]


def _estimator(case: Case, built: Built) -> KMeans:
    init = {"callable": _first_rows}.get(case.init, case.init) if built.init is None else built.init
    return KMeans(
        case.k, init=init, n_init=case.n_init, max_iter=case.max_iter, tol=case.tol,
        random_state=case.seed % 1000, copy_x=case.copy_x, algorithm=case.algorithm,
    )


# --------------------------------------------------------------------------- the checks


def check_fit(placement, case: Case, built: Built, *, check_pickle: bool = True) -> KMeans:
    """Fit twice (same seed) and pickle: every invariant of the fitted attributes."""
    note(f"case={case}")
    before = [_snapshot(placement, a) for a in (built.X, built.weights, built.init)]
    km = _fit(placement, _estimator(case, built), built.X, built.weights, case.k)
    assert [_snapshot(placement, a) for a in (built.X, built.weights, built.init)] == before

    centers = placement.to_numpy(km.cluster_centers_)
    labels = placement.to_numpy(km.labels_)
    _same_placement(km.cluster_centers_, built.X)
    _same_placement(km.labels_, built.X)
    assert centers.shape == (case.k, case.d)
    assert centers.dtype == np.dtype(built.centers_dtype), (centers.dtype, built.centers_dtype)
    assert np.isfinite(centers).all()
    assert labels.dtype == np.int32 and labels.shape == (case.n,)
    assert km.n_features_in_ == case.d
    assert 1 <= km.n_iter_ <= case.max_iter

    ref = Reference(built.X_work, centers, built.working_dtype, built.centers_dtype)
    ref.assert_nearest(labels, "labels_")
    expected, tol = ref.inertia(built.weights_work, labels)
    assert isinstance(km.inertia_, float)
    assert abs(km.inertia_ - expected) <= tol, (km.inertia_, expected, tol)

    # k-means++ from k well-separated distinct rows, all weighing something, finds k clusters.
    if (
        case.init == "k-means++"
        and case.weights in ("none", "positive")
        and _distinct_rows_resolvable(built.X_work, built.weights_work, case.k, ref.eps)
    ):
        assert np.unique(labels).size == case.k

    # The same random_state: the same bits.
    again = _fit(placement, _estimator(case, built), built.X, built.weights, case.k)
    assert placement.to_numpy(again.cluster_centers_).tobytes() == centers.tobytes()
    assert placement.to_numpy(again.labels_).tobytes() == labels.tobytes()
    assert again.inertia_ == km.inertia_ and again.n_iter_ == km.n_iter_

    if check_pickle:
        check_pickle_round_trip(placement, built, km)
    assert [_snapshot(placement, a) for a in (built.X, built.weights, built.init)] == before
    return km


def check_pickle_round_trip(placement, built: Built, km: KMeans) -> None:
    """A pickled model has the same centers and predicts the same labels."""
    centers = placement.to_numpy(km.cluster_centers_)
    with _no_warnings():
        restored = pickle.loads(pickle.dumps(km))
        assert placement.to_numpy(restored.cluster_centers_).tobytes() == centers.tobytes()
        predicted = placement.to_numpy(km.predict(built.X))
        assert placement.to_numpy(restored.predict(built.X)).tobytes() == predicted.tobytes()


def check_predict_transform_score(placement, case: Case, built: Built) -> None:
    """predict / transform / score of the training data against the fit, at the fit's precision."""
    note(f"case={case}")
    km = _fit(placement, _estimator(case, built), built.X, built.weights, case.k)
    before = [_snapshot(placement, a) for a in (built.X, built.weights)]
    with _no_warnings():
        predicted = km.predict(built.X)
        distances = km.transform(built.X)
        score = km.score(built.X, sample_weight=built.weights)
    assert [_snapshot(placement, a) for a in (built.X, built.weights)] == before

    centers = placement.to_numpy(km.cluster_centers_)
    labels = placement.to_numpy(km.labels_)
    ref = Reference(built.X_work, centers, built.working_dtype, built.centers_dtype)

    _same_placement(predicted, built.X)
    predicted = placement.to_numpy(predicted)
    assert predicted.dtype == np.int32
    ref.assert_nearest(predicted, "predict")
    # predict equals labels_ except at near ties (both within rounding of the nearest).
    rows = np.flatnonzero(predicted != labels)
    gaps = np.abs(ref.D[rows, predicted[rows]] - ref.D[rows, labels[rows]])
    assert (gaps <= ref.pair_tol[rows, predicted[rows]] + ref.pair_tol[rows, labels[rows]]).all()

    # fit_predict and fit_transform are fit then labels_ / transform: the same bits.
    for method in ("fit_predict", "fit_transform"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = getattr(_estimator(case, built), method)(built.X, sample_weight=built.weights)
        _check_fit_warnings(caught, labels, case.k)
        if method == "fit_predict":
            fit_predicted = result
        else:
            fit_transformed = result
    assert placement.to_numpy(fit_predicted).tobytes() == labels.tobytes()
    assert placement.to_numpy(fit_transformed).tobytes() == placement.to_numpy(distances).tobytes()
    assert [_snapshot(placement, a) for a in (built.X, built.weights)] == before

    _same_placement(distances, built.X)
    distances = placement.to_numpy(distances)
    assert distances.shape == (case.n, case.k)
    assert distances.dtype == np.dtype(built.working_dtype)
    assert np.isfinite(distances).all() and (distances >= 0).all()
    error = np.abs(distances.astype(np.float64) ** 2 - ref.D)
    worst = np.unravel_index(np.argmax(error - ref.global_tol), error.shape)
    assert (error <= ref.global_tol).all(), (
        f"transform: squared distance {distances[worst]**2!r} vs {ref.D[worst]!r} at {worst}, "
        f"tolerance {ref.global_tol[worst]!r}"
    )

    assert isinstance(score, float)
    rows = np.arange(case.n)
    nearest = ref.D.argmin(axis=1)
    expected, tol = ref.inertia(built.weights_work, nearest)
    label_slack = float(built.weights_work @ (2 * ref.pair_tol[rows, nearest]))
    assert abs(-score - expected) <= tol + label_slack, (-score, expected, tol + label_slack)


def check_kmeans_plusplus(placement, case: Case, built: Built) -> None:
    note(f"case={case}")
    before = [_snapshot(placement, a) for a in (built.X, built.weights)]
    seed = case.seed % 1000
    with _no_warnings():
        centers, indices = kmeans_plusplus(built.X, case.k, sample_weight=built.weights, random_state=seed)
        centers_again, indices_again = kmeans_plusplus(built.X, case.k, sample_weight=built.weights, random_state=seed)
    assert [_snapshot(placement, a) for a in (built.X, built.weights)] == before
    _same_placement(centers, built.X)
    _same_placement(indices, built.X)
    centers, indices = placement.to_numpy(centers), placement.to_numpy(indices)
    assert centers.shape == (case.k, case.d) and indices.shape == (case.k,)
    assert indices.dtype.kind in "iu"
    assert centers.dtype == np.dtype(built.centers_dtype)
    assert ((indices >= 0) & (indices < case.n)).all()
    # k rows of X, bit for bit (X as the library casts it; float16 rows as they are).
    assert centers.astype(built.working_dtype).tobytes() == np.ascontiguousarray(built.X_work[indices]).tobytes()
    # The first center is drawn in proportion to the weights: never a zero weight.
    assert built.weights_work[indices[0]] > 0
    eps = float(np.finfo(built.working_dtype).eps)
    if _distinct_rows_resolvable(built.X_work, built.weights_work, case.k, eps):
        assert np.unique(centers, axis=0).shape[0] == case.k, indices
        assert np.unique(indices).size == case.k
        assert (built.weights_work[indices] > 0).all(), indices
    # The same random_state: the same draws.
    assert placement.to_numpy(indices_again).tobytes() == indices.tobytes()
    assert placement.to_numpy(centers_again).tobytes() == centers.tobytes()


# --------------------------------------------------------------------------- the tests


def _generic_layouts(namespace: str) -> tuple[str, ...]:
    return ("C", "F", "strided") if namespace in ("numpy", "torch-cpu") else ("C",)


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_fit(namespace, monkeypatch):
    """Fitted attributes, determinism and pickling over all shapes, dtypes, scales and offsets."""
    placement = _placement(namespace)
    # algorithm="elkan": the Numba kernels' bounds on every shape, not only from 32 features.
    monkeypatch.setattr(importlib.import_module("anykmeans.backends.numba"), "ELKAN_MIN_FEATURES", 1)

    @_settings(namespace, 1.0)
    @given(case=cases(namespace, layouts=_generic_layouts(namespace)))
    def run(case):
        # Dask: the pickle round trip is test_pickle_dask_model_relabelled_at_the_end.
        with _config(case):
            check_fit(placement, case, _build(placement, case), check_pickle=namespace != "dask")

    run()


def test_pickle_dask_model_relabelled_at_the_end():
    """The Dask fits whose last step is the final relabelling: max_iter=1 always is one."""
    placement = _placement("dask")

    @_settings("dask", 0.5)
    @given(case=cases("dask"))
    def run(case):
        case = replace(case, max_iter=1, output="input")  # NumPy output would be eager
        built = _build(placement, case)
        with _config(case):
            km = check_fit(placement, case, built, check_pickle=False)
            check_pickle_round_trip(placement, built, km)

    run()


@pytest.mark.parametrize("regime", ["any", "far"])
@pytest.mark.parametrize("namespace", NAMESPACES)
def test_predict_transform_score(namespace, regime):
    """predict/transform/score of the training data agree with the fit. ``any``: the cases of
    test_fit; ``far``: data whose mean is 1e3 to 1e9 times its spread away from the origin,
    where distances computed without the fit's centering lose their precision (bug 1, fixed)."""
    placement = _placement(namespace)

    @_settings(namespace, 0.75 if regime == "any" else 0.25)
    @given(case=cases(namespace, regime=regime, layouts=_generic_layouts(namespace)))
    def run(case):
        with _config(case):
            check_predict_transform_score(placement, case, _build(placement, case))

    run()


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_kmeans_plusplus(namespace):
    placement = _placement(namespace)

    @_settings(namespace, 0.75)
    @given(case=cases(namespace, layouts=_generic_layouts(namespace)))
    def run(case):
        with _config(case):
            check_kmeans_plusplus(placement, case, _build(placement, case))

    run()


@pytest.mark.parametrize(
    "byteorder, dtypes",
    [
        pytest.param("native", ("float16", "float32", "float64", *_INTS, "bool"), id="native"),
        pytest.param("big-endian", ("float16", "float64", "int16", "int32", "int64", "uint32"), id="big-endian"),
        pytest.param("big-endian", ("float32",), id="big-endian-float32"),
    ],
)
def test_numpy_memory_layouts(byteorder, dtypes, tmp_path):
    """NumPy input in every layout: C and Fortran order, strided and reversed views, read-only,
    np.memmap files (writable and read-only: the file must not change), big-endian."""
    placement = _placement("numpy")
    layouts = ("C", "F", "strided", "reversed", "readonly", "memmap", "memmap-readonly")

    @_settings("numpy", 0.75)
    @given(case=cases("numpy", layouts=layouts, dtypes=dtypes))
    def run(case):
        built = _build(placement, case, str(tmp_path), byteorder)
        if byteorder == "big-endian" and np.dtype(case.dtype).itemsize > 1:
            assert built.X.dtype.byteorder == ">"
        with _config(case):
            check_fit(placement, case, built)
            check_predict_transform_score(placement, case, built)
            check_kmeans_plusplus(placement, case, built)

    run()


@contextlib.contextmanager
def _torch_warns_always():
    """PyTorch gives some warnings once per process; for the tests, every time."""
    import torch

    previous = torch.is_warn_always_enabled()
    torch.set_warn_always(True)
    try:
        yield
    finally:
        torch.set_warn_always(previous)


def _pairs():
    for fitted in NAMESPACES:
        for other in NAMESPACES:
            yield pytest.param(fitted, other, id=f"{fitted}-to-{other}")


@pytest.mark.parametrize("fitted_on, other", list(_pairs()))
def test_predict_on_another_namespace(fitted_on, other):
    """A fitted model takes input of any namespace (the centers move, not the data): the
    results are in the input's namespace and dtype, at nearest centers, without warnings."""
    fit_placement, placement = _placement(fitted_on), _placement(other)
    torch_context = _torch_warns_always if "torch-cpu" in (fitted_on, other) else contextlib.nullcontext

    costlier = min((fitted_on, other), key=_COST.__getitem__)

    @_settings(costlier, 0.25)
    @given(
        fit_dtype=st.sampled_from(["float32", "float64"]),
        dtype=st.sampled_from(["float32", "float64", "int32"]),
        seed=st.integers(0, 2**32 - 1),
    )
    def run(fit_dtype, dtype, seed):
        rng = np.random.default_rng(seed)
        X_host = rng.normal(size=(64, 5)) * 10.0 ** rng.integers(-3, 4)
        if dtype == "int32":
            X_host = np.round(X_host * 1000 / np.abs(X_host).max())
        km = _fit(fit_placement, KMeans(4, random_state=seed % 1000), fit_placement.asarray(X_host, fit_dtype), None, 4)
        X = placement.asarray(X_host, dtype)
        before = _snapshot(placement, X)
        with torch_context(), _no_warnings():
            predicted, distances = km.predict(X), km.transform(X)
            score = km.score(X)
        assert _snapshot(placement, X) == before
        _same_placement(predicted, X)
        _same_placement(distances, X)
        working = _working_dtype(placement, dtype)
        assert placement.to_numpy(distances).dtype == np.dtype(working)
        X_work = X_host.astype(dtype).astype(working)
        ref = Reference(X_work, fit_placement.to_numpy(km.cluster_centers_).astype(working), working)
        ref.assert_nearest(placement.to_numpy(predicted), "predict")
        assert (np.abs(placement.to_numpy(distances).astype(np.float64) ** 2 - ref.D) <= ref.global_tol).all()
        expected, tol = ref.inertia(np.ones(64), ref.D.argmin(axis=1))
        assert abs(-score - expected) <= tol + 2 * ref.pair_tol.max() * 64

    run()


@pytest.mark.parametrize("namespace", ["numpy", "strict-cpu", "torch-cpu"])
@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_non_finite_input_is_a_clear_error(namespace, bad):
    """Non-finite X or weights (float16 overflow included) are a ValueError before any work,
    and the input is left as it was."""
    placement = _placement(namespace)
    X_host = np.random.default_rng(0).normal(size=(20, 3))
    dtypes = [d for d in ("float16", "float32", "float64") if d in DTYPES[namespace]]
    for dtype in dtypes:
        X_bad = X_host.copy()
        X_bad[3, 1] = float(bad)
        X = placement.asarray(X_bad, dtype)
        before = _snapshot(placement, X)
        with _no_warnings():
            with pytest.raises(ValueError, match="X contains"):
                KMeans(2, random_state=0).fit(X)
            with pytest.raises(ValueError, match="X contains"):
                kmeans_plusplus(X, 2, random_state=0)
        assert _snapshot(placement, X) == before
        w = np.ones(20)
        w[5] = float(bad)
        with _no_warnings(), pytest.raises(ValueError, match="sample_weight contains"):
            KMeans(2, random_state=0).fit(placement.asarray(X_host, dtype), sample_weight=placement.asarray(w, dtype))
    if "float16" in dtypes:
        # 1e5 does not fit in float16: it becomes inf when the user casts it.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's overflow in the cast
            X = placement.asarray(np.full((4, 2), 1e5), "float16")
        with _no_warnings(), pytest.raises(ValueError, match="X contains"):
            KMeans(1).fit(X)


# --------------------------------------------------------------------------- reproducers of bugs


# Bug 1: predict/transform/score did not center the data as the fit does.
@pytest.mark.parametrize("dtype, offset", [("float32", 1e4), ("float64", 1e8)])
def test_bug_predict_transform_score_uncentered(dtype, offset):
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(200, 3)) + offset).astype(dtype)
    km = KMeans(4, random_state=0).fit(X)
    C = km.cluster_centers_.astype(np.float64)
    D = ((X.astype(np.float64)[:, None, :] - C[None]) ** 2).sum(axis=-1)
    errors = []
    if (km.predict(X) != km.labels_).any():  # labels_ are the nearest centers (checked by the fuzz tests)
        errors.append(f"predict differs from labels_ on {(km.predict(X) != km.labels_).sum()} rows")
    if not np.allclose(km.transform(X), np.sqrt(D), rtol=1e-3, atol=1e-3):
        errors.append(f"transform off by {np.abs(km.transform(X) - np.sqrt(D)).max()}")
    if -km.score(X) != pytest.approx(D.min(axis=1).sum(), rel=1e-3):
        errors.append(f"score {-km.score(X)} vs inertia {D.min(axis=1).sum()}")
    assert errors == []


def test_bug_big_endian_float32_becomes_float64():
    X = np.random.default_rng(0).normal(size=(30, 2)).astype(">f4")
    km = KMeans(2, random_state=0).fit(X)
    assert km.cluster_centers_.dtype == np.float32


def test_bug_dask_centers_are_a_graph_over_the_training_data():
    da = pytest.importorskip("dask.array")
    X_host = np.random.default_rng(0).normal(size=(4_000, 8))
    km = KMeans(3, random_state=0).fit(da.from_array(X_host, chunks=1_000))
    # 3 x 8 centers, yet their pickle holds X (256 kB): they are `centers + mean(X)`,
    # unevaluated, and recompute the mean of X at every use.
    assert len(pickle.dumps(km.cluster_centers_)) < 100_000


def test_bug_dask_labels_lazy_and_unpicklable():
    da = pytest.importorskip("dask.array")
    X = da.from_array(np.random.default_rng(0).normal(size=(20, 2)), chunks=7)
    km = KMeans(2, random_state=0, max_iter=1).fit(X)
    restored = pickle.loads(pickle.dumps(km))
    np.testing.assert_array_equal(restored.labels_.compute(), km.labels_.compute())


class _LargestUniform(np.random.RandomState):
    """A RandomState whose ``uniform`` draws are all 1 - 2**-26: a value NumPy's uniform
    returns about once in 30 million draws (any draw in [1 - 2**-25, 1) behaves the same)."""

    def uniform(self, low=0.0, high=1.0, size=None):
        return np.full(size, 1.0 - 2.0**-26)


def test_bug_float32_kmeans_plusplus_draws_a_zero_weight_row():
    X = np.arange(10.0, dtype=np.float32).reshape(5, 2)
    weights = np.array([1.0, 1.0, 1.0, 1.0, 0.0])
    _, indices = kmeans_plusplus(X, 1, sample_weight=weights, random_state=_LargestUniform(0))
    assert weights[indices[0]] > 0, indices


def test_bug_jax_model_predict_on_torch_warns():
    pytest.importorskip("jax")
    torch = pytest.importorskip("torch")
    jax_placement = _placement("jax")
    X = np.random.default_rng(0).normal(size=(30, 3))
    km = KMeans(3, random_state=0).fit(jax_placement.asarray(X))
    with _torch_warns_always(), warnings.catch_warnings():
        warnings.simplefilter("error")  # as the project's pytest configuration does
        km.predict(torch.asarray(X))
