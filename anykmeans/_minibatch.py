"""The MiniBatchKMeans estimator: scikit-learn's mini-batch k-means on any array-API namespace.

Each step draws a batch of row indices on the host, gathers those rows where the data lives
(``xp.take``) and runs one ``Plan.assign_and_sum`` pass over them, so every backend that
serves Lloyd's passes (Numba on the CPU, CuPy on a GPU, …) serves the batches too. Per
step, the batch's indices go to the device and ``n_clusters + 1`` numbers come back: the
per-center counts, which decide the low-count reassignments, and the batch's inertia, which
decides the early stop.

The random draws are scikit-learn's calls on the same generator, in the same order
(validation rows, init rows, the seeding, each batch, each reassignment), so that a
``numpy.random.RandomState`` seeded alike gives scikit-learn's batches.
"""

from __future__ import annotations

import numbers
import time
import warnings
from collections.abc import Callable
from typing import Any

import array_api_compat
import numpy as np

from ._arrays import as_working, namespace_and_device, namespace_name
from ._config import get_config
from ._kmeans import KMeans, cluster_sizes_of, is_array_like, runs_for_init
from ._lloyd import equal_center_map, labels_and_inertia, mean_variance, merge_equal_centers
from ._metric import COSINE_PER_SQUARED_DISTANCE, check_metric, renormalized, unit_data, unit_rows
from ._passes import Plan
from .backends import select_kernels
from ._prepare import prepare
from ._progress import FitProgress
from ._seeding import greedy_kmeans_plusplus, random_rows
from ._threads import capped_threads
from ._transfers import materialize, move, to_host_numpy
from ._typing import Array
from ._validation import (
    check_centers,
    check_data,
    check_feature_names,
    check_int,
    check_n_features,
    check_n_samples,
    check_random_state,
    check_sample_weight,
    feature_names,
    half_dtype,
    in_dtype,
)

_INIT_METHODS = ("k-means++", "random")
# n_init="auto" for 'random' and callables: scikit-learn's MiniBatchKMeans runs 3 (KMeans 10).
_DEFAULT_N_INIT = 3

RandomGenerator = np.random.Generator | np.random.RandomState


# ---------------------------------------------------------------- host randomness


def _integers(rng: RandomGenerator, high: int, size: int) -> np.ndarray:
    """``size`` integers in ``[0, high)``: ``randint`` on a RandomState (scikit-learn's call),
    ``integers`` on a Generator."""
    if isinstance(rng, np.random.RandomState):
        return rng.randint(0, high, size)
    return rng.integers(0, high, size)


class _BatchSampler:
    """Batch indices drawn with replacement, with probability ∝ weight.

    The same numbers as ``rng.choice(n, size, p=w / w.sum(), replace=True)``, scikit-learn's
    call, for a RandomState and a Generator alike: uniforms looked up in the cumulative
    distribution. The distribution (8 bytes per row, on the host) is built once per fit
    instead of once per step, so a step costs O(batch · log n) on the host, not O(n).
    """

    def __init__(self, weights: np.ndarray) -> None:
        # Normalised in the data's dtype, then accumulated in float64, as NumPy's choice does
        # with scikit-learn's normalised weights: the same boundaries, the same indices.
        p = weights / np.sum(weights)
        cdf = p.astype(np.float64).cumsum()
        cdf /= cdf[-1]
        self._cdf = cdf

    def draw(self, rng: RandomGenerator, size: int) -> np.ndarray:
        uniforms = rng.random_sample(size) if isinstance(rng, np.random.RandomState) else rng.random(size)
        return self._cdf.searchsorted(uniforms, side="right")


# ---------------------------------------------------------------- the shift


# The shift is the mean rounded to a multiple of 2**p with 2**p <= range / 2**_SHIFT_BITS.
_SHIFT_BITS = 4


def _shift(X: Array, /, *, xp: Any) -> tuple[Array, Array]:
    """``(shift, mean)``: the column means, and the shift the passes subtract from rows.

    Centering keeps the expanded distances precise far from the origin (as in KMeans), but
    a shift by the exact mean rounds every ``x - mean``, which breaks exact ties: on data on
    a grid (integers: pixels, counts) a row is often exactly as far from two centers, and
    scikit-learn's MiniBatchKMeans, which does not center, gives it to the lower index. So
    each column's shift is its mean rounded to a multiple of a power of two at most 1/16 of
    the column's range: rows and centers on a grid of step 2**q stay on one of step
    ``min(2**q, 2**p)`` when shifted (exact, ties kept), and the rows stay within about their
    range of the origin (precision kept). A constant column is shifted by its value.
    """
    mean, low, high = materialize(xp.mean(X, axis=0), xp.min(X, axis=0), xp.max(X, axis=0), xp=xp)
    spread = high - low
    varies = spread > 0
    finfo = xp.finfo(X.dtype)
    # Powers of two at least the smallest normal number: never 0, and exact to divide by.
    smallest = float(np.log2(finfo.smallest_normal))
    exponent = xp.floor(xp.log2(xp.where(varies, spread, xp.ones_like(spread)))) - _SHIFT_BITS
    step = 2.0 ** xp.maximum(exponent, xp.full_like(exponent, smallest))
    shift = xp.where(varies, xp.round(mean / step) * step, low)
    return materialize(shift, mean, xp=xp)


# ---------------------------------------------------------------- one step


def _random_rows(X: Array, weights: Array, n_clusters: int, rng: RandomGenerator, /, *, plan: Plan) -> Array:
    """Distinct rows drawn with probability ∝ weight by scikit-learn's call,
    ``rng.choice(n, size=k, replace=False, p=w / w.sum())`` (X is the init's subsample: its
    weights come to the host)."""
    host = to_host_numpy(weights)
    if np.count_nonzero(host) < n_clusters:
        # NumPy's choice refuses; draw the positive weights first, then zero ones.
        return random_rows(X, weights, n_clusters, rng, plan=plan)
    picked = rng.choice(X.shape[0], size=n_clusters, replace=False, p=host / host.sum())
    return plan.rows(X, plan.xp.asarray(picked, device=plan.device))


def _minibatch_step(
    X: Array, weights: Array, centers: Array, counts: np.ndarray, /, *,
    plan: Plan, rng: RandomGenerator, reassign: bool, reassignment_ratio: float, verbose: bool,
    spherical: bool = False,
) -> tuple[Array, np.ndarray, float]:
    """One mini-batch update from the rows of ``X`` (a batch, or a ``partial_fit`` chunk).

    Each center moves to the weighted mean of everything it has been given so far:
    ``c ← (c · count + Σ w·x) / (count + Σ w)`` over its rows in this batch, so its learning
    rate is this batch's weight over its running ``count``. Then, when ``reassign``, centers
    whose count is below ``reassignment_ratio × max(count)`` jump to random rows of the batch
    (at most half the batch), and their counts are raised to the smallest remaining count so
    that they are not reassigned again at once (scikit-learn's rule). With ``spherical``
    (unit rows and centers) the moved centers are put back on the sphere.

    ``counts`` (host, the data's dtype) is not modified. Returns the new centers, the new
    counts and the batch's inertia against the old centers (what the early stop watches).
    """
    xp, device = plan.xp, plan.device
    labels, batch_inertia, sums, weight_sums = plan.assign_and_sum(X, weights, centers)
    first = equal_center_map(centers, xp=xp)
    if first is not None:
        # Equal centers tie to the lowest index, as in Lloyd's passes: only it moves.
        labels, sums, weight_sums = merge_equal_centers(first, labels, sums, weight_sums, xp=xp)
    old_counts = xp.asarray(counts, device=device)
    new_counts = old_counts + weight_sums
    received = weight_sums > 0
    divisor = xp.where(received, new_counts, xp.ones_like(new_counts))
    moved = (centers * old_counts[:, None] + sums) / divisor[:, None]
    new_centers = xp.where(received[:, None], moved, centers)
    if spherical:
        new_centers = renormalized(new_centers, centers, xp=xp)
    # The k counts come to the host every step: they decide the reassignments.
    counts = to_host_numpy(new_counts).copy()
    batch_inertia = float(batch_inertia) * (COSINE_PER_SQUARED_DISTANCE if spherical else 1.0)

    if reassign and reassignment_ratio > 0:
        n_rows = X.shape[0]
        to_reassign = counts < reassignment_ratio * counts.max()
        if to_reassign.sum() > 0.5 * n_rows:
            # At most half the batch becomes new centers: the highest counts stay.
            to_reassign[np.argsort(counts)[int(0.5 * n_rows):]] = False
        n_reassigns = int(to_reassign.sum())
        if n_reassigns:
            picked = rng.choice(n_rows, replace=False, size=n_reassigns)
            if verbose:
                print(f"[MiniBatchKMeans] Reassigning {n_reassigns} cluster centers.")
            # The j-th reassigned center (by index) takes the j-th drawn row.
            source = np.zeros(counts.shape[0], dtype=np.int64)
            source[to_reassign] = picked
            replacement = plan.rows(X, xp.asarray(source, device=device))
            mask = xp.asarray(to_reassign, device=device)
            new_centers = xp.where(mask[:, None], replacement, new_centers)
        if not to_reassign.all():
            # Not reset to zero: a fresh center would be reassigned again at the next check,
            # and its learning rate would be 1. (With every count below the ratio, which only
            # a ratio above 1 allows, there is no smallest remaining count: they are kept.)
            counts[to_reassign] = np.min(counts[~to_reassign])
    (new_centers,) = materialize(new_centers, xp=xp)
    return new_centers, counts, batch_inertia


def _placed_counts(counts: np.ndarray, placement: tuple) -> Array:
    """The host counts as a fitted array, where the results go (k numbers, their dtype)."""
    return move(counts.copy(), placement)


class _EarlyStop:
    """scikit-learn's stopping rule: the squared center change within ``tol``, or no new
    minimum of the exponentially weighted average of the mean batch inertia in
    ``max_no_improvement`` consecutive steps (the first step's inertia, measured on the
    initial centers, is ignored)."""

    def __init__(self, *, batch_size: int, n_samples: int, tol: float, max_no_improvement: int | None,
                 verbose: bool) -> None:
        self.batch_size, self.n_samples, self.tol = batch_size, n_samples, tol
        self.max_no_improvement, self.verbose = max_no_improvement, verbose
        self.ewa_inertia: float | None = None
        self.first_inertia: float | None = None
        self._ewa_min: float | None = None
        self._no_improvement = 0

    def __call__(self, step: int, n_steps: int, centers_squared_diff: float, batch_inertia: float) -> bool:
        batch_inertia /= self.batch_size  # comparable across batch sizes
        step += 1  # counted from 1, as printed
        if step == 1:
            self.first_inertia = batch_inertia
            if self.verbose:
                print(f"Minibatch step {step}/{n_steps}: mean batch inertia: {batch_inertia}")
            return False
        if self.ewa_inertia is None:
            self.ewa_inertia = batch_inertia
        else:
            alpha = min(self.batch_size * 2.0 / (self.n_samples + 1), 1)
            self.ewa_inertia = self.ewa_inertia * (1 - alpha) + batch_inertia * alpha
        if self.verbose:
            print(
                f"Minibatch step {step}/{n_steps}: mean batch inertia: "
                f"{batch_inertia}, ewa inertia: {self.ewa_inertia}"
            )
        if self.tol > 0.0 and centers_squared_diff <= self.tol:
            if self.verbose:
                print(f"Converged (small centers change) at step {step}/{n_steps}")
            return True
        if self._ewa_min is None or self.ewa_inertia < self._ewa_min:
            self._no_improvement = 0
            self._ewa_min = self.ewa_inertia
        else:
            self._no_improvement += 1
        if self.max_no_improvement is not None and self._no_improvement >= self.max_no_improvement:
            if self.verbose:
                print(f"Converged (lack of improvement in inertia) at step {step}/{n_steps}")
            return True
        return False


def _reassign_due(counts: np.ndarray, since: int, batch_size: int, n_clusters: int) -> tuple[bool, int]:
    """scikit-learn's schedule: reassign when a center has never received weight, or once
    ``10 × n_clusters`` rows have been processed since the last time. Returns the decision
    and the new count of rows since the last reassignment."""
    since += batch_size
    if bool((counts == 0).any()) or since >= 10 * n_clusters:
        return True, 0
    return False, since


class _StepPlacement:
    """Where the steps of a fit run, and how rows get there.

    For eager arrays, where X is: a batch is ``xp.take`` of its rows, on X's device. For lazy
    (Dask) arrays, a step is far smaller than the cost of a task graph (~0.1 s per step here,
    against milliseconds for the gather): each gathered batch is evaluated into the array
    type of X's blocks, and the steps run there, with that namespace's kernels. The passes
    over all of X (the mean, ``tol``, the final labels) stay Dask's.
    """

    def __init__(self, plan: Plan, n_clusters: int, config: dict) -> None:
        self._source = plan
        self.lazy = array_api_compat.is_dask_namespace(plan.xp)
        if not self.lazy:
            self.plan = plan
            return
        # Streamed host data (or Dask with a device asked for) steps on the blocks' device.
        self._options = dict(getattr(plan, "compute_options", ()))
        placement = getattr(plan, "block_placement", None)
        shift = plan.shift.compute(**self._options) if array_api_compat.is_dask_array(plan.shift) else plan.shift
        if placement is None:
            xp, device = namespace_and_device(shift)
            kernels = select_kernels(config["kernels"], xp, device)
        else:
            (xp, device), kernels = placement, plan.kernels
            shift = move(shift, placement)
        self.plan = Plan.create(
            xp, device, kernels, working_memory=plan.working_memory, n_features=plan.n_features,
            n_columns=n_clusters, itemsize=plan.itemsize,
        ).centered(shift).with_precision(plan.precision)

    def gather(self, array: Array, indices: np.ndarray) -> Array:
        """The rows ``indices`` (host integers) of ``array``, where the steps run."""
        xp = self._source.xp
        taken = xp.take(array, xp.asarray(indices, device=self._source.device), axis=0)
        if not self.lazy:
            return taken
        return move(taken.compute(**self._options), (self.plan.xp, self.plan.device))

    def place(self, array: Array) -> Array:
        """A small array (centers) moved to where the steps run."""
        return move(array, (self.plan.xp, self.plan.device)) if self.lazy else array


# ---------------------------------------------------------------- the estimator


class MiniBatchKMeans(KMeans):
    """Mini-batch k-means clustering, on any array-API namespace and device.

    A drop-in for :class:`sklearn.cluster.MiniBatchKMeans`: same parameters, attributes,
    errors and algorithm, and, from the same initial centers and the same
    ``numpy.random.RandomState``, the same batches and results. Each step draws
    ``batch_size`` rows (on the host, with probability ∝ ``sample_weight``), gathers them
    where X lives and moves each center towards the mean of its rows with a per-center
    learning rate (one over the weight it has received so far). Input of any array-API
    library is clustered where it lives; fitted attributes come back in the input's
    namespace, device and dtype (or where the ``output`` setting says).

    Parameters
    ----------
    n_clusters : int, default=8
        The number of clusters and of centers.
    init : {'k-means++', 'random'}, callable or array of shape (n_clusters, n_features), \
            default='k-means++'
        ``'k-means++'``: greedy k-means++ on ``init_size`` rows drawn at random.
        ``'random'``: distinct rows of that subsample. An array (of X's namespace and device,
        or a list) gives the centers. A callable is called as
        ``init(X_subsample, n_clusters, random_state=rng)`` with rows of X as they are (not
        centered: scikit-learn's MiniBatchKMeans passes them so) and returns centers.
    max_iter : int, default=100
        Passes over the data, counted in rows: at most ``max_iter * n_samples // batch_size``
        steps.
    batch_size : int, default=1024
        Rows per step (at most ``n_samples``).
    verbose : int, default=0
        Print the inits' inertias, each step's mean batch inertia and its average, and the
        reassignments.
    compute_labels : bool, default=True
        After the steps, assign every row to compute ``labels_`` and ``inertia_`` (one pass
        over X). Without it, ``inertia_`` is the average batch inertia times the total weight
        and there is no ``labels_``.
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        Seeds the host generator of the init, the batches and the reassignments. An int or
        None becomes a ``numpy.random.Generator``; pass a ``RandomState`` to draw
        scikit-learn's numbers.
    tol : float, default=0.0
        Stop when the squared change of the centers in one step is at most ``tol`` times
        the mean per-feature variance of X. ``0`` disables this test.
    max_no_improvement : int or None, default=10
        Stop after this many consecutive steps without a new minimum of the smoothed mean
        batch inertia (its exponentially weighted average). ``None`` disables this test.
    init_size : int or None, default=None
        Rows drawn (with replacement) for the init, and for the validation set on which the
        ``n_init`` inits are compared. ``None``: ``3 * batch_size``, at least
        ``3 * n_clusters``; at most ``n_samples``.
    n_init : 'auto' or int, default='auto'
        Inits tried, each on its own subsample; the one with the lowest inertia on the
        validation set is kept (only one is run from it, unlike :class:`KMeans`). ``'auto'``
        is 1 for ``'k-means++'`` and an array, 3 otherwise.
    reassignment_ratio : float, default=0.01
        Centers whose count is below this fraction of the largest count are moved to random
        rows of the batch. Checked when a center has received nothing yet, or once
        ``10 * n_clusters`` rows have been processed since the last check. Higher values
        repair more poor centers and converge more slowly; ``0`` never reassigns.
    metric : {'euclidean', 'cosine'}, default='euclidean'
        ``'cosine'``: spherical mini-batch k-means (see :class:`KMeans`): unit rows, centers
        put back on the unit sphere after each step, inertias in cosine distances.

    Attributes
    ----------
    cluster_centers_ : array of shape (n_clusters, n_features)
    labels_ : array of shape (n_samples,)
        Only with ``compute_labels=True``: for ``fit``, the labels of X; for
        ``partial_fit``, those of the last chunk.
    inertia_ : float
        Weighted sum of squared distances of the rows to their closest center (of the last
        chunk, for ``partial_fit``).
    n_iter_ : int
        Passes over the data, ``ceil(n_steps_ * batch_size / n_samples)`` (set by ``fit``).
    n_steps_ : int
        Mini-batch steps taken (``partial_fit`` adds one per call).
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        The column names of X, when it was a DataFrame with string names.

    Notes
    -----
    ``fit`` centers the data as :class:`KMeans` does (the passes read rows shifted, with no
    copy of X), so that the expanded distances keep their precision far from the origin;
    the centers do not depend on it (the update commutes with a shift). The shift is each
    column's mean rounded to a power-of-two multiple of about 1/16 of the column's range:
    on integer (or other grid) data the shifted rows stay exact, so a row exactly as far
    from two centers goes to the lower index, as in scikit-learn, which does not center.
    ``partial_fit`` has no whole data: its first call takes the shift from the first chunk
    and keeps it for the later chunks (and for ``predict``).

    The batch indices are looked up in a table of 8 bytes per row on the host, built once
    per fit. On Dask arrays each gathered batch is evaluated and the steps run on its
    blocks' array type (a task graph per step would cost more than the step); the passes
    over all of X stay lazy.

    ``partial_fit`` chunks may come from different libraries and devices: the k × d centers
    move to each chunk, as for ``predict``. A chunk of another float dtype is cast to the
    dtype of the first one.

    Examples
    --------
    >>> import numpy as np
    >>> from anykmeans import MiniBatchKMeans
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [4, 2], [4, 0], [4, 4],
    ...               [4, 5], [0, 1], [2, 2], [3, 2], [5, 5], [1, -1]], dtype=float)
    >>> km = MiniBatchKMeans(n_clusters=2, batch_size=6, n_init=3, random_state=0).fit(X)
    >>> km.cluster_centers_.shape
    (2, 2)
    >>> km = MiniBatchKMeans(n_clusters=2, batch_size=6, random_state=0)
    >>> km = km.partial_fit(X[:6]).partial_fit(X[6:])
    >>> km.n_steps_
    2
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | Callable | Any = "k-means++",
        max_iter: int = 100,
        batch_size: int = 1024,
        verbose: int = 0,
        compute_labels: bool = True,
        random_state: Any = None,
        tol: float = 0.0,
        max_no_improvement: int | None = 10,
        init_size: int | None = None,
        n_init: str | int = "auto",
        reassignment_ratio: float = 0.01,
        metric: str = "euclidean",
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.verbose = verbose
        self.compute_labels = compute_labels
        self.random_state = random_state
        self.tol = tol
        self.max_no_improvement = max_no_improvement
        self.init_size = init_size
        self.n_init = n_init
        self.reassignment_ratio = reassignment_ratio
        self.metric = metric

    # ------------------------------------------------------------------ validation

    def _check_params(self) -> tuple[int, int]:
        """Validate the parameters (scikit-learn's constraints and messages); returns
        ``(n_clusters, n_init)``."""
        name = type(self).__name__
        n_clusters = check_int(self.n_clusters, "n_clusters", name)
        init = self.init
        if not (init in _INIT_METHODS if isinstance(init, str) else callable(init) or is_array_like(init)):
            raise self._invalid("init", "a str among {'random', 'k-means++'}, a callable or an array-like", init)
        if isinstance(self.n_init, str) and self.n_init == "auto":
            n_init = _DEFAULT_N_INIT if (isinstance(init, str) and init == "random") or callable(init) else 1
        elif isinstance(self.n_init, numbers.Integral) and not isinstance(self.n_init, bool) and self.n_init >= 1:
            n_init = int(self.n_init)
        else:
            raise self._invalid("n_init", "a str among {'auto'} or an int in the range [1, inf)", self.n_init)
        check_int(self.max_iter, "max_iter", name)
        check_int(self.batch_size, "batch_size", name)
        verbose = self.verbose
        if not isinstance(verbose, (bool, np.bool_)) and not (isinstance(verbose, numbers.Integral) and verbose >= 0):
            raise self._invalid(
                "verbose", "an int in the range [0, inf), an instance of 'bool' or an instance of 'numpy.bool'",
                verbose,
            )
        if not isinstance(self.compute_labels, (bool, np.bool_)):
            raise self._invalid(
                "compute_labels", "an instance of 'bool' or an instance of 'numpy.bool'", self.compute_labels
            )
        for param in ("tol", "reassignment_ratio"):
            value = getattr(self, param)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
                raise self._invalid(param, "a float in the range [0.0, inf)", value)
        for param, low in (("max_no_improvement", 0), ("init_size", 1)):
            value = getattr(self, param)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low
            ):
                raise self._invalid(param, f"an int in the range [{low}, inf) or None", value)
        check_metric(self.metric, name)
        return n_clusters, runs_for_init(init, n_init, self.n_init, name)

    def _sizes(self, n_samples: int, n_clusters: int) -> tuple[int, int]:
        """``(batch_size, init_size)`` for data of ``n_samples`` rows, as scikit-learn sets them."""
        batch_size = min(self.batch_size, n_samples)
        init_size = self.init_size
        if init_size is None:
            init_size = 3 * batch_size
            if init_size < n_clusters:
                init_size = 3 * n_clusters
        elif init_size < n_clusters:
            warnings.warn(
                f"init_size={init_size} should be larger than n_clusters={n_clusters}. Setting it "
                "to min(3*n_clusters, n_samples)",
                RuntimeWarning,
                stacklevel=4,
            )
            init_size = 3 * n_clusters
        return batch_size, min(init_size, n_samples)

    # ------------------------------------------------------------------ initial centers

    def _initial_centers(
        self, X: Array, weights: Array, n_clusters: int, init_size: int, rng: RandomGenerator, /, *,
        plan: Plan, steps: _StepPlacement, init_centers: Array | None,
        on_step: Callable[[int, int], None] | None = None,
    ) -> Array:
        """Centers where the steps run, as their plan reads rows (shifted), from ``init_size``
        rows drawn at random as scikit-learn's ``_init_centroids`` draws them (also for an
        array ``init``, whose draw is then unused: the later draws stay scikit-learn's)."""
        xp, init = plan.xp, self.init
        subsample = init_size < X.shape[0]
        indices = _integers(rng, X.shape[0], init_size) if subsample else None
        if init_centers is not None:
            return steps.place(init_centers)
        if callable(init):
            # The callable sees rows of X's own namespace, not centered (scikit-learn's
            # MiniBatchKMeans passes them so).
            if subsample:
                X = xp.take(X, xp.asarray(indices, device=plan.device), axis=0)
            centers = check_centers(init(X, n_clusters, random_state=rng), X, n_clusters)
            if self.metric == "cosine":
                centers = unit_rows(centers, xp=xp, what="The centers from init")
            return steps.place(centers - plan.shift)
        if subsample:
            X, weights, plan = steps.gather(X, indices), steps.gather(weights, indices), steps.plan
        if init == "k-means++":
            centers = greedy_kmeans_plusplus(X, weights, n_clusters, rng, plan=plan, on_step=on_step)[0]
        else:
            centers = _random_rows(X, weights, n_clusters, rng, plan=plan)
        return steps.place(centers)

    # ------------------------------------------------------------------ fit

    def fit(self, X: Array, y: object = None, sample_weight: Array | None = None) -> MiniBatchKMeans:
        """Compute the centers from mini-batches of X.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            Training data, of any array-API namespace (or array-like, taken as NumPy).
        y : ignored
        sample_weight : array of shape (n_samples,), optional
            Non-negative weights: batches are drawn with probability ∝ weight. Not used by
            an array or callable ``init``.

        Returns
        -------
        self
        """
        config = get_config()
        with capped_threads(config["n_threads"]):
            return self._fit(X, sample_weight, config)

    def _fit(self, X: Array, sample_weight: Array | None, config: dict) -> MiniBatchKMeans:
        started = time.perf_counter()
        name = type(self).__name__
        n_clusters, n_init = self._check_params()
        rng = check_random_state(self.random_state)
        names = feature_names(X)
        input_dtype = half_dtype(X)
        # Batches are drawn from the rows and updated in place: float16 / bfloat16 X is
        # copied to float32 once (KMeans reads it chunk by chunk instead).
        X_in = check_data(X, estimator_name=name)
        X_in = as_working(X_in, xp=namespace_and_device(X_in)[0])
        check_n_samples(X_in, n_clusters)
        weights = check_sample_weight(sample_weight, X_in)
        init_centers = check_centers(self.init, X_in, n_clusters) if is_array_like(self.init) else None
        n_samples = X_in.shape[0]
        batch_size, init_size = self._sizes(n_samples, n_clusters)

        work = prepare(X_in, weights, config=config, n_columns=n_clusters)
        X, weights, xp, device = work.X, work.weights, work.plan.xp, work.plan.device
        spherical = self.metric == "cosine"
        if spherical:
            X, init_centers = unit_data(X, init_centers, xp=xp)
        host_dtype = np.dtype(np.float32) if X.dtype == xp.float32 else np.dtype(np.float64)
        # Centered as KMeans (the passes read rows as X - mean, without a copy), by a mean
        # rounded so that exact ties stay ties (see _shift). Unit rows need no centering.
        mean, column_means = _shift(X, xp=xp)
        if spherical:
            mean = xp.zeros_like(mean)
        plan = work.plan.centered(mean)
        # The mean per-feature variance: the second moment about the shift, less the shift's
        # offset from the means.
        tol = (
            (mean_variance(X, plan=plan) - float(xp.mean((column_means - mean) ** 2))) * self.tol
            if self.tol else 0.0
        )
        if init_centers is not None:
            init_centers = move(init_centers, (xp, device)) - mean
        unit_weights = sample_weight is None
        # The batches are drawn ∝ weight and then weigh 1 each, as in scikit-learn: the
        # weights count once.
        sampler = _BatchSampler(np.ones(n_samples, dtype=host_dtype) if unit_weights else to_host_numpy(weights))
        verbose = bool(self.verbose)

        n_steps = (self.max_iter * n_samples) // batch_size
        steps = _StepPlacement(plan, n_clusters, config)
        step_xp, step_plan = steps.plan.xp, steps.plan
        progress = FitProgress(config["progress"], n_init=1, max_iter=n_steps, name=name)
        with progress:
            # The inits are compared on one validation subsample (drawn first, as scikit-learn does).
            validation = _integers(rng, n_samples, init_size)
            X_valid, weights_valid = steps.gather(X, validation), steps.gather(weights, validation)
            best_inertia, best_run = None, 0
            for run in range(n_init):
                if verbose:
                    print(f"Init {run + 1}/{n_init} with method {self.init}")
                candidate = self._initial_centers(
                    X, weights, n_clusters, init_size, rng, plan=plan, steps=steps,
                    init_centers=init_centers, on_step=progress.seeding_step,
                )
                _, sqdist = step_plan.assign(X_valid, candidate)
                valid_inertia = float(step_xp.sum(weights_valid * sqdist))
                if verbose:
                    print(f"Inertia for init {run + 1}/{n_init}: {valid_inertia}")
                if best_inertia is None or valid_inertia < best_inertia:
                    centers, best_inertia, best_run = candidate, valid_inertia, run

            counts = np.zeros(n_clusters, dtype=host_dtype)
            since_reassign = 0
            batch_weights = step_xp.ones((batch_size,), dtype=centers.dtype, device=step_plan.device)
            stop = _EarlyStop(
                batch_size=batch_size, n_samples=n_samples, tol=tol,
                max_no_improvement=self.max_no_improvement, verbose=verbose,
            )
            for step in range(n_steps):
                batch = steps.gather(X, sampler.draw(rng, batch_size))
                reassign, since_reassign = _reassign_due(counts, since_reassign, batch_size, n_clusters)
                new_centers, counts, batch_inertia = _minibatch_step(
                    batch, batch_weights, centers, counts, plan=step_plan, rng=rng, reassign=reassign,
                    reassignment_ratio=self.reassignment_ratio, verbose=verbose, spherical=spherical,
                )
                centers_squared_diff = float(step_xp.sum((new_centers - centers) ** 2)) if tol > 0 else 0.0
                centers = new_centers
                progress.iteration(step, batch_inertia / batch_size)
                if stop(step, n_steps, centers_squared_diff, batch_inertia):
                    break
            n_steps_done = step + 1
            progress.end_run(n_steps_done, batch_inertia / batch_size)

            centers = move(centers, (xp, device))
            if self.compute_labels:
                labels, fit_inertia = labels_and_inertia(X, weights, centers, plan=plan, spherical=spherical)
            else:
                labels = None
                average = stop.ewa_inertia if stop.ewa_inertia is not None else stop.first_inertia
                fit_inertia = average * float(xp.sum(weights))

        # Everything is computed before anything is set: a failed fit leaves the estimator as it was.
        centers, mean = materialize(centers + mean, mean, xp=xp)
        fitted = {
            # float16 / bfloat16 input: clustered in float32, centers in its own dtype.
            "cluster_centers_": in_dtype(move(centers, work.output), input_dtype),
            "inertia_": fit_inertia,
            "n_steps_": n_steps_done,
            "n_iter_": -(-(n_steps_done * batch_size) // n_samples),
            "n_features_in_": X.shape[1],
            "_n_features_out": n_clusters,
            "_fit_mean": move(mean, work.output),
            # What partial_fit continues from, as scikit-learn's does after fit; placed like
            # the other fitted arrays (k numbers).
            "_counts": _placed_counts(counts, work.output),
            "_batch_size": batch_size,
            "_n_since_last_reassign": since_reassign,
            "_fit_stats": {
                "namespace": namespace_name(xp),
                "device": str(device),
                "kernels": plan.kernels.name,
                "seconds": time.perf_counter() - started,
                "best_run": best_run,
                **({"cluster_sizes": cluster_sizes_of(labels, n_clusters, xp=xp)} if labels is not None else {}),
            },
        }
        if labels is not None:
            fitted["labels_"] = move(labels, work.output)
        if names is not None:
            fitted["feature_names_in_"] = names
        for attribute, value in fitted.items():
            setattr(self, attribute, value)
        for stale, keep in (("feature_names_in_", names is not None), ("labels_", labels is not None)):
            if not keep and hasattr(self, stale):
                delattr(self, stale)  # from an earlier fit
        return self

    def fit_predict(self, X: Array, y: object = None, sample_weight: Array | None = None) -> Array:
        """Fit and return the label of each row (``labels_``; with ``compute_labels=False``,
        ``predict(X)``, where scikit-learn fails for want of ``labels_``)."""
        self.fit(X, sample_weight=sample_weight)
        return self.labels_ if self.compute_labels else self.predict(X)

    # ------------------------------------------------------------------ partial_fit

    def partial_fit(self, X: Array, y: object = None, sample_weight: Array | None = None) -> MiniBatchKMeans:
        """Update the centers with one mini-batch: the rows of X.

        The first call (on a model not fitted yet) initialises the centers from this chunk
        (``init`` on ``init_size`` of its rows; ``n_init`` is not used, as in scikit-learn)
        and takes the shift the passes read rows with from it (the chunk's rounded mean; see
        the class notes). Each call is one step: ``n_steps_`` grows by one. After ``fit``,
        ``partial_fit`` continues from the fitted centers and counts.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            A chunk of any array-API namespace and device (it need not be the previous
            chunks'); at least ``n_clusters`` rows in the first call.
        y : ignored
        sample_weight : array of shape (n_samples,), optional
            Weights of the rows in the update (not used by an array or callable ``init``).

        Returns
        -------
        self
        """
        config = get_config()
        with capped_threads(config["n_threads"]):
            return self._partial_fit(X, sample_weight, config)

    def _partial_fit(self, X: Array, sample_weight: Array | None, config: dict) -> MiniBatchKMeans:
        started = time.perf_counter()
        name = type(self).__name__
        n_clusters, _ = self._check_params()
        # The generator lives across calls, as in scikit-learn.
        fresh_rng = check_random_state(self.random_state)
        rng = self.__dict__.get("_random_state")
        rng = fresh_rng if rng is None else rng
        first_call = not self.__sklearn_is_fitted__()
        names = feature_names(X)
        if not first_call:
            check_feature_names(X, getattr(self, "feature_names_in_", None), name)
        X_in = check_data(X, estimator_name=name)
        X_in = as_working(X_in, xp=namespace_and_device(X_in)[0])
        if first_call:
            check_n_samples(X_in, n_clusters)
            init_centers = check_centers(self.init, X_in, n_clusters) if is_array_like(self.init) else None
        else:
            init_centers = None
            check_n_features(X_in, self.n_features_in_, name)
            if self.cluster_centers_.shape[0] != n_clusters:
                raise ValueError(
                    f"n_clusters={n_clusters} but this {name} was fitted with "
                    f"{self.cluster_centers_.shape[0]} clusters; call fit to start again."
                )
            # The model keeps the dtype of its first chunk.
            input_xp = namespace_and_device(X_in)[0]
            counts = to_host_numpy(self._counts).copy()
            model_dtype = input_xp.float32 if counts.dtype == np.float32 else input_xp.float64
            if X_in.dtype != model_dtype:
                X_in = input_xp.astype(X_in, model_dtype)
        weights = check_sample_weight(sample_weight, X_in)

        work = prepare(X_in, weights, config=config, n_columns=n_clusters)
        X, weights, xp, device = work.X, work.weights, work.plan.xp, work.plan.device
        spherical = self.metric == "cosine"
        if spherical:
            X, init_centers = unit_data(X, init_centers, xp=xp)
        if first_call:
            batch_size, init_size = self._sizes(X.shape[0], n_clusters)
            # There is no whole data to take the mean of: the first chunk's serves for good.
            # Unit rows need no centering.
            mean = xp.zeros_like(X[0, :]) if spherical else _shift(X, xp=xp)[0]
            plan = work.plan.centered(mean)
            if init_centers is not None:
                init_centers = move(init_centers, (xp, device)) - mean
            # The init's subsample is evaluated where a fit's steps would run (see
            # _StepPlacement); the step over this chunk is a pass in the chunk's own plan.
            steps = _StepPlacement(plan, n_clusters, config)
            centers = self._initial_centers(
                X, weights, n_clusters, init_size, rng, plan=plan, steps=steps,
                init_centers=init_centers,
            )
            centers = move(centers, (xp, device))
            host_dtype = np.dtype(np.float32) if X.dtype == xp.float32 else np.dtype(np.float64)
            counts, since_reassign = np.zeros(n_clusters, dtype=host_dtype), 0
        else:
            # The k × d centers (and the mean) move to the chunk, never the chunk to them.
            placement = (xp, device)
            stored_mean = getattr(self, "_fit_mean", None)
            centers = xp.astype(move(self.cluster_centers_, placement), X.dtype, copy=False)
            mean = (
                xp.mean(centers, axis=0) if stored_mean is None
                else xp.astype(move(stored_mean, placement), X.dtype, copy=False)
            )
            plan = work.plan.centered(mean)
            centers = centers - mean
            batch_size = self._batch_size
            since_reassign = self._n_since_last_reassign

        reassign, since_reassign = _reassign_due(counts, since_reassign, batch_size, n_clusters)
        centers, counts, _ = _minibatch_step(
            X, weights, centers, counts, plan=plan, rng=rng, reassign=reassign,
            reassignment_ratio=self.reassignment_ratio, verbose=bool(self.verbose), spherical=spherical,
        )
        fitted: dict[str, Any] = {}
        if self.compute_labels:
            labels, fitted["inertia_"] = labels_and_inertia(X, weights, centers, plan=plan, spherical=spherical)
            fitted["labels_"] = move(labels, work.output)
        (centers,) = materialize(centers + mean, xp=xp)
        fitted.update({
            "cluster_centers_": move(centers, work.output),
            "n_steps_": getattr(self, "n_steps_", 0) + 1,
            "_n_features_out": n_clusters,
            "_counts": _placed_counts(counts, work.output),
            "_n_since_last_reassign": since_reassign,
            "_random_state": rng,
            "_fit_stats": {
                "namespace": namespace_name(xp),
                "device": str(device),
                "kernels": plan.kernels.name,
                "seconds": time.perf_counter() - started,
            },
        })
        if first_call:
            fitted.update({
                "n_features_in_": X.shape[1],
                "_fit_mean": move(mean, work.output),
                "_batch_size": batch_size,
            })
            if names is not None:
                fitted["feature_names_in_"] = names
        for attribute, value in fitted.items():
            setattr(self, attribute, value)
        if first_call and names is None and hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return self

    # ------------------------------------------------------------------ persistence

    def save(self, path: Any) -> None:
        """Write the fitted model to ``path``, a ``.npz`` file (see :meth:`KMeans.save`).

        The generator that ``partial_fit`` carries between calls is not saved (a model file
        holds no objects): a loaded model's next ``partial_fit`` starts a generator from
        ``random_state``, as a ``partial_fit`` after ``fit`` does.
        """
        from ._persistence import save_model

        # A plain copy of the attributes, not copy.copy: that would pickle device arrays.
        saved = object.__new__(type(self))
        saved.__dict__.update(self.__dict__)
        saved.__dict__.pop("_random_state", None)
        save_model(saved, path)
