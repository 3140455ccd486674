"""The Numba backend's compiled kernels; imported (and compiled, or loaded from Numba's
on-disk cache) on first use, so that importing anykmeans never imports Numba.

Each kernel is serial over the rows ``[start, stop)`` of one part; ``anykmeans.backends.numba``
runs the parts in threads. Ties: a later center replaces the best only when strictly smaller,
so the lowest index wins.
"""

import os

import numpy as np
from numba import njit

from .numba import kernel_cache_dir

try:
    from numba.core.caching import (
        CompileResultCacheImpl,
        FunctionCache,
        UserProvidedCacheLocator,
        UserWideCacheLocator,
    )
except ImportError:  # a Numba without these names: its own cache places (beside this file)
    FunctionCache = None
else:

    class _UserCacheLocator(UserWideCacheLocator):
        """The cache in anykmeans' folder of the user's cache directory, never beside the
        installed package (where uninstalling would leave the files behind)."""

        def __init__(self, py_func, py_file):
            super().__init__(py_func, py_file)
            self._cache_path = os.path.join(kernel_cache_dir(), self.get_suitable_cache_subpath(py_file))

    class _CacheImpl(CompileResultCacheImpl):
        # NUMBA_CACHE_DIR, when the user sets it, still wins.
        _locator_classes = [UserProvidedCacheLocator, _UserCacheLocator]

    class _Cache(FunctionCache):
        _impl_class = _CacheImpl


def _jit(function):
    # fastmath lets LLVM vectorize the loops; the input is finite (validated). The flags are
    # fixed at compile time, so the same machine code runs every time: deterministic.
    if FunctionCache is None:
        return njit(fastmath=True, cache=True, nogil=True)(function)
    dispatcher = njit(fastmath=True, nogil=True)(function)
    dispatcher._cache = _Cache(dispatcher.py_func)  # what cache=True does, with our locator
    return dispatcher


@_jit
def assign_rows(X, shift, centers_m2, centers_sqnorm, weights, start, stop, block, labels, min_sqdist, store_sqdist, sums, weight_sums, inertia):
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
            label = best[i]
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


@_jit
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


@_jit
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
    # A target at or past the total (rounding) belongs to the last block with a positive sum.
    last_block = 0
    for b in range(n_blocks):
        if block_sums[b] > 0:
            last_block = b
    for t in range(targets.shape[0]):
        target = np.float64(targets[t])
        b = np.searchsorted(cumulative, target, side="right")
        b = min(b, last_block)
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


@_jit
def assigned_rows(X, shift, centers, labels, start, stop, sqdist):
    # sqdist_i = ‖(x_i − shift) − c_label‖², the direct form.
    for i in range(start, stop):
        center = centers[labels[i]]
        total = X.dtype.type(0)
        for f in range(X.shape[1]):
            diff = X[i, f] - shift[f] - center[f]
            total += diff * diff
        sqdist[i] = total


@_jit
def _distance(row, center):
    total = row.dtype.type(0)
    for f in range(row.shape[0]):
        diff = row[f] - center[f]
        total += diff * diff
    return np.sqrt(total)


@_jit
def center_bounds(centers, half_distances, next_half):
    # half_distances[a, b] = ‖c_a − c_b‖ / 2 in the direct form; next_half[a] the smallest
    # of them over b ≠ a (infinite for a single center).
    n_clusters = centers.shape[0]
    for a in range(n_clusters):
        half_distances[a, a] = 0
        next_half[a] = np.inf
    for a in range(n_clusters):
        for b in range(a + 1, n_clusters):
            half = _distance(centers[a], centers[b]) / 2
            half_distances[a, b] = half
            half_distances[b, a] = half
            next_half[a] = min(next_half[a], half)
            next_half[b] = min(next_half[b], half)


@_jit
def elkan_start_rows(X, shift, centers, centers_m2t, centers_sqnorm, centers_norm, margin, drift, weights, start, stop, block, labels, upper, lower, sums, weight_sums, inertia):
    # The first pass with Elkan's bounds, at about the speed of a Lloyd pass: per cache-sized
    # block, one GEMM gives the scores x · (−2c), row by row (the layout of the bounds),
    # and so each row's label
    # (ties: the lowest index) and a lower bound on every distance. The expanded form's
    # rounding is at most margin · (‖x‖ + ‖c‖)² (margin = 2·(d + 4)·u: twice the worst case
    # of any summation order), so sqrt(max(‖x‖² + ‖c‖² − 2x·c − that, 0)) is never above
    # the true distance. The upper bound is the direct-form distance to the label. Bounds
    # are stored against the drift, as in elkan_rows; rows are added to the sums and their
    # squared distances to inertia[0].
    n_features = X.shape[1]
    n_clusters = centers_m2t.shape[1]
    zero = X.dtype.type(0)
    rows = np.empty((block, n_features), dtype=X.dtype)
    scores = np.empty((block, n_clusters), dtype=X.dtype)
    for lo in range(start, stop, block):
        size = min(block, stop - lo)
        for i in range(size):
            for f in range(n_features):
                rows[i, f] = X[lo + i, f] - shift[f]
        block_rows = rows[:size]
        np.dot(block_rows, centers_m2t, scores[:size])
        for i in range(size):
            row = block_rows[i]
            row_scores = scores[i]
            x_sqnorm = zero
            for f in range(n_features):
                x_sqnorm += row[f] * row[f]
            x_norm = np.sqrt(x_sqnorm)
            label = 0
            best_value = row_scores[0] + centers_sqnorm[0]
            for j in range(1, n_clusters):
                value = row_scores[j] + centers_sqnorm[j]
                if value < best_value:
                    best_value = value
                    label = j
            bounds = lower[lo + i]
            for j in range(n_clusters):
                slack = x_norm + centers_norm[j]
                value = row_scores[j] + centers_sqnorm[j] + x_sqnorm - margin * slack * slack
                bounds[j] = np.sqrt(max(value, zero)) + drift[j]
            u = _distance(row, centers[label])
            upper[lo + i] = u - drift[label]
            labels[lo + i] = label
            w = np.float64(weights[lo + i])
            inertia[0] += w * np.float64(u) * np.float64(u)
            weight_sums[label] += w
            total = sums[label]
            for f in range(n_features):
                total[f] += w * row[f]


@_jit
def elkan_rows(X, shift, centers, half_distances, nearest, next_half, drift, weights, labels_in, start, stop, labels, upper, lower, sums, weight_sums, inertia, counts):
    # Elkan's bounds, stored against the centers' drift (the total distance each center has
    # moved): upper[i] + drift[label] ≥ ‖x_i − c_label‖ and lower[i, j] − drift[j] ≤
    # ‖x_i − c_j‖, so that moving centers loosens every bound without writing any. A center
    # j is measured only when neither bound rules it out: u > lower[i, j] − drift[j] and
    # u > ‖c_label − c_j‖ / 2 (else c_j cannot be nearer, by the triangle inequality); a
    # row whose u is within half the distance from its label to the nearest other center
    # reads no bounds at all. Distances are direct-form. Each row is then added to its
    # cluster's sums, its squared distance (exact: measured if the bounds did not) to
    # inertia[0]. counts[0] gets the bounds examined, counts[1] the distances measured for
    # the bounds (not those for the inertia).
    n_features = X.shape[1]
    n_clusters = centers.shape[0]
    row = np.empty(n_features, dtype=X.dtype)
    examined = 0
    measured = 0
    for i in range(start, stop):
        for f in range(n_features):
            row[f] = X[i, f] - shift[f]
        bounds = lower[i]
        label = labels_in[i]
        u = upper[i] + drift[label]
        tight = False
        if next_half[label] < u:
            # The other centers nearest to the row's label first (nearest[label]): once
            # one is at least 2·u_label from the label, all the rest are, and none of
            # them can be nearer than the label (triangle inequality).
            first = label
            u_first = u
            for rank in range(n_clusters):
                j = nearest[first, rank]
                if u_first <= half_distances[first, j]:
                    break
                examined += 1
                if j == first or j == label:
                    continue
                if u <= half_distances[label, j] or u <= bounds[j] - drift[j]:
                    continue
                if not tight:
                    u = _distance(row, centers[label])
                    bounds[label] = u + drift[label]
                    measured += 1
                    u_first = u
                    tight = True
                    if u_first <= half_distances[first, j]:
                        break
                    if u <= half_distances[label, j] or u <= bounds[j] - drift[j]:
                        continue
                d = _distance(row, centers[j])
                bounds[j] = d + drift[j]
                measured += 1
                if d < u:
                    u = d
                    label = j
        if not tight:
            # The exact distance for the inertia; it also tightens the bound for free.
            u = _distance(row, centers[label])
        upper[i] = u - drift[label]
        labels[i] = label
        w = np.float64(weights[i])
        inertia[0] += w * np.float64(u) * np.float64(u)
        weight_sums[label] += w
        total = sums[label]
        for f in range(n_features):
            total[f] += w * row[f]
    counts[0] += examined
    counts[1] += measured
