"""One run of Lloyd's algorithm from given initial centers, as scikit-learn runs it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from ._engine import Engine
from ._namespace import materialize


class LloydResult(NamedTuple):
    labels: Any
    inertia: float
    centers: Any
    n_iter: int


def relocate_empty_clusters(
    X: Any, weights: Any, centers: Any, labels: Any, sums: Any, weight_sums: Any, engine: Engine
) -> tuple[Any, Any, int]:
    """Move each empty cluster to one of the points farthest from their centers.

    As in scikit-learn: the farthest point (exact distance to the center it is assigned to)
    goes to the lowest-index empty cluster, the next one to the next, and so on; each point
    is taken out of its old cluster's sums. Labels are left as they are. Returns the new
    ``(sums, weight_sums)`` and the number of clusters that were empty.
    """
    xp, n_clusters = engine.xp, centers.shape[0]
    empty = weight_sums == 0
    n_empty = int(xp.sum(xp.astype(empty, xp.int32)))
    if n_empty == 0:
        return sums, weight_sums, 0
    sqdist = engine.sqdist_to_assigned(X, centers, labels)
    farthest = xp.argsort(sqdist, descending=True, stable=True)[:n_empty]
    # Stable sort of "is not empty" puts the empty cluster ids first, in increasing order.
    empty_ids = xp.argsort(xp.astype(~empty, xp.int8), stable=True)[:n_empty]
    empty_ids = xp.astype(empty_ids, labels.dtype)
    moved, moved_weights = engine.take_rows(X, farthest), xp.take(weights, farthest)
    removed, removed_weights = engine.reduction.segment_sum(
        moved, xp.take(labels, farthest), moved_weights, n_clusters, xp=xp
    )
    added, added_weights = engine.reduction.segment_sum(
        moved, empty_ids, moved_weights, n_clusters, xp=xp
    )
    return sums - removed + added, weight_sums - removed_weights + added_weights, n_empty


def lloyd(
    X: Any,
    weights: Any,
    centers: Any,
    *,
    engine: Engine,
    max_iter: int,
    tol: float,
    verbose: bool = False,
    on_iteration: Callable[[int, float], None] | None = None,
) -> LloydResult:
    """Lloyd iterations until labels stop changing, the squared center shift is ``<= tol``,
    or ``max_iter``; then a final assignment so that labels match the returned centers.

    ``on_iteration(i, inertia)`` is called after each E-step with the inertia of the centers
    the step assigned to (this is also what ``verbose`` prints).
    """
    xp = engine.xp
    labels_old = None
    strict_convergence = False
    for i in range(max_iter):
        labels, sums, weight_sums, inertia = materialize(
            xp, *engine.lloyd_pass(X, weights, centers)
        )
        if verbose or on_iteration is not None:
            inertia_value = float(inertia)
            if verbose:
                print(f"Iteration {i}, inertia {inertia_value}.")
            if on_iteration is not None:
                on_iteration(i, inertia_value)
        sums, weight_sums, n_relocated = relocate_empty_clusters(
            X, weights, centers, labels, sums, weight_sums, engine
        )
        # A cluster left with zero weight (all its points weigh 0) keeps its zero sum.
        divisor = xp.where(weight_sums > 0, weight_sums, xp.ones_like(weight_sums))
        new_centers = sums / divisor[:, None]
        shift = new_centers - centers
        center_shift = float(xp.sum(shift * shift))
        (centers,) = materialize(xp, new_centers)

        if labels_old is not None and bool(xp.all(labels == labels_old)):
            if verbose:
                print(f"Converged at iteration {i}: strict convergence.")
            strict_convergence = True
            break
        if center_shift <= tol:
            if verbose:
                print(
                    f"Converged at iteration {i}: center shift {center_shift} within "
                    f"tolerance {tol}."
                )
            break
        labels_old = labels

    # A relocation in the last iteration moved centers without relabelling: the labels can
    # be unchanged (points of zero weight were moved) while the centers are not.
    if not strict_convergence or n_relocated:
        labels, _ = engine.nearest(X, centers)
    return LloydResult(labels, engine.inertia(X, weights, centers, labels), centers, i + 1)
