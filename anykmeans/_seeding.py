"""Initial centers: greedy k-means++ (also public, as :func:`kmeans_plusplus`) and random rows.

Random numbers are drawn on the host from a NumPy Generator or RandomState and moved to the
data's device; everything that depends on the data stays on the device, with no host sync.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .backends.reference import last_positive
from ._arrays import working_dtype
from ._config import get_config
from ._lloyd import column_means
from ._passes import Plan
from ._prepare import prepare
from ._threads import capped_threads
from ._transfers import materialize, move
from ._typing import Array
from ._validation import check_data, check_int, check_n_samples, check_random_state, check_sample_weight

# k-means++ keeps its potential as sums over blocks of this many rows: a draw finds its block
# from the block sums and recomputes only that block's rows.
SEEDING_BLOCK_ROWS = 256


def _uniforms(rng: object, size: int, X: Array, plan: Plan) -> Array:
    return plan.xp.asarray(rng.uniform(size=size), dtype=working_dtype(X), device=plan.device)


def _sample(cumulative: Array, weights: Array, targets: Array, /, *, xp: object) -> Array:
    """Indices ``i`` with ``cumulative[i-1] <= target < cumulative[i]``: never a zero weight,
    also when rounding puts a target at or past the total (then the last positive weight)."""
    indices = xp.searchsorted(cumulative, targets, side="right")
    return xp.minimum(indices, last_positive(weights, xp=xp))


def greedy_kmeans_plusplus(
    X: Array, weights: Array, n_clusters: int, rng: object, /, *, plan: Plan, n_local_trials: int | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> tuple[Array, Array]:
    """Greedy k-means++ (Arthur & Vassilvitskii, with local trials as in scikit-learn).

    Each step draws ``2 + ⌊ln k⌋`` candidates with probability ∝ weight · D² and keeps the
    one that lowers the potential most. One pass over the data per step: it takes in the
    center chosen at the previous step (``pending``) and evaluates the new candidates, keeping
    the potential as sums over row blocks, from which the next draw is made.
    Returns ``(centers, indices)``: rows of X as the plan reads them (shifted) and their indices.
    ``on_step(step, n_clusters)`` is called as each center is chosen (``step`` from 1).
    """
    xp = plan.xp
    if n_local_trials is None:
        n_local_trials = 2 + int(math.log(n_clusters))
    # The distance blocks here are n_local_trials + 1 wide, not n_clusters: larger chunks.
    plan = plan.for_columns(n_local_trials + 1)
    block_rows = SEEDING_BLOCK_ROWS

    cumulative = xp.cumulative_sum(weights)
    first = _sample(cumulative, weights, _uniforms(rng, 1, X, plan) * cumulative[-1], xp=xp)
    indices, centers = [first], [plan.rows(X, first)]
    # The first center as the only candidate, against an infinite distance.
    closest = xp.full(X.shape[0], xp.inf, dtype=working_dtype(X), device=plan.device)
    closest, block_sums = plan.seeding_pass(X, weights, closest, centers[0], centers[0], block_rows=block_rows)
    block_sums = block_sums[:, 0]
    if on_step is not None:
        on_step(1, n_clusters)

    for step in range(2, n_clusters + 1):
        targets = _uniforms(rng, n_local_trials, X, plan) * xp.sum(block_sums)
        candidate_ids = plan.seeding_draw(
            X, weights, closest, centers[-1], block_sums, targets, block_rows=block_rows
        )
        candidates = plan.rows(X, candidate_ids)
        closest, blocks = plan.seeding_pass(X, weights, closest, centers[-1], candidates, block_rows=block_rows)
        best = xp.reshape(xp.argmin(xp.sum(blocks, axis=0)), (1,))
        indices.append(xp.take(candidate_ids, best))
        centers.append(xp.take(candidates, best, axis=0))
        block_sums = xp.take(blocks, best, axis=1)[:, 0]
        closest, block_sums, centers[-1], indices[-1] = materialize(
            closest, block_sums, centers[-1], indices[-1], xp=xp
        )
        if on_step is not None:
            on_step(step, n_clusters)

    return xp.concat(centers, axis=0), xp.concat(indices)


def random_rows(X: Array, weights: Array | None, n_clusters: int, rng: object, /, *, plan: Plan) -> Array:
    """``n_clusters`` distinct rows (shifted as the plan reads them), uniformly or (with
    weights) with probability ∝ weight."""
    xp, n_samples = plan.xp, X.shape[0]
    if weights is None:
        picked = rng.choice(n_samples, size=n_clusters, replace=False)
        indices = xp.asarray(picked, dtype=xp.int64, device=plan.device)
    else:
        # Efraimidis–Spirakis: the k largest keys log(u)/w are a weighted sample without
        # replacement; zero weights get -inf and are never picked before positive ones.
        u = xp.asarray(1.0 - rng.uniform(size=n_samples), dtype=working_dtype(X), device=plan.device)
        positive = weights > 0
        keys = xp.where(positive, xp.log(u) / xp.where(positive, weights, 1.0), -xp.inf)
        indices = xp.argsort(keys, descending=True, stable=True)[:n_clusters]
    return plan.rows(X, indices)


def kmeans_plusplus(
    X: Array, n_clusters: int, *, sample_weight: Array | None = None, random_state: object = None
) -> tuple[Array, Array]:
    """Initial centers by greedy k-means++, as :func:`sklearn.cluster.kmeans_plusplus`.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    n_clusters : int
    sample_weight : array of shape (n_samples,), optional
        Samples are drawn with probability proportional to weight × squared distance.
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState

    Returns
    -------
    centers : array of shape (n_clusters, n_features)
        Rows of ``X`` (in X's namespace, device and float dtype, float16 and bfloat16
        included, unless the ``output`` setting names another).
    indices : array of shape (n_clusters,)
        Their row indices (placed as ``centers``).
    """
    config = get_config()
    with capped_threads(config["n_threads"]):
        return _kmeans_plusplus(X, n_clusters, sample_weight, random_state, config)


def _kmeans_plusplus(
    X: Array, n_clusters: int, sample_weight: Array | None, random_state: object, config: dict
) -> tuple[Array, Array]:
    n_clusters = check_int(n_clusters, "n_clusters", "kmeans_plusplus")
    rng = check_random_state(random_state)
    X_in = check_data(X, estimator_name="kmeans_plusplus")
    check_n_samples(X_in, n_clusters)
    weights = check_sample_weight(sample_weight, X_in)
    work = prepare(X_in, weights, config=config, n_columns=n_clusters)
    plan = work.plan.centered(column_means(work.X, plan=work.plan))
    _, indices = greedy_kmeans_plusplus(work.X, work.weights, n_clusters, rng, plan=plan)
    # The centers are exact rows of the input, taken where it lives, then placed as asked.
    input_xp = work.input[0]
    centers = input_xp.take(X_in, move(indices, work.input), axis=0)
    return move(centers, work.output), move(indices, work.output)
