"""k-means|| initialisation (Bahmani, Moseley, Vattani, Kumar & Vassilvitskii, 2012, "Scalable
K-Means++").

Greedy k-means++ needs one pass over the data per center. k-means|| samples many candidates
per pass instead, then picks the ``k`` centers among the candidates, which are few:

1. A first center is drawn with probability ∝ weight; one pass gives every row its squared
   distance ``D²`` to it.
2. Each of ``n_rounds`` rounds keeps every row independently with probability
   ``min(1, ℓ · w_i · D²_i / φ)``, where ``ℓ = oversampling_factor · n_clusters`` and
   ``φ = Σ w · D²`` (about ``ℓ`` new candidates per round). One pass over the data measures
   the distances to the new candidates only: ``D²`` becomes the minimum of the old and the
   new distance, and each row remembers which candidate is nearest to it so far.
3. Each candidate is weighted by the total sample weight of the rows nearest to it. The rows
   already know their nearest candidate after the last round's pass, so the sums read only
   the per-row labels and weights, not the data.
4. Weighted greedy k-means++ on the candidates (a few thousand rows even for large ``k``)
   chooses the ``n_clusters`` centers.

Passes over the data: ``1 + n_rounds`` (fewer when a round samples nothing). The default
``n_rounds`` is :data:`DEFAULT_N_ROUNDS` = 5, Bahmani et al.'s recommendation (with
``ℓ = 2k``, the seeds are then about as good as k-means++'s), which makes 6 passes whatever
``n_clusters`` is, where greedy k-means++ makes ``n_clusters``.

All random numbers come from the host generator, in a fixed order, and are compared with the
data's values on the data's device: the same seed gives the same centers on every namespace
(up to rounding). Only small arrays come back to the host: the indices of each round's
candidates (so that a lazy namespace knows their number) and the candidates' weights.

When fewer than ``n_clusters`` candidates carry weight (tiny data, or duplicate rows that
leave every ``D²`` at zero), the candidates are all kept and more rows are added: first rows
not yet covered by a candidate (``D² > 0``) with probability ∝ ``w · D²``, then other rows
of positive weight ∝ ``w``, all distinct; only when fewer rows have positive weight than
``n_clusters`` are rows repeated. A row of zero weight is never a center.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .backends.reference import last_positive
from ._arrays import working_dtype
from ._passes import Plan
from ._seeding import greedy_kmeans_plusplus
from ._transfers import materialize, to_host_numpy
from ._typing import Array

#: Rounds of sampling when ``n_rounds`` is None (KMeans's ``init_max_iter``).
DEFAULT_N_ROUNDS = 5


def kmeans_parallel(
    X: Array, weights: Array, n_clusters: int, rng: object, /, *, plan: Plan,
    oversampling_factor: float = 2.0, n_rounds: int | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> Array:
    """Initial centers by k-means|| (see the module docstring).

    ``X`` is read through ``plan`` (rows ``X - plan.shift``); the centers are returned in those
    coordinates, shape ``(n_clusters, d)`` in X's dtype. ``weights`` are the non-negative
    sample weights. ``on_step(step, total)`` is called after the first center's pass, after
    each round and when the centers are chosen (``total = n_rounds + 2``).
    """
    xp, device = plan.xp, plan.device
    n_samples = X.shape[0]
    n_rounds = DEFAULT_N_ROUNDS if n_rounds is None else int(n_rounds)
    ell = float(oversampling_factor) * n_clusters
    total_steps = n_rounds + 2

    def step(index: int) -> None:
        if on_step is not None:
            on_step(index, total_steps)

    def rows(indices: np.ndarray) -> Array:
        return plan.rows(X, xp.asarray(indices, device=device))

    # The first center, with probability ∝ weight (never a row of zero weight).
    cumulative = xp.cumulative_sum(weights)
    target = xp.asarray(rng.uniform(size=1), dtype=working_dtype(X), device=device) * cumulative[-1]
    first = xp.minimum(xp.searchsorted(cumulative, target, side="right"), last_positive(weights, xp=xp))
    first = to_host_numpy(first).astype(np.int64)
    candidate_ids, candidate_blocks = [first], [rows(first)]
    n_candidates = 1
    _, closest = plan.for_columns(1).assign(X, candidate_blocks[0])
    nearest = xp.zeros(n_samples, dtype=xp.int32, device=device)
    (closest,) = materialize(closest, xp=xp)
    step(1)

    for round_index in range(n_rounds):
        terms = weights * closest
        potential = xp.sum(terms)
        uniforms = xp.asarray(rng.uniform(size=n_samples), dtype=working_dtype(X), device=device)
        # u < ℓ·w·D²/φ without the division: a zero potential (every row on a candidate)
        # keeps nothing, and rows of zero weight or zero distance are never kept.
        kept = xp.nonzero(uniforms * potential < ell * terms)[0]
        # The indices come to the host: few, and a lazy namespace learns their number.
        picked = to_host_numpy(kept).astype(np.int64)
        if picked.size:
            new = rows(picked)
            labels, sqdist = plan.for_columns(int(picked.size)).assign(X, new)
            closer = sqdist < closest
            closest = xp.where(closer, sqdist, closest)
            nearest = xp.where(closer, labels + n_candidates, nearest)
            closest, nearest, new = materialize(closest, nearest, new, xp=xp)
            candidate_ids.append(picked)
            candidate_blocks.append(new)
            n_candidates += int(picked.size)
        step(round_index + 2)
        if not picked.size and not bool(potential > 0):
            break  # every row is on a candidate: later rounds would sample nothing

    candidates = xp.concat(candidate_blocks, axis=0) if len(candidate_blocks) > 1 else candidate_blocks[0]
    ids = np.concatenate(candidate_ids)
    # Σ of the weights of the rows nearest to each candidate: the per-row labels and weights
    # (a column of width 1 as the "rows"), not the data.
    weight_plan = plan.for_rows(1, n_candidates)
    _, candidate_weights = weight_plan.segment_sum(
        xp.reshape(weights, (n_samples, 1)), weights, nearest, n_candidates
    )
    weighted = np.flatnonzero(to_host_numpy(candidate_weights) > 0)

    if weighted.size > n_clusters:
        if weighted.size < n_candidates:
            index = xp.asarray(weighted, device=device)
            candidates = xp.take(candidates, index, axis=0)
            candidate_weights = xp.take(candidate_weights, index)
        # The candidates are already in the plan's coordinates: no shift.
        centers, _ = greedy_kmeans_plusplus(
            candidates, candidate_weights, n_clusters, rng, plan=plan.centered(None)
        )
    else:
        kept_rows = [xp.take(candidates, xp.asarray(weighted, device=device), axis=0)]
        missing = n_clusters - int(weighted.size)
        if missing:
            extra = _more_rows(weights, closest, ids, missing, rng, plan=plan, dtype=working_dtype(X))
            kept_rows.append(rows(extra))
        centers = xp.concat(kept_rows, axis=0) if len(kept_rows) > 1 else kept_rows[0]
    (centers,) = materialize(centers, xp=xp)
    step(total_steps)
    return centers


def _more_rows(
    weights: Array, closest: Array, taken: np.ndarray, count: int, rng: object, /, *, plan: Plan, dtype: object
) -> np.ndarray:
    """``count`` row indices (host int64) not in ``taken``: first rows with ``w · D² > 0``
    drawn ∝ ``w · D²``, then rows of positive weight drawn ∝ ``w``, without replacement; rows
    of positive weight repeated only when there are not enough of them."""
    xp, device = plan.xp, plan.device
    n_samples = weights.shape[0]
    excluded = np.zeros(n_samples, dtype=bool)
    excluded[taken] = True
    picked: list[np.ndarray] = []
    for score in (weights * closest, weights):
        missing = count - sum(p.size for p in picked)
        if missing <= 0:
            break
        valid = (score > 0) & ~xp.asarray(excluded, device=device)
        n_valid = int(xp.sum(xp.astype(valid, xp.int32)))
        if n_valid == 0:
            continue
        # Efraimidis–Spirakis: the largest keys log(u)/score are a sample without replacement
        # ∝ score; invalid rows get -inf and come last.
        uniforms = xp.asarray(1.0 - rng.uniform(size=n_samples), dtype=dtype, device=device)
        keys = xp.where(valid, xp.log(uniforms) / xp.where(valid, score, xp.ones_like(score)), -xp.inf)
        top = xp.argsort(keys, descending=True, stable=True)[: min(missing, n_valid)]
        top = to_host_numpy(top).astype(np.int64)
        excluded[top] = True
        picked.append(top)
    chosen = np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)
    missing = count - chosen.size
    if missing > 0:
        # Fewer rows of positive weight than centers: repeat them (the candidates included).
        positive = np.flatnonzero(excluded & (to_host_numpy(weights) > 0))
        chosen = np.concatenate([chosen, np.resize(positive, missing)])
    return chosen
