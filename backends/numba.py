"""Numba backend: one compiled pass per chunk that assigns rows and accumulates the M-step
sums together, parallel over the cores and deterministic.

The Lloyd pass works on blocks of rows that fit in cache with their scores: the block is
centered as it is copied in, one GEMM (BLAS, one thread) gives the scores ``(−2c) · x``
laid out center by center, so that the argmin is a running minimum over the centers
vectorized across the block's rows (ties go to the lowest index); then each row is added to
its cluster's sum while the block is still in cache. The data is read once per iteration;
there is no centered copy of X and no ``n × k`` temporary. A k-means++ step (the center
chosen last and the new candidates, in one GEMM per block) and the exact inertia are single
compiled passes too. So is the Elkan pass (``algorithm="elkan"``): per row, the bounds rule out
centers and the rest are measured in the direct form.

Parallel and deterministic: each chunk is split into a fixed number of parts that depends only
on the chunk's shape (never on the thread count or scheduling); threads run the parts with the
GIL released, each part sums its rows in order into its own float64 buffer, and the buffers
are added in part order. The same input gives bit-identical results run to run.

Numba is optional (``pip install "anykmeans[cpu]"``); without it this backend does not
register as supporting anything; its kernels (``_numba_kernels``) are imported, compiled and
cached on disk only when first used.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import os
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .._threads import thread_cap
from .._typing import Device, Namespace
from .numpy import NumpyKernels, row_sqnorms

# A block of rows and its scores: small enough to stay in a core's L2 until the kernel reads
# the scores, big enough for an efficient GEMM (see benchmarks/results/NOTES.md).
_BLOCK_BYTES = 512 * 2**10
_MIN_BLOCK_ROWS = 512
# Parts per call: enough to keep every core busy; each has a k × d float64 buffer.
_MAX_PARTS = 16
_MIN_PART_ROWS = 4096
_PART_BUFFER_BYTES = 8 * 2**20
# Below this many features Lloyd's GEMM distances cost less than the bounds' bookkeeping
# (benchmarks/results/elkan.md): there algorithm="elkan" runs Lloyd's passes.
ELKAN_MIN_FEATURES = 32
# k-means++ GEMM columns (the pending center and the candidates) come in multiples of this.
_SEEDING_WIDTH = 8


@functools.cache
def _pool() -> ThreadPoolExecutor:
    # Plain threads running kernels compiled with nogil: waiting threads sleep instead of
    # spinning (as OpenMP pools do), which matters on a busy machine, and Numba's global
    # threading layer is left to the user.
    return ThreadPoolExecutor(max_workers=core_count(), thread_name_prefix="anykmeans-numba")


def kernel_cache_dir() -> str:
    """Where the compiled kernels are cached: ``NUMBA_CACHE_DIR`` when set, else an
    ``anykmeans`` folder in the user's cache directory (never inside the installed package)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return os.environ["NUMBA_CACHE_DIR"]
    home = os.path.expanduser("~")
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.join(home, "AppData", "Local")
    elif sys.platform == "darwin":
        base = os.path.join(home, "Library", "Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")
    return os.path.join(base, "anykmeans", "numba")


def _forget_threads() -> None:
    """In a forked child: the pool's threads and a lock another thread held did not come
    along, so make new ones on first use instead of waiting for them forever."""
    global _blas_lock
    _pool.cache_clear()
    _blas_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_threads)


def core_count() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def thread_count() -> int:
    """Threads a pass may use now: the usable cores, no more than the ``n_threads`` setting of
    the call in progress, nor than the BLAS libraries' thread limit (threadpoolctl's
    ``threadpool_limits``, ``OPENBLAS_NUM_THREADS``, …), which users set for the same reason."""
    limits = [core_count(), *(library.num_threads for library in blas_libraries())]
    cap = thread_cap()
    return max(1, min(limits if cap is None else [*limits, cap]))


def _run_parts(n_rows: int, n_parts: int, run_part: Any, *, threads: int, align: int = 1) -> None:
    """Call ``run_part(part, start, stop)`` for each part of ``n_rows`` rows, in threads.

    Part ``p`` covers a fixed row range (starting at a multiple of ``align``) and writes only
    its own outputs, so the result does not depend on which thread runs which part, nor on
    how many threads there are.
    """
    step = -(-(-(-n_rows // n_parts)) // align) * align
    n_parts = -(-n_rows // step)

    # Each thread takes the next part not yet taken, so that a core slowed by other work does
    # less of it; which thread runs a part does not change the part's output.
    parts = iter(range(n_parts))
    lock = threading.Lock()

    def run() -> None:
        while True:
            with lock:
                part = next(parts, None)
            if part is None:
                return
            run_part(part, part * step, min(n_rows, (part + 1) * step))

    futures = [_pool().submit(run) for _ in range(1, min(threads, n_parts))]
    run()
    for future in futures:
        future.result()


@functools.cache
def blas_libraries() -> tuple[Any, ...]:
    """threadpoolctl's controllers of the loaded BLAS libraries (empty without threadpoolctl)."""
    try:
        # The kernels' GEMM (Numba's np.dot) is SciPy's BLAS: load it before looking.
        import scipy.linalg.cython_blas  # noqa: F401
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return ()
    return tuple(ThreadpoolController().select(user_api="blas").lib_controllers)


# The BLAS thread limit is process-wide: concurrent callers take turns, so that none of them
# restores the limit another has set.
_blas_lock = threading.Lock()


@contextlib.contextmanager
def one_blas_thread() -> Iterator[int]:
    """Limit BLAS to one thread while our threads each run their own small GEMMs (as
    scikit-learn does): BLAS threads spinning next to ours would fight for the cores. Yields
    the threads our pass may use (:func:`thread_count`, read before the limit is set).

    The libraries' own setters, called directly: ``threadpoolctl.limit`` inspects every
    loaded library on each call, about 50 µs, which a pass over 16 chunks would pay 16 times.
    """
    libraries = blas_libraries()
    with _blas_lock:
        threads = thread_count()
        previous = [library.num_threads for library in libraries]
        try:
            for library in libraries:
                library.set_num_threads(1)
            yield threads
        finally:
            for library, n_threads in zip(libraries, previous):
                library.set_num_threads(n_threads)


@functools.cache
def numba_installed() -> bool:
    """Numba, and SciPy, whose BLAS Numba's ``np.dot`` calls (both in the ``cpu`` extra)."""
    return all(importlib.util.find_spec(name) is not None for name in ("numba", "scipy"))


def part_count(n_rows: int, n_clusters: int, n_features: int) -> int:
    """Parts of a chunk: a function of its shape only, so results do not depend on threads."""
    by_rows = max(1, n_rows // _MIN_PART_ROWS)
    by_memory = max(1, _PART_BUFFER_BYTES // (8 * n_clusters * max(n_features, 1)))
    return int(min(_MAX_PARTS, by_rows, by_memory))


def _compiled() -> Any:
    """The compiled kernels module (imports Numba; compiles or loads the cache on first use)."""
    return importlib.import_module(f"{__package__}._numba_kernels")


def _shift_or_zero(shift: Any, n_features: int, dtype: Any) -> np.ndarray:
    return np.zeros(n_features, dtype=dtype) if shift is None else np.ascontiguousarray(shift, dtype=dtype)


class NumbaKernels(NumpyKernels):
    """Compiled, parallel passes; ``pairwise`` and ``segment_sum`` are the NumPy backend's.

    The kernels tile their own work (cache-sized blocks, parts in threads), so they take all
    rows of a pass in one call: no per-chunk copies or thread hand-offs.
    """

    name = "numba"
    priority = 20

    def supports(self, xp: Namespace, device: Device) -> bool:
        return super().supports(xp, device) and numba_installed()

    def max_chunk_rows(self, n_features: int, n_columns: int, itemsize: int, *, working_memory: int) -> None:
        return None

    def assign(self, X, centers, /, *, shift, xp, precision="highest"):
        # No faster reduced-precision product on the CPU: computed as for "highest".
        weights = np.zeros(X.shape[0], dtype=X.dtype)
        labels, min_sqdist, _, _, _ = self._assign(X, shift, centers, weights, store_sqdist=True)
        return labels, min_sqdist

    def assign_and_sum(self, X, weights, centers, /, *, shift, xp, precision="highest"):
        labels, _, sums, weight_sums, inertia = self._assign(X, shift, centers, weights, store_sqdist=False)
        return labels, X.dtype.type(inertia), sums.astype(X.dtype), weight_sums.astype(X.dtype)

    def _assign(self, X: np.ndarray, shift: Any, centers: np.ndarray, weights: np.ndarray, *, store_sqdist: bool):
        """Labels, min squared distances (if ``store_sqdist``; else an empty array), float64
        weighted sums of the rows ``X - shift``, their weight sums and the weighted inertia."""
        n_rows, n_features = X.shape
        n_clusters = centers.shape[0]
        n_parts = part_count(n_rows, n_clusters, n_features)
        labels = np.empty(n_rows, dtype=np.int32)
        min_sqdist = np.empty(n_rows if store_sqdist else 0, dtype=X.dtype)
        sums = np.zeros((n_parts, n_clusters, n_features), dtype=np.float64)
        weight_sums = np.zeros((n_parts, n_clusters), dtype=np.float64)
        inertia = np.zeros((n_parts, 1), dtype=np.float64)
        args = (
            np.ascontiguousarray(X), _shift_or_zero(shift, n_features, X.dtype),
            np.ascontiguousarray(-2 * centers, dtype=X.dtype), row_sqnorms(centers),
            np.ascontiguousarray(weights, dtype=X.dtype),
        )
        block = max(_MIN_BLOCK_ROWS, _BLOCK_BYTES // (X.itemsize * (n_clusters + n_features)))
        assign_rows = _compiled().assign_rows

        def run_part(part: int, start: int, stop: int) -> None:
            assign_rows(
                *args, start, stop, block, labels, min_sqdist, store_sqdist,
                sums[part], weight_sums[part], inertia[part],
            )

        with one_blas_thread() as threads:
            _run_parts(n_rows, n_parts, run_part, threads=threads)
        # Parts are added in a fixed order.
        return labels, min_sqdist, sums.sum(axis=0), weight_sums.sum(axis=0), float(inertia.sum())

    def sqdist_to_assigned(self, X, labels, centers, /, *, shift, xp):
        n_rows, n_features = X.shape
        sqdist = np.empty(n_rows, dtype=X.dtype)
        args = (
            np.ascontiguousarray(X), _shift_or_zero(shift, n_features, X.dtype),
            np.ascontiguousarray(centers, dtype=X.dtype), np.ascontiguousarray(labels),
        )
        assigned_rows = _compiled().assigned_rows

        def run_part(part: int, start: int, stop: int) -> None:
            assigned_rows(*args, start, stop, sqdist)

        _run_parts(n_rows, part_count(n_rows, 1, 1), run_part, threads=thread_count())
        return sqdist

    has_elkan_pass = True

    def elkan_pays(self, n_features: int, n_clusters: int) -> bool:
        return super().elkan_pays(n_features, n_clusters) and n_features >= ELKAN_MIN_FEATURES

    def elkan_pass(self, X, weights, labels, upper, lower, centers, drift, /, *, initial, shift, xp):
        n_rows, n_features = X.shape
        n_clusters = centers.shape[0]
        compiled = _compiled()
        centers = np.ascontiguousarray(centers, dtype=X.dtype)
        n_parts = part_count(n_rows, n_clusters, n_features)
        new_labels = np.empty(n_rows, dtype=np.int32)
        sums = np.zeros((n_parts, n_clusters, n_features), dtype=np.float64)
        weight_sums = np.zeros((n_parts, n_clusters), dtype=np.float64)
        counts = np.zeros((n_parts, 2), dtype=np.int64)
        inertia = np.zeros((n_parts, 1), dtype=np.float64)
        head = (np.ascontiguousarray(X), _shift_or_zero(shift, n_features, X.dtype), centers)
        drift = np.ascontiguousarray(drift, dtype=X.dtype)
        weights = np.ascontiguousarray(weights, dtype=X.dtype)
        if initial:
            # Bounds from a Lloyd pass's GEMM, loosened by the worst-case rounding.
            margin = 2 * (n_features + 4) * np.finfo(X.dtype).epsneg
            centers_sqnorm = row_sqnorms(centers)
            args = (
                *head, np.ascontiguousarray(-2 * centers.T), centers_sqnorm, np.sqrt(centers_sqnorm),
                X.dtype.type(margin), drift, weights,
            )
            block = max(_MIN_BLOCK_ROWS, _BLOCK_BYTES // (X.itemsize * (n_clusters + n_features)))
            start_rows = compiled.elkan_start_rows

            def run_part(part: int, start: int, stop: int) -> None:
                start_rows(
                    *args, start, stop, block, new_labels, upper, lower, sums[part], weight_sums[part], inertia[part]
                )

            with one_blas_thread() as threads:
                _run_parts(n_rows, n_parts, run_part, threads=threads)
        else:
            half_distances = np.empty((n_clusters, n_clusters), dtype=X.dtype)
            next_half = np.empty(n_clusters, dtype=X.dtype)
            compiled.center_bounds(centers, half_distances, next_half)
            nearest = np.argsort(half_distances, axis=1, kind="stable").astype(np.int32)
            args = (
                *head, half_distances, nearest, next_half, drift, weights,
                np.ascontiguousarray(labels, dtype=np.int32),
            )
            elkan_rows = compiled.elkan_rows

            def run_part(part: int, start: int, stop: int) -> None:
                elkan_rows(
                    *args, start, stop, new_labels, upper, lower, sums[part], weight_sums[part], inertia[part],
                    counts[part],
                )

            _run_parts(n_rows, n_parts, run_part, threads=thread_count())
        examined, measured = (n_rows * n_clusters, n_rows * n_clusters) if initial else counts.sum(axis=0)
        return (
            new_labels, upper, lower, sums.sum(axis=0).astype(X.dtype), weight_sums.sum(axis=0).astype(X.dtype),
            X.dtype.type(inertia.sum()), int(measured), int(examined),
        )

    def elkan_relative_cost(self, n_rows, n_features, n_clusters, n_measured, n_examined):
        # Fitted to the pass times of benchmarks/results/elkan.md's machine (within about 30%):
        # a bound read costs about as much as 250 units, a measured distance 3·d, and a Lloyd
        # pass d + 64 per row and center.
        entries = max(1, n_rows * n_clusters)
        return (250 * n_examined + 3 * n_features * n_measured) / (entries * (n_features + 64))

    def seeding_pass(self, X, weights, closest, pending, candidates, /, *, block_rows, shift, xp):
        n_rows, n_features = X.shape
        columns = np.concatenate([pending, candidates], axis=0)
        n_columns = columns.shape[0]
        # BLAS is about twice as fast on 8 columns as on 7: pad to a multiple of 8.
        width = -(-n_columns // _SEEDING_WIDTH) * _SEEDING_WIDTH
        columns_m2t = np.zeros((n_features, width), dtype=X.dtype)
        columns_m2t[:, :n_columns] = -2 * columns.T
        columns_sqnorm = np.zeros(width, dtype=X.dtype)
        columns_sqnorm[:n_columns] = row_sqnorms(columns)
        updated = np.empty(n_rows, dtype=X.dtype)
        block_sums = np.zeros((-(-n_rows // block_rows), n_columns - 1), dtype=np.float64)
        block = max(1, _BLOCK_BYTES // (X.itemsize * (width + n_features)) // block_rows) * block_rows
        args = (
            np.ascontiguousarray(X), _shift_or_zero(shift, n_features, X.dtype), columns_m2t,
            columns_sqnorm, n_columns, np.ascontiguousarray(closest, dtype=X.dtype),
            np.ascontiguousarray(weights, dtype=X.dtype),
        )
        seeding_rows = _compiled().seeding_rows

        def run_part(part: int, start: int, stop: int) -> None:
            seeding_rows(*args, start, stop, block, block_rows, updated, block_sums)

        with one_blas_thread() as threads:
            _run_parts(n_rows, part_count(n_rows, 1, 1), run_part, threads=threads, align=block_rows)
        return updated, block_sums.astype(X.dtype)

    def seeding_draw(self, X, weights, closest, pending, block_sums, targets, /, *, block_rows, shift, xp):
        # A few hundred rows at most: one serial compiled call, no thread hand-off.
        drawn = np.empty(targets.shape[0], dtype=np.int64)
        _compiled().draw_rows(
            np.ascontiguousarray(X), _shift_or_zero(shift, X.shape[1], X.dtype),
            np.ascontiguousarray(pending[0], dtype=X.dtype), np.ascontiguousarray(closest, dtype=X.dtype),
            np.ascontiguousarray(weights, dtype=X.dtype), np.ascontiguousarray(block_sums),
            np.ascontiguousarray(targets), block_rows, drawn,
        )
        return drawn


kernels = NumbaKernels()
