"""Initial centers: greedy k-means++ and random rows.

Random numbers are drawn on the host from a NumPy Generator or RandomState and moved to the
data's device; everything that depends on the data stays on the device, with no host sync.
"""

from __future__ import annotations

import math
from typing import Any

from ._engine import Engine
from ._namespace import materialize


def _uniforms(rng: Any, size: int, X: Any, engine: Engine) -> Any:
    return engine.xp.asarray(rng.uniform(size=size), dtype=X.dtype, device=engine.device)


def _sample(cumulative: Any, targets: Any, xp: Any) -> Any:
    """Indices ``i`` with ``cumulative[i-1] <= target < cumulative[i]``: never a zero weight."""
    indices = xp.searchsorted(cumulative, targets, side="right")
    return xp.minimum(indices, cumulative.shape[0] - 1)


def kmeans_plusplus(
    X: Any, weights: Any, n_clusters: int, rng: Any, engine: Engine, n_local_trials: int | None = None
) -> tuple[Any, Any]:
    """Greedy k-means++ (Arthur & Vassilvitskii, with local trials as in scikit-learn).

    Each step draws ``2 + ⌊ln k⌋`` candidates with probability ∝ weight · D² and keeps the
    one that lowers the potential most. One pass over the data per step: it takes in the
    center chosen at the previous step (``pending``) and evaluates the new candidates, keeping
    the potential as sums over row blocks, from which the next draw is made.
    Returns ``(centers, indices)``: rows of ``X`` and their indices.
    """
    xp = engine.xp
    if n_local_trials is None:
        n_local_trials = 2 + int(math.log(n_clusters))
    # The distance blocks here are n_local_trials + 1 wide, not n_clusters: larger chunks.
    engine = engine.for_columns(n_local_trials + 1)

    cumulative = xp.cumulative_sum(weights)
    first = _sample(cumulative, _uniforms(rng, 1, X, engine) * cumulative[-1], xp)
    indices, centers = [first], [engine.take_rows(X, first)]
    # The first center as the only candidate, against an infinite distance.
    closest = xp.full(X.shape[0], xp.inf, dtype=X.dtype, device=engine.device)
    closest, block_sums = engine.seeding_pass(X, centers[0], centers[0], closest, weights)
    block_sums = block_sums[:, 0]

    for _ in range(1, n_clusters):
        targets = _uniforms(rng, n_local_trials, X, engine) * xp.sum(block_sums)
        candidate_ids = engine.seeding_draw(X, weights, closest, centers[-1], block_sums, targets)
        candidates = engine.take_rows(X, candidate_ids)
        closest, blocks = engine.seeding_pass(X, candidates, centers[-1], closest, weights)
        best = xp.reshape(xp.argmin(xp.sum(blocks, axis=0)), (1,))
        indices.append(xp.take(candidate_ids, best))
        centers.append(xp.take(candidates, best, axis=0))
        block_sums = xp.take(blocks, best, axis=1)[:, 0]
        closest, block_sums, centers[-1], indices[-1] = materialize(
            xp, closest, block_sums, centers[-1], indices[-1]
        )

    return xp.concat(centers, axis=0), xp.concat(indices)


def random_rows(
    X: Any, weights: Any | None, n_clusters: int, rng: Any, engine: Engine
) -> Any:
    """``n_clusters`` distinct rows, uniformly or (with weights) with probability ∝ weight."""
    xp, n_samples = engine.xp, X.shape[0]
    if weights is None:
        picked = rng.choice(n_samples, size=n_clusters, replace=False)
        indices = xp.asarray(picked, dtype=xp.int64, device=engine.device)
    else:
        # Efraimidis–Spirakis: the k largest keys log(u)/w are a weighted sample without
        # replacement; zero weights get -inf and are never picked before positive ones.
        u = xp.asarray(1.0 - rng.uniform(size=n_samples), dtype=X.dtype, device=engine.device)
        positive = weights > 0
        keys = xp.where(positive, xp.log(u) / xp.where(positive, weights, 1.0), -xp.inf)
        indices = xp.argsort(keys, descending=True, stable=True)[:n_clusters]
    return engine.take_rows(X, indices)
