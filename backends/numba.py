"""Numba backend: one compiled pass per chunk that assigns rows and accumulates the M-step
sums together, parallel over the cores and deterministic.

The Lloyd pass works on blocks of rows that fit in cache with their scores: the block is
centered as it is copied in, one GEMM (BLAS, one thread) gives the scores ``(−2c) · x``
laid out center by center, so that the argmin is a running minimum over the centers
vectorized across the block's rows (ties go to the lowest index); then each row is added to
its cluster's sum while the block is still in cache. The data is read once per iteration;
there is no centered copy of X and no ``n × k`` temporary. A k-means++ step (the center
chosen last and the new candidates, in one GEMM per block) and the exact inertia are single
compiled passes too.

Parallel and deterministic: each chunk is split into a fixed number of parts that depends only
on the chunk's shape (never on the thread count or scheduling); threads run the parts with the
GIL released, each part sums its rows in order into its own float64 buffer, and the buffers
are added in part order. The same input gives bit-identical results run to run.

Numba is optional (``pip install "anykmeans[cpu]"``); without it this backend does not
register as supporting anything, and it is imported (and its kernels compiled, then cached
on disk) only when first used.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import array_api_compat
import numpy as np

from . import numpy as _numpy_backend
from ._base import DistanceBackend, ReductionBackend

# A block of rows and its scores: small enough to stay in a core's L2 until the kernel reads
# the scores, big enough for an efficient GEMM. Measured per pass (two threads): 512 KiB is
# 20% faster than 2 MiB at (1M, 8, 16) and the same at d = 32 and 128, but with fewer than
# about 512 rows (k = 1000, d = 128) the GEMM slows down by 7%.
_BLOCK_BYTES = 512 * 2**10
_MIN_BLOCK_ROWS = 512
# Parts per chunk: enough to keep every core busy; each has a k × d float64 buffer.
_MAX_PARTS = 16
_MIN_PART_ROWS = 4096
_PART_BUFFER_BYTES = 8 * 2**20
# k-means++ GEMM columns (the pending center and the candidates) come in multiples of this.
_SEEDING_WIDTH = 8


@functools.cache
def _pool() -> ThreadPoolExecutor:
    # Plain threads running kernels compiled with nogil: waiting threads sleep instead of
    # spinning (as OpenMP pools do), which matters on a busy machine, and Numba's global
    # threading layer is left to the user.
    return ThreadPoolExecutor(max_workers=_n_threads(), thread_name_prefix="anykmeans-numba")


def _n_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _run_parts(n_rows: int, n_parts: int, run_part: Any, align: int = 1) -> None:
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

    futures = [_pool().submit(run) for _ in range(1, min(_n_threads(), n_parts))]
    run()
    for future in futures:
        future.result()


@functools.cache
def _blas_libraries() -> tuple[Any, ...]:
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
def _one_blas_thread() -> Iterator[None]:
    """Limit BLAS to one thread while our threads each run their own small GEMMs (as
    scikit-learn does): BLAS threads spinning next to ours would fight for the cores.

    The libraries' own setters, called directly: ``threadpoolctl.limit`` inspects every
    loaded library on each call, about 50 µs, which a pass over 16 chunks would pay 16 times.
    """
    libraries = _blas_libraries()
    with _blas_lock:
        previous = [library.num_threads for library in libraries]
        try:
            for library in libraries:
                library.set_num_threads(1)
            yield
        finally:
            for library, n_threads in zip(libraries, previous):
                library.set_num_threads(n_threads)


@functools.cache
def numba_installed() -> bool:
    """Numba, and SciPy, whose BLAS Numba's ``np.dot`` calls (both in the ``cpu`` extra)."""
    return all(importlib.util.find_spec(name) is not None for name in ("numba", "scipy"))


def _is_numpy(xp: Any) -> bool:
    return array_api_compat.is_numpy_namespace(xp)


def _n_parts(n_rows: int, n_clusters: int, n_features: int) -> int:
    """Parts of a chunk: a function of its shape only, so results do not depend on threads."""
    by_rows = max(1, n_rows // _MIN_PART_ROWS)
    by_memory = max(1, _PART_BUFFER_BYTES // (8 * n_clusters * max(n_features, 1)))
    return int(min(_MAX_PARTS, by_rows, by_memory))


@functools.cache
def _kernels() -> Any:
    """Compile (or load from Numba's on-disk cache) the kernels, on first use.

    Each kernel is serial over the rows ``[start, stop)`` of one part. Ties: a later center
    replaces the best only when strictly smaller, so the lowest index wins.
    """
    from numba import njit

    # fastmath lets LLVM vectorize the loops; the input is finite (validated). The flags are
    # fixed at compile time, so the same machine code runs every time: deterministic.
    jit = njit(fastmath=True, cache=True, nogil=True)

    @jit
    def assign_rows(X, shift, centers_m2, centers_sqnorm, label_map, weights, start, stop, block, labels, min_sqdist, store_sqdist, sums, weight_sums, inertia):
        # For cache-sized blocks of rows: center the block as it is copied in, one GEMM for
        # the scores (−2c) · x laid out center by center (centers_m2 = −2C), then the argmin
        # as a running minimum over the centers, vectorized across the block's rows (ties:
        # a later center replaces the best only when strictly smaller), and each row added
        # to its cluster's sum, all while the block and its scores are in cache. The weighted
        # squared distances are summed into inertia[0]; stored per row only if store_sqdist.
        n_features = X.shape[1]
        n_clusters = centers_m2.shape[0]
        rows = np.empty((block, n_features), dtype=X.dtype)
        scores_buffer = np.empty(n_clusters * block, dtype=X.dtype)
        best_value = np.empty(block, dtype=X.dtype)
        best = np.empty(block, dtype=np.int32)
        for lo in range(start, stop, block):
            size = min(block, stop - lo)
            for i in range(size):
                for f in range(n_features):
                    rows[i, f] = X[lo + i, f] - shift[f]
            block_rows = rows[:size]
            scores = scores_buffer[: n_clusters * size].reshape((n_clusters, size))
            np.dot(centers_m2, block_rows.T, scores)
            first = scores[0]
            sqnorm = centers_sqnorm[0]
            for i in range(size):
                best_value[i] = first[i] + sqnorm
                best[i] = 0
            for j in range(1, n_clusters):
                column = scores[j]
                sqnorm = centers_sqnorm[j]
                for i in range(size):
                    value = column[i] + sqnorm
                    if value < best_value[i]:
                        best_value[i] = value
                        best[i] = j
            for i in range(size):
                row = block_rows[i]
                x_sqnorm = X.dtype.type(0)
                for f in range(n_features):
                    x_sqnorm += row[f] * row[f]
                label = label_map[best[i]]
                labels[lo + i] = label
                sqdist = max(best_value[i] + x_sqnorm, X.dtype.type(0))
                if store_sqdist:
                    min_sqdist[lo + i] = sqdist
                w = np.float64(weights[lo + i])
                inertia[0] += w * sqdist
                weight_sums[label] += w
                total = sums[label]
                for f in range(n_features):
                    total[f] += w * row[f]

    @jit
    def seeding_rows(X, shift, columns_m2t, columns_sqnorm, n_columns, closest, weights, start, stop, block, block_rows, updated, block_sums):
        # For cache-sized blocks of rows: center the block as it is copied in, one GEMM for
        # x · (−2c) against the pending center (column 0) and the candidates (columns 1…,
        # padded to a width BLAS handles well), then per row the updated closest distance
        # and each candidate's term, summed per block of block_rows rows (start and block
        # are multiples of block_rows; block_sums' row 0 is the block at row 0 of X).
        n_features = X.shape[1]
        width = columns_m2t.shape[1]
        zero = X.dtype.type(0)
        rows = np.empty((block, n_features), dtype=X.dtype)
        scores = np.empty((block, width), dtype=X.dtype)
        x_sqnorm = np.empty(block, dtype=X.dtype)
        terms = np.empty(width, dtype=X.dtype)
        for lo in range(start, stop, block):
            size = min(block, stop - lo)
            for i in range(size):
                total = zero
                for f in range(n_features):
                    value = X[lo + i, f] - shift[f]
                    rows[i, f] = value
                    total += value * value
                x_sqnorm[i] = total
            np.dot(rows[:size], columns_m2t, scores[:size])
            for first in range(0, size, block_rows):
                # All columns at once (padding included, never read): one vector per row
                # instead of a chain of dependent additions per candidate.
                terms[:] = 0
                for i in range(first, min(size, first + block_rows)):
                    row_scores = scores[i]
                    norm = x_sqnorm[i]
                    nearest = min(closest[lo + i], max(norm + columns_sqnorm[0] + row_scores[0], zero))
                    updated[lo + i] = nearest
                    w = weights[lo + i]
                    for c in range(width):
                        terms[c] += w * min(nearest, max(norm + columns_sqnorm[c] + row_scores[c], zero))
                sums = block_sums[(lo + first) // block_rows]
                for c in range(1, n_columns):
                    sums[c - 1] += terms[c]

    @jit
    def draw_rows(X, shift, pending, closest, weights, block_sums, targets, block_rows, drawn):
        # For each target: its block by the running sum of the block sums (float64), then
        # the block's terms w · min(closest, ‖x − pending‖²) in the direct form, row by row,
        # until their running sum passes what is left of the target. Rounding can leave the
        # target at or past the block's recomputed total: then the last row with a positive
        # term (the block's first row if none).
        n_rows, n_features = X.shape
        n_blocks = block_sums.shape[0]
        cumulative = np.empty(n_blocks, dtype=np.float64)
        total = 0.0
        for b in range(n_blocks):
            total += block_sums[b]
            cumulative[b] = total
        for t in range(targets.shape[0]):
            target = np.float64(targets[t])
            b = np.searchsorted(cumulative, target, side="right")
            b = min(b, n_blocks - 1)
            residual = max(target - (cumulative[b] - block_sums[b]), 0.0)
            start = b * block_rows
            chosen, last_positive, running = -1, start, 0.0
            for i in range(start, min(n_rows, start + block_rows)):
                sqdist = X.dtype.type(0)
                for f in range(n_features):
                    diff = X[i, f] - shift[f] - pending[f]
                    sqdist += diff * diff
                term = np.float64(weights[i]) * min(closest[i], sqdist)
                if term > 0:
                    last_positive = i
                running += term
                if running > residual:
                    chosen = i
                    break
            drawn[t] = chosen if chosen >= 0 else last_positive

    @jit
    def assigned_rows(X, shift, centers, labels, start, stop, sqdist):
        # sqdist_i = ‖(x_i − shift) − c_label‖², the direct form.
        for i in range(start, stop):
            center = centers[labels[i]]
            total = X.dtype.type(0)
            for f in range(X.shape[1]):
                diff = X[i, f] - shift[f] - center[f]
                total += diff * diff
            sqdist[i] = total

    return assign_rows, seeding_rows, assigned_rows, draw_rows


class NumbaDistance(DistanceBackend):
    """Fused assignment + M-step sums (with its own reduction), parallel and deterministic.

    ``pairwise`` is the NumPy backend's; the fused Lloyd pass and the k-means++ steps are
    where the time goes, and those are compiled.
    """

    name = "numba"
    priority = 20

    def supports(self, xp: Any, device: Any) -> bool:
        return _is_numpy(xp) and numba_installed()

    def preferred_chunk_rows(self, n_features: int, n_columns: int, itemsize: int) -> None:
        # As many rows as working_memory allows: the passes copy nothing per chunk (blocks
        # are copied part by part), and each chunk costs a thread hand-off.
        return None

    def nearest(self, X: Any, centers: Any, *, xp: Any) -> tuple[Any, Any]:
        return self.nearest_shifted(X, centers, xp=xp)

    def nearest_shifted(self, X: Any, centers: Any, *, xp: Any, shift: Any = None) -> tuple[Any, Any]:
        weights = np.zeros(X.shape[0], dtype=X.dtype)
        label_map = np.arange(centers.shape[0], dtype=np.int32)
        labels, min_sqdist, _, _, _ = self._assign(X, shift, centers, weights, label_map, store_sqdist=True)
        return labels, min_sqdist

    def pairwise(self, X: Any, centers: Any, *, xp: Any) -> Any:
        return _numpy_backend.distance.pairwise(X, centers, xp=xp)

    def nearest_and_sum(
        self, X: Any, centers: Any, weights: Any, label_map: Any, reduction: ReductionBackend,
        *, xp: Any, shift: Any = None,
    ) -> tuple[Any, Any, Any, Any]:
        if reduction.name != self.name:
            return super().nearest_and_sum(
                X, centers, weights, label_map, reduction, xp=xp, shift=shift
            )
        labels, _, sums, weight_sums, inertia = self._assign(
            X, shift, centers, weights, label_map, store_sqdist=False
        )
        return labels, X.dtype.type(inertia), sums.astype(X.dtype), weight_sums.astype(X.dtype)

    def _assign(
        self, X: np.ndarray, shift: Any, centers: np.ndarray, weights: np.ndarray,
        label_map: np.ndarray, *, store_sqdist: bool,
    ):
        """Labels, min squared distances (if ``store_sqdist``; else an unfilled array), float64
        weighted sums of the rows ``X - shift``, their weight sums and the weighted inertia."""
        assign_rows, _, _, _ = _kernels()
        n_rows, n_features = X.shape
        n_clusters = centers.shape[0]
        n_parts = _n_parts(n_rows, n_clusters, n_features)
        labels = np.empty(n_rows, dtype=np.int32)
        min_sqdist = np.empty(n_rows if store_sqdist else 0, dtype=X.dtype)
        sums = np.zeros((n_parts, n_clusters, n_features), dtype=np.float64)
        weight_sums = np.zeros((n_parts, n_clusters), dtype=np.float64)
        inertia = np.zeros((n_parts, 1), dtype=np.float64)
        args = (
            np.ascontiguousarray(X), _shift_or_zero(shift, n_features, X.dtype),
            np.ascontiguousarray(-2 * centers), _numpy_backend._sqnorm(centers),
            np.ascontiguousarray(label_map, dtype=np.int32), np.ascontiguousarray(weights, dtype=X.dtype),
        )
        block = max(_MIN_BLOCK_ROWS, _BLOCK_BYTES // (X.itemsize * (n_clusters + n_features)))

        def run_part(part: int, start: int, stop: int) -> None:
            assign_rows(
                *args, start, stop, block, labels, min_sqdist, store_sqdist,
                sums[part], weight_sums[part], inertia[part],
            )

        with _one_blas_thread():
            _run_parts(n_rows, n_parts, run_part)
        # Parts are added in a fixed order.
        return labels, min_sqdist, sums.sum(axis=0), weight_sums.sum(axis=0), float(inertia.sum())

    def seeding_pass(
        self, X: Any, candidates: Any, pending: Any, closest: Any, weights: Any, *,
        xp: Any, shift: Any = None, block_rows: int,
    ) -> tuple[Any, Any]:
        _, seeding_rows, _, _ = _kernels()
        n_rows, n_features = X.shape
        columns = np.concatenate([pending, candidates], axis=0)
        n_columns = columns.shape[0]
        # BLAS is about twice as fast on 8 columns as on 7: pad to a multiple of 8.
        width = -(-n_columns // _SEEDING_WIDTH) * _SEEDING_WIDTH
        columns_m2t = np.zeros((n_features, width), dtype=X.dtype)
        columns_m2t[:, :n_columns] = -2 * columns.T
        columns_sqnorm = np.zeros(width, dtype=X.dtype)
        columns_sqnorm[:n_columns] = _numpy_backend._sqnorm(columns)
        updated = np.empty(n_rows, dtype=X.dtype)
        block_sums = np.zeros((-(-n_rows // block_rows), n_columns - 1), dtype=np.float64)
        block = max(1, _BLOCK_BYTES // (X.itemsize * (width + n_features)) // block_rows) * block_rows
        args = (
            np.ascontiguousarray(X), _shift_or_zero(shift, n_features, X.dtype), columns_m2t,
            columns_sqnorm, n_columns, np.ascontiguousarray(closest),
            np.ascontiguousarray(weights, dtype=X.dtype),
        )

        def run_part(part: int, start: int, stop: int) -> None:
            seeding_rows(*args, start, stop, block, block_rows, updated, block_sums)

        with _one_blas_thread():
            _run_parts(n_rows, _n_parts(n_rows, 1, 1), run_part, align=block_rows)
        return updated, block_sums.astype(X.dtype)

    def seeding_draw(
        self, X: Any, weights: Any, closest: Any, pending: Any, block_sums: Any, targets: Any, *,
        xp: Any, shift: Any = None, block_rows: int,
    ) -> Any:
        # A few hundred rows at most: one serial compiled call, no thread hand-off.
        *_, draw_rows = _kernels()
        drawn = np.empty(targets.shape[0], dtype=np.int64)
        draw_rows(
            np.ascontiguousarray(X), _shift_or_zero(shift, X.shape[1], X.dtype),
            np.ascontiguousarray(pending[0], dtype=X.dtype), np.ascontiguousarray(closest),
            np.ascontiguousarray(weights, dtype=X.dtype), np.ascontiguousarray(block_sums),
            np.ascontiguousarray(targets), block_rows, drawn,
        )
        return drawn

    def sqdist_to_assigned(self, X: Any, centers: Any, labels: Any, *, xp: Any, shift: Any = None) -> Any:
        _, _, assigned_rows, _ = _kernels()
        n_rows, n_features = X.shape
        sqdist = np.empty(n_rows, dtype=X.dtype)
        args = (
            np.ascontiguousarray(X), _shift_or_zero(shift, n_features, X.dtype),
            np.ascontiguousarray(centers, dtype=X.dtype), np.ascontiguousarray(labels),
        )
        _run_parts(n_rows, _n_parts(n_rows, 1, 1), lambda part, start, stop: assigned_rows(*args, start, stop, sqdist))
        return sqdist


def _shift_or_zero(shift: Any, n_features: int, dtype: Any) -> np.ndarray:
    return np.zeros(n_features, dtype=dtype) if shift is None else np.ascontiguousarray(shift)


class NumbaReduction(ReductionBackend):
    """The reduction half of the fused pass: inside a Lloyd pass the distance backend sums
    the rows itself; on its own (the empty-cluster repair) it is the NumPy reduction."""

    name = "numba"
    priority = 20

    def supports(self, xp: Any, device: Any) -> bool:
        return _is_numpy(xp) and numba_installed()

    def segment_sum(
        self, X: Any, labels: Any, weights: Any, n_clusters: int, *, xp: Any
    ) -> tuple[Any, Any]:
        return _numpy_backend.reduction.segment_sum(X, labels, weights, n_clusters, xp=xp)


distance = NumbaDistance()
reduction = NumbaReduction()
