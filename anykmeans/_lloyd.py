"""Lloyd's algorithm from given initial centers, as scikit-learn runs it: the iterations and
convergence, empty-cluster repair, the equal-centers rule, tolerance scaling and inertia; and
Elkan's bounds, which skip distances that cannot change a label (the same results)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from ._arrays import as_working, is_half, working_dtype
from ._metric import COSINE_PER_SQUARED_DISTANCE, renormalized
from ._passes import Plan
from ._transfers import materialize, to_host_numpy
from ._typing import Array, Namespace


class LloydResult(NamedTuple):
    labels: Array
    inertia: float
    centers: Array
    n_iter: int


# ---------------------------------------------------------------- equal centers


@functools.cache
def _column_weights(n_features: int) -> np.ndarray:
    """Fixed weights in [1, 2) for the per-center keys of ``equal_center_map``."""
    return np.random.default_rng(0).uniform(1.0, 2.0, size=n_features)


def equal_center_map(centers: Array, /, *, xp: Namespace) -> Array | None:
    """For each center the lowest index of a center equal to it (int32), or ``None`` when no
    two centers are equal.

    Equal centers must tie and the lowest index must win, but a matmul rounds a column by its
    position, so the kernels may score equal centers differently; the labels and sums of a
    pass are mapped through this. Usually no two centers are equal and one key per center
    shows it (:func:`keys_repeat`, whose value Lloyd's loop reads with its other per-iteration
    numbers); only when two keys are equal does a lexicographic sort find the equal rows:
    O(d · k log k), no k × k block.
    """
    device = _device(centers)
    n_centers = centers.shape[0]
    if not bool(keys_repeat(centers, xp=xp)):
        return None
    # Stable sorts from the last column to the first: a lexicographic order in which equal
    # rows are adjacent and keep increasing indices.
    order = xp.arange(n_centers, device=device)
    for j in range(centers.shape[1] - 1, -1, -1):
        order = xp.take(order, xp.argsort(xp.take(centers[:, j], order), stable=True))
    rows = xp.take(centers, order, axis=0)
    new_group = xp.concat(
        [xp.ones((1,), dtype=xp.bool, device=device), xp.any(rows[1:, :] != rows[:-1, :], axis=1)]
    )
    group = xp.cumulative_sum(xp.astype(new_group, xp.int64))
    # The first sorted position of each row's group holds the group's lowest index.
    first_in_sorted_order = xp.take(order, xp.searchsorted(group, group, side="left"))
    return xp.astype(xp.take(first_in_sorted_order, xp.argsort(order)), xp.int32)


def keys_repeat(centers: Array, /, *, xp: Namespace) -> Array:
    """0-d bool: whether two centers share the key that :func:`equal_center_map` checks first
    (false: no two centers are equal). An array, so that the caller chooses when to read it."""
    column_weights = xp.asarray(_column_weights(centers.shape[1]), dtype=centers.dtype, device=_device(centers))
    keys = xp.sort(xp.sum(centers * column_weights, axis=1))
    return xp.any(keys[1:] == keys[:-1])


def merge_equal_centers(
    first: Array, labels: Array, sums: Array, weight_sums: Array, /, *, xp: Namespace
) -> tuple[Array, Array, Array]:
    """Labels and sums as if equal centers had tied: each row goes to the lowest index of its
    center's equals (``first``, from :func:`equal_center_map`), whose sums take in the
    others'; the others are left empty. k × k × d work at most, no pass over the rows."""
    ids = xp.arange(first.shape[0], dtype=first.dtype, device=_device(first))
    to_first = xp.astype(ids[:, None] == first[None, :], sums.dtype)  # [i, j]: j's sums go to i
    return xp.take(first, labels), to_first @ sums, to_first @ weight_sums


def assign_labels(X: Array, centers: Array, /, *, plan: Plan) -> Array:
    """Labels of the nearest centers, equal centers tied to the lowest index."""
    labels, _ = plan.assign(X, centers)
    first = equal_center_map(centers, xp=plan.xp)
    return labels if first is None else plan.xp.take(first, labels)


# ---------------------------------------------------------------- statistics


def column_means(X: Array, /, *, plan: Plan) -> Array:
    """The mean of each column, in X's working dtype: of float16 / bfloat16 X, summed in
    float32 chunk by chunk (no float32 copy of X)."""
    xp = plan.xp
    if not is_half(X.dtype):
        return xp.mean(X, axis=0)
    total = None
    for rows in plan.chunks(X.shape[0], half=True):
        part = xp.sum(as_working(X[rows, ...], xp=xp), axis=0)
        total = part if total is None else total + part
    return total / X.shape[0]


def mean_variance(X: Array, /, *, plan: Plan) -> float:
    """Mean over the features of the rows' variance about the plan's shift, as a float: with
    the shift at the column means, ``mean(var(X, axis=0))`` without a centered copy of X.
    scikit-learn's ``tol`` is relative to it."""
    xp = plan.xp
    # Squared distances to a zero center: kernels that read rows centered make no copy.
    origin = xp.zeros((1, X.shape[1]), dtype=working_dtype(X), device=plan.device)
    labels = xp.zeros(X.shape[0], dtype=xp.int32, device=plan.device)
    return float(xp.sum(plan.sqdist_to_assigned(X, labels, origin))) / (X.shape[0] * X.shape[1])


def labels_and_inertia(
    X: Array, weights: Array, centers: Array, /, *, plan: Plan, spherical: bool = False
) -> tuple[Array, float]:
    """:func:`assign_labels` and :func:`inertia` of those labels, from one pass over X (the
    labels evaluated once, for lazy input)."""
    labels, total = plan.assign_with_inertia(X, weights, centers)
    # Equal centers are at equal distances: mapping their labels leaves the inertia as it is.
    first = equal_center_map(centers, xp=plan.xp)
    if first is not None:
        labels = plan.xp.take(first, labels)
    (labels,) = materialize(labels, xp=plan.xp)
    return labels, float(total) * (COSINE_PER_SQUARED_DISTANCE if spherical else 1.0)


def inertia(
    X: Array, weights: Array, labels: Array, centers: Array, /, *, plan: Plan, spherical: bool = False
) -> float:
    """Exact weighted inertia (direct-form distances) as a Python float; with ``spherical``
    (unit rows and centers) the sum of the cosine distances."""
    total = float(plan.xp.sum(weights * plan.sqdist_to_assigned(X, labels, centers)))
    return total * COSINE_PER_SQUARED_DISTANCE if spherical else total


# ---------------------------------------------------------------- the iterations


def relocate_empty_clusters(
    X: Array, weights: Array, labels: Array, centers: Array, sums: Array, weight_sums: Array, /, *, plan: Plan
) -> tuple[Array, Array, int]:
    """Move each empty cluster to one of the points farthest from their centers.

    As in scikit-learn: the farthest point (exact distance to the center it is assigned to)
    goes to the lowest-index empty cluster, the next one to the next, and so on; each point
    is taken out of its old cluster's sums. Labels are left as they are. Returns the new
    ``(sums, weight_sums)`` and the number of clusters that were empty.
    """
    xp, n_clusters = plan.xp, centers.shape[0]
    empty = weight_sums == 0
    n_empty = int(xp.sum(xp.astype(empty, xp.int32)))
    if n_empty == 0:
        return sums, weight_sums, 0
    sqdist = plan.sqdist_to_assigned(X, labels, centers)
    farthest = xp.argsort(sqdist, descending=True, stable=True)[:n_empty]
    # Stable sort of "is not empty" puts the empty cluster ids first, in increasing order.
    empty_ids = xp.astype(xp.argsort(xp.astype(~empty, xp.int8), stable=True)[:n_empty], labels.dtype)
    moved, moved_weights = xp.take(X, farthest, axis=0), xp.take(weights, farthest)
    removed, removed_weights = plan.segment_sum(moved, moved_weights, xp.take(labels, farthest), n_clusters)
    added, added_weights = plan.segment_sum(moved, moved_weights, empty_ids, n_clusters)
    return sums - removed + added, weight_sums - removed_weights + added_weights, n_empty


class ElkanBounds:
    """Elkan's bounds, carried from one Lloyd iteration to the next.

    :meth:`assign_and_sum` gives what ``Plan.assign_and_sum`` gives (the inertia in the
    direct form; with ``previous``, the count of changed labels too), measuring for the labels only the distances the bounds cannot rule out. Memory: one bound per row and center (``n × k`` in X's dtype), as in scikit-learn.
    ``pays`` turns false after a pass that cost more than a Lloyd pass would have (the
    kernels' estimate): on overlapping clusters the bounds rule out too little.
    """

    def __init__(self, X: Array, weights: Array, /, *, plan: Plan) -> None:
        self.X, self.weights, self.plan = X, weights, plan
        self.pays = True
        self._state: tuple[Array, Array, Array, Array, Array] | None = None

    def assign_and_sum(self, centers: Array, *, previous: Array | None = None) -> tuple[Array, ...]:
        xp, device, dtype = self.plan.xp, self.plan.device, working_dtype(self.X)
        (n_rows, n_features), n_clusters = self.X.shape, centers.shape[0]
        initial = self._state is None
        if initial:
            labels = xp.zeros(n_rows, dtype=xp.int32, device=device)
            upper = xp.empty(n_rows, dtype=dtype, device=device)
            lower = xp.empty((n_rows, n_clusters), dtype=dtype, device=device)
            drift = xp.zeros(n_clusters, dtype=dtype, device=device)
        else:
            labels, upper, lower, last_centers, drift = self._state
            drift = drift + xp.sqrt(xp.sum((centers - last_centers) ** 2, axis=1))
        labels, upper, lower, sums, weight_sums, inertia, measured, examined, *changed = self.plan.elkan_pass(
            self.X, self.weights, labels, upper, lower, centers, drift, initial=initial, previous=previous
        )
        self._state = labels, upper, lower, centers, drift
        if not initial:
            cost = self.plan.kernels.elkan_relative_cost(n_rows, n_features, n_clusters, measured, examined)
            self.pays = cost <= 1
        return labels, inertia, sums, weight_sums, *changed


def lloyd(
    X: Array, weights: Array, centers: Array, /, *,
    plan: Plan, max_iter: int, tol: float, verbose: bool = False,
    on_iteration: Callable[[int, float], None] | None = None, elkan: bool = False, spherical: bool = False,
) -> LloydResult:
    """Lloyd iterations until labels stop changing, the squared center shift is ``<= tol``,
    or ``max_iter``; then a final assignment so that labels match the returned centers.

    ``on_iteration(i, inertia)`` is called after each E-step with the inertia of the centers
    the step assigned to (this is also what ``verbose`` prints).

    ``elkan`` uses Elkan's bounds where the kernels say they pay (``Kernels.elkan_pays``),
    until a pass costs more than a Lloyd pass would have; elsewhere it changes nothing. The
    results are Lloyd's either way.

    ``spherical``: X's rows and the centers are unit vectors, and each update puts the
    centers back on the sphere (spherical k-means); inertias are sums of cosine distances.
    """
    xp = plan.xp
    use_bounds = elkan and plan.kernels.elkan_pays(X.shape[1], centers.shape[0])
    bounds = ElkanBounds(X, weights, plan=plan) if use_bounds else None
    labels_old = None
    strict_convergence = False
    repeated_keys = bool(keys_repeat(centers, xp=xp))
    for i in range(max_iter):
        # With the previous labels, the pass also counts the labels that changed.
        if bounds is None:
            labels, pass_inertia, sums, weight_sums, *changed = plan.assign_and_sum(
                X, weights, centers, previous=labels_old
            )
        else:
            labels, pass_inertia, sums, weight_sums, *changed = bounds.assign_and_sum(centers, previous=labels_old)
            if not bounds.pays:
                bounds = None  # Lloyd's passes from the next iteration on, the same results
        first = equal_center_map(centers, xp=xp) if repeated_keys else None
        if first is not None:
            labels, sums, weight_sums = merge_equal_centers(first, labels, sums, weight_sums, xp=xp)
            if changed:
                changed = [xp.sum(xp.astype(labels != labels_old, working_dtype(X)))]
            # The pass's own outputs are evaluated already (a lazy runner persists them).
            labels, sums, weight_sums, *changed = materialize(labels, sums, weight_sums, *changed, xp=xp)
        new_centers = _updated_centers(sums, weight_sums, centers, spherical=spherical, xp=xp)
        center_shift = xp.sum((new_centers - centers) ** 2)
        # The iteration's one read from the device: the numbers the loop decides on.
        value, shift_value, n_empty, n_changed, repeated = _read_values(
            pass_inertia, center_shift, xp.sum(xp.astype(weight_sums == 0, xp.int32)),
            changed[0] if changed else None, keys_repeat(new_centers, xp=xp), xp=xp,
        )
        if verbose or on_iteration is not None:
            value *= COSINE_PER_SQUARED_DISTANCE if spherical else 1.0
            if verbose:
                print(f"Iteration {i}, inertia {value}.")
            if on_iteration is not None:
                on_iteration(i, value)
        n_relocated = 0
        if n_empty:
            sums, weight_sums, n_relocated = relocate_empty_clusters(
                X, weights, labels, centers, sums, weight_sums, plan=plan
            )
            new_centers = _updated_centers(sums, weight_sums, centers, spherical=spherical, xp=xp)
            shift_value = float(xp.sum((new_centers - centers) ** 2))
            repeated = bool(keys_repeat(new_centers, xp=xp))
        (centers,) = materialize(new_centers, xp=xp)
        repeated_keys = bool(repeated)

        if labels_old is not None and n_changed == 0:
            if verbose:
                print(f"Converged at iteration {i}: strict convergence.")
            strict_convergence = True
            break
        if shift_value <= tol:
            if verbose:
                print(f"Converged at iteration {i}: center shift {shift_value} within tolerance {tol}.")
            break
        labels_old = labels

    # A relocation in the last iteration moved centers without relabelling: the labels can
    # be unchanged (points of zero weight were moved) while the centers are not.
    if not strict_convergence or n_relocated:
        labels, final_inertia = labels_and_inertia(X, weights, centers, plan=plan, spherical=spherical)
    else:
        final_inertia = inertia(X, weights, labels, centers, plan=plan, spherical=spherical)
    return LloydResult(labels, final_inertia, centers, i + 1)


def _updated_centers(sums: Array, weight_sums: Array, centers: Array, /, *, spherical: bool, xp: Namespace) -> Array:
    """The weighted means of the clusters; a cluster left with zero weight (all its points
    weigh 0) keeps its zero sum. With ``spherical``, put back on the sphere."""
    divisor = xp.where(weight_sums > 0, weight_sums, xp.ones_like(weight_sums))
    new_centers = sums / divisor[:, None]
    return renormalized(new_centers, centers, xp=xp) if spherical else new_centers


def _read_values(
    inertia: Array, center_shift: Array, n_empty: Array, n_changed: Array | None, repeated: Array, /, *,
    xp: Namespace,
) -> tuple[float, float, int, int | None, bool]:
    """The 0-d results of an iteration read from the device in one transfer: the inertia
    and the center shift exactly (in the data's dtype, which the others are stacked in: of
    the counts only zero or not matters, and a float32 count of up to 2**24 is exact)."""
    dtype, device = center_shift.dtype, _device(center_shift)
    values = [inertia, center_shift, n_empty, n_changed if n_changed is not None else n_empty, repeated]
    # Kernels may give a 0-d sum as a host scalar: it joins the others where they are.
    values = [xp.asarray(v, dtype=dtype, device=device) if isinstance(v, (float, int, np.generic)) else v for v in values]
    host = to_host_numpy(xp.stack([xp.astype(xp.reshape(v, ()), dtype) for v in values]))
    value, shift, empty, changed, repeat = (float(v) for v in host)
    return value, shift, int(empty), None if n_changed is None else int(changed), bool(repeat)


def _device(x: Array) -> object:
    from array_api_compat import device

    return device(x)
