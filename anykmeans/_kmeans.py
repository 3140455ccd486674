"""The KMeans estimator: scikit-learn's API and semantics on any array-API namespace."""

from __future__ import annotations

import functools
import numbers
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import array_api_compat
import numpy as np

from ._config import get_config
from ._exceptions import ConvergenceWarning, InvalidParameterError, NotFittedError, user_stacklevel
from ._lloyd import LloydResult, assign_labels, column_means, labels_and_inertia, lloyd, mean_variance
from ._metric import COSINE_PER_SQUARED_DISTANCE, check_metric, unit_data, unit_rows
from ._params import ParamsMixin
from ._pickling import portable_state, restored_state
from ._prepare import Work, prepare
from ._progress import FitProgress
from ._kmeans_parallel import kmeans_parallel
from ._seeding import greedy_kmeans_plusplus, random_rows
from ._set_output import SetOutputMixin
from ._threads import capped_threads
from ._arrays import namespace_name, working_dtype
from ._transfers import materialize, move, to_host_numpy
from ._typing import Array, Namespace
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

_INIT_METHODS = ("k-means++", "k-means||", "random")


def is_array_like(obj: Any) -> bool:
    return not isinstance(obj, str) and not callable(obj) and (
        hasattr(obj, "shape") or hasattr(obj, "__array__") or isinstance(obj, (list, tuple))
    )


def runs_for_init(init: Any, n_init: int, asked: Any, estimator_name: str) -> int:
    """The runs of a fit: one for explicit initial centers (with scikit-learn's warning when
    ``n_init`` was set to more), else ``n_init``."""
    if not is_array_like(init) or n_init == 1:
        return n_init
    if asked != "auto":
        warnings.warn(
            "Explicit initial center position passed: performing only one init in "
            f"{estimator_name} instead of n_init={n_init}.",
            RuntimeWarning,
            stacklevel=user_stacklevel(),
        )
    return 1


@functools.cache
def _sklearn_compatible_not_fitted_error() -> type:
    from sklearn.exceptions import NotFittedError as SklearnNotFittedError

    return type("NotFittedError", (NotFittedError, SklearnNotFittedError), {})


def _not_fitted_error_class() -> type:
    """Our NotFittedError; when the user has imported scikit-learn, one that is also
    scikit-learn's, so that ``except sklearn.exceptions.NotFittedError`` catches it.
    (scikit-learn is never imported here just for this.)"""
    if "sklearn.exceptions" in sys.modules:
        return _sklearn_compatible_not_fitted_error()
    return NotFittedError


def _same_clustering(labels: Array, other: Array, /, *, xp: Namespace) -> bool:
    """Whether ``labels`` determine ``other`` (the same partition up to renaming)."""
    order = xp.argsort(labels, stable=True)
    first, second = xp.take(labels, order), xp.take(other, order)
    same_group = first[1:] == first[:-1]
    return bool(xp.all(~same_group | (second[1:] == second[:-1])))


def cluster_sizes_of(labels: Array, n_clusters: int, /, *, xp: Namespace) -> list[int]:
    """Rows per cluster, as Python ints: k numbers leave the device, not the labels."""
    if isinstance(labels, np.ndarray):
        # A count per cluster is O(n); the sort below costs as much as a few Lloyd passes.
        return np.bincount(labels, minlength=n_clusters).tolist()
    if array_api_compat.is_dask_array(labels):
        import dask.array as da

        # Counted block by block on the workers; k numbers come back.
        return da.bincount(labels, minlength=n_clusters).compute().tolist()
    ordered = xp.sort(labels)
    bounds = xp.arange(n_clusters + 1, dtype=ordered.dtype, device=array_api_compat.device(ordered))
    return np.diff(to_host_numpy(xp.searchsorted(ordered, bounds))).tolist()


class KMeans(SetOutputMixin, ParamsMixin):
    """K-means clustering with Lloyd's algorithm, on any array-API namespace and device.

    A drop-in for :class:`sklearn.cluster.KMeans`: same parameters, attributes, errors and,
    from the same initial centers, the same results. Input of any array-API library (NumPy,
    PyTorch, CuPy, array-api-strict, …) is clustered where it lives (or on the device the
    ``device`` setting names), and fitted attributes come back in the input's namespace,
    device and dtype (or where the ``output`` setting says).

    Parameters
    ----------
    n_clusters : int, default=8
        The number of clusters and of centers.
    init : {'k-means++', 'k-means||', 'random'}, callable or array of shape \
            (n_clusters, n_features), default='k-means++'
        ``'k-means++'``: greedy k-means++ with ``2 + ⌊ln k⌋`` local trials per center, sampled
        in proportion to ``sample_weight`` (one pass over the data per center).
        ``'k-means||'``: scalable k-means++ (Bahmani et al., 2012): a few rounds of
        oversampled candidates, one pass each, then weighted k-means++ on the candidates;
        the initialisation for large k and data that is read block by block (Dask).
        ``'random'``: distinct rows drawn at random (weighted by ``sample_weight`` when
        given). An array (of X's namespace and device, or
        a list) gives the centers. A callable is called as
        ``init(X, n_clusters, random_state=rng)`` with the mean-centered data, as
        scikit-learn does, and returns centers in those coordinates.
    n_init : 'auto' or int, default='auto'
        Number of runs from different initial centers; the lowest inertia wins. ``'auto'``
        is 1 for ``'k-means++'`` and an array, 10 otherwise.
    max_iter : int, default=300
        Maximum number of Lloyd iterations per run.
    tol : float, default=1e-4
        Convergence when the squared shift of the centers is at most ``tol`` times the mean
        per-feature variance of X. ``tol=0`` stops only when the labels stop changing.
    verbose : int, default=0
        Print the inertia of each iteration.
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        Seeds the host generator that draws the initial centers; an int makes fits
        reproducible. An int or None becomes a ``numpy.random.Generator``.
    copy_x : bool, default=True
        Accepted for compatibility; the input is never modified either way.
    algorithm : {'lloyd', 'elkan'}, default='lloyd'
        ``'elkan'`` gives Lloyd's results with fewer distance evaluations: Elkan's bounds
        (``n_samples × n_clusters`` of them, in X's dtype) rule out centers that cannot be
        nearest. It pays on well-separated clusters in many dimensions and costs time on
        overlapping ones. The bounds run in the ``numba`` kernels (the CPU default when
        Numba is installed) for data with 32 features or more; elsewhere ``'elkan'`` runs
        Lloyd's passes.
    metric : {'euclidean', 'cosine'}, default='euclidean'
        ``'cosine'``: spherical k-means. Rows are scaled to unit length (a row of zero length
        is an error), centers are put back on the unit sphere after each update, and the
        inertia, ``score`` and ``transform`` are in cosine distances ``1 − cos(x, c)``. The
        seeding is by cosine distance. The fit keeps one normalised copy of X (none when
        the rows already have unit length, nor for Dask input, whose blocks are scaled as
        they are read).
    oversampling_factor : float, default=2.0
        For ``init='k-means||'``: each round samples about ``oversampling_factor ×
        n_clusters`` candidate centers (dask-ml's parameter).
    init_max_iter : int or None, default=None
        For ``init='k-means||'``: the number of sampling rounds, each one pass over the
        data (dask-ml's parameter); ``None`` is 5, Bahmani et al.'s choice for an
        oversampling factor of 2: with the first center's pass, 6 passes whatever
        ``n_clusters`` is.

    Attributes
    ----------
    cluster_centers_ : array of shape (n_clusters, n_features)
    labels_ : array of shape (n_samples,)
    inertia_ : float
        Weighted sum of squared distances of the samples to their closest center (with
        ``metric='cosine'``, of cosine distances).
    n_iter_ : int
        Iterations of the best run.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        The column names of X, when it was a DataFrame (pandas, polars) with string names.
        ``predict``, ``transform`` and ``score`` check new DataFrames against them, as
        scikit-learn does.
    inertia_history_ : list of ndarray
        One array per run of ``n_init``: the inertia after each E-step (what ``verbose``
        prints). ``anykmeans.plot.plot_inertia`` draws it.

    Examples
    --------
    >>> import numpy as np
    >>> from anykmeans import KMeans
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [10, 2], [10, 4], [10, 0]], dtype=float)
    >>> km = KMeans(n_clusters=2, random_state=0).fit(X)
    >>> sorted(km.cluster_centers_.tolist())
    [[1.0, 2.0], [10.0, 2.0]]
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | Callable | Any = "k-means++",
        n_init: str | int = "auto",
        max_iter: int = 300,
        tol: float = 1e-4,
        verbose: int = 0,
        random_state: Any = None,
        copy_x: bool = True,
        algorithm: str = "lloyd",
        metric: str = "euclidean",
        oversampling_factor: float = 2.0,
        init_max_iter: int | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.verbose = verbose
        self.random_state = random_state
        self.copy_x = copy_x
        self.algorithm = algorithm
        self.metric = metric
        self.oversampling_factor = oversampling_factor
        self.init_max_iter = init_max_iter

    # ------------------------------------------------------------------ validation

    def _invalid(self, name: str, expected: str, value: Any) -> InvalidParameterError:
        return InvalidParameterError(
            f"The {name!r} parameter of {type(self).__name__} must be {expected}. "
            f"Got {value!r} instead."
        )

    def _check_params(self) -> tuple[int, int]:
        """Validate the parameters; returns ``(n_clusters, n_init)``."""
        name = type(self).__name__
        n_clusters = check_int(self.n_clusters, "n_clusters", name)
        init = self.init
        if not (init in _INIT_METHODS if isinstance(init, str) else callable(init) or is_array_like(init)):
            raise self._invalid("init", "'k-means++', 'k-means||', 'random', a callable or an array-like", init)
        if self.n_init == "auto":
            n_init = 10 if (isinstance(init, str) and init == "random") or callable(init) else 1
        else:
            n_init = check_int(self.n_init, "n_init", name)
        check_int(self.max_iter, "max_iter", name)
        tol = self.tol
        if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not tol >= 0:
            raise self._invalid("tol", "a float in the range [0, inf)", tol)
        verbose = self.verbose
        if not isinstance(verbose, bool) and not (isinstance(verbose, numbers.Integral) and verbose >= 0):
            raise self._invalid("verbose", "an int in the range [0, inf) or a bool", verbose)
        if not isinstance(self.copy_x, (bool, np.bool_)):
            raise self._invalid("copy_x", "a bool", self.copy_x)
        factor = self.oversampling_factor
        if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or not factor > 0:
            raise self._invalid("oversampling_factor", "a float in the range (0, inf)", factor)
        if self.init_max_iter is not None:
            check_int(self.init_max_iter, "init_max_iter", name)
        if self.algorithm not in ("lloyd", "elkan"):
            raise self._invalid("algorithm", "'lloyd' or 'elkan'", self.algorithm)
        check_metric(self.metric, name)
        return n_clusters, runs_for_init(init, n_init, self.n_init, name)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "cluster_centers_")

    def _check_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            raise _not_fitted_error_class()(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator."
            )

    # ------------------------------------------------------------------ fitting

    def fit(self, X: Array, y: object = None, sample_weight: Array | None = None) -> KMeans:
        """Compute k-means clustering.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            Training data, of any array-API namespace (or array-like, taken as NumPy).
        y : ignored
        sample_weight : array of shape (n_samples,), optional
            Non-negative weights; ``None`` weighs every sample 1. Not used by an array or
            callable ``init``.

        Returns
        -------
        self
        """
        config = get_config()
        with capped_threads(config["n_threads"]):
            return self._fit(X, sample_weight, config)

    def _fit(self, X: Array, sample_weight: Array | None, config: dict) -> KMeans:
        started = time.perf_counter()
        n_clusters, n_init = self._check_params()
        # All parameters before the data, as scikit-learn reports them.
        rng = check_random_state(self.random_state)
        names = feature_names(X)
        input_dtype = half_dtype(X)
        X_in = check_data(X, estimator_name=type(self).__name__)
        check_n_samples(X_in, n_clusters)
        weights = check_sample_weight(sample_weight, X_in)
        init = self.init
        init_centers = check_centers(init, X_in, n_clusters) if is_array_like(init) else None

        work = prepare(X_in, weights, config=config, n_columns=n_clusters)
        X, weights, xp = work.X, work.weights, work.plan.xp
        spherical = self.metric == "cosine"
        if spherical:
            X, init_centers = unit_data(X, init_centers, xp=xp)

        # Work on centered data, as scikit-learn does: the expanded distance form loses
        # precision far from the origin. The passes center each chunk as they read it, so
        # no centered copy of X is made. (Unit rows need no centering; their shift is zero.)
        (mean,) = materialize(column_means(X, plan=work.plan), xp=xp)  # once, not in every lazy pass
        plan = work.plan.centered(mean)
        tol = mean_variance(X, plan=plan) * self.tol if self.tol else 0.0
        if spherical:
            mean = xp.zeros_like(mean)
            plan = work.plan.centered(mean)
        if init_centers is not None:
            init_centers = move(init_centers, (xp, plan.device)) - mean
        unit_weights = sample_weight is None

        best: LloydResult | None = None
        best_run, histories = 0, []
        progress = FitProgress(config["progress"], n_init=n_init, max_iter=self.max_iter, name=type(self).__name__)
        with progress:
            for run in range(n_init):
                progress.start_run(run)
                history: list[float] = []
                histories.append(history)
                if init_centers is not None:
                    centers = init_centers
                elif callable(init):
                    # A callable sees the centered data, as scikit-learn's does: only it needs the copy.
                    X_centered = X - mean
                    centers = check_centers(init(X_centered, n_clusters, random_state=rng), X, n_clusters)
                    del X_centered
                    if spherical:
                        centers = unit_rows(centers, xp=xp, what="The centers from init")
                elif init == "k-means++":
                    centers, _ = greedy_kmeans_plusplus(
                        X, weights, n_clusters, rng, plan=plan, on_step=progress.seeding_step
                    )
                elif init == "k-means||":
                    centers = kmeans_parallel(
                        X, weights, n_clusters, rng, plan=plan, oversampling_factor=float(self.oversampling_factor),
                        n_rounds=self.init_max_iter, on_step=progress.seeding_round,
                    )
                else:
                    centers = random_rows(X, None if unit_weights else weights, n_clusters, rng, plan=plan)
                if self.verbose:
                    print("Initialization complete")

                def on_iteration(index: int, value: float, history: list[float] = history) -> None:
                    history.append(value)
                    progress.iteration(index, value)

                result = lloyd(
                    X, weights, centers, plan=plan, max_iter=self.max_iter, tol=tol, verbose=bool(self.verbose),
                    elkan=self.algorithm == "elkan", spherical=spherical, on_iteration=on_iteration,
                )
                progress.end_run(result.n_iter, result.inertia)
                if best is None or (
                    result.inertia < best.inertia and not _same_clustering(result.labels, best.labels, xp=xp)
                ):
                    best, best_run = result, run

        cluster_sizes = cluster_sizes_of(best.labels, n_clusters, xp=xp)
        distinct = sum(size > 0 for size in cluster_sizes)
        if distinct < n_clusters:
            warnings.warn(
                f"Number of distinct clusters ({distinct}) found smaller than n_clusters "
                f"({n_clusters}). Possibly due to duplicate points in X.",
                ConvergenceWarning,
                stacklevel=3,
            )
        # Everything is computed before anything is set: an interrupted or failed fit leaves
        # the estimator as it was.
        # Lazy (Dask) results are evaluated once here, not kept as graphs over X.
        centers, labels, mean = materialize(best.centers + mean, best.labels, mean, xp=xp)
        fitted = {
            # float16 / bfloat16 input: clustered in float32, centers in its own dtype.
            "cluster_centers_": in_dtype(move(centers, work.output), input_dtype),
            "labels_": move(labels, work.output),
            "inertia_": best.inertia,
            "n_iter_": best.n_iter,
            "n_features_in_": X.shape[1],
            "_n_features_out": n_clusters,
            # predict, transform and score read rows centered as the fit did: the expanded
            # distances of far-off-center data keep their precision.
            "_fit_mean": move(mean, work.output),
            "inertia_history_": [np.asarray(history, dtype=np.float64) for history in histories],
            "_fit_stats": {
                "namespace": namespace_name(xp),
                "device": str(plan.device),
                "kernels": plan.kernels.name,
                "seconds": time.perf_counter() - started,
                "best_run": best_run,
                "cluster_sizes": cluster_sizes,
            },
        }
        if names is not None:
            fitted["feature_names_in_"] = names
        for name, value in fitted.items():
            setattr(self, name, value)
        if names is None and hasattr(self, "feature_names_in_"):
            del self.feature_names_in_  # from an earlier fit on a DataFrame
        return self

    def fit_predict(self, X: Array, y: object = None, sample_weight: Array | None = None) -> Array:
        """Fit and return ``labels_``."""
        return self.fit(X, sample_weight=sample_weight).labels_

    def fit_transform(self, X: Array, y: object = None, sample_weight: Array | None = None) -> Array:
        """Fit, then return the distances of X to the centers (see :meth:`transform`)."""
        return self.fit(X, sample_weight=sample_weight).transform(X)

    # ------------------------------------------------------------------ fitted model

    def _prepare(self, X: Array, sample_weight: Array | None, config: dict) -> tuple[Work, Array]:
        """Validate new data; returns it placed for the work (with its weights, a plan that
        reads rows centered by the fit's mean, and where results go) and the centers, in
        the same coordinates, where the work runs."""
        self._check_fitted()
        check_feature_names(X, getattr(self, "feature_names_in_", None), type(self).__name__)
        X = check_data(X, estimator_name=type(self).__name__)
        check_n_features(X, self.n_features_in_, type(self).__name__)
        weights = check_sample_weight(sample_weight, X)
        work = prepare(X, weights, config=config, n_columns=self._n_features_out)
        if self.metric == "cosine":
            work = work._replace(X=unit_rows(work.X, xp=work.plan.xp))
        # The k × d centers (and the d means) move to the data, never the data to the centers.
        xp, placement, dtype = work.plan.xp, (work.plan.xp, work.plan.device), working_dtype(work.X)
        centers = xp.astype(move(self.cluster_centers_, placement), dtype, copy=False)
        # A model whose centers were set by hand may lack the fit's mean: its centers' mean
        # serves as well.
        mean = getattr(self, "_fit_mean", None)
        mean = xp.mean(centers, axis=0) if mean is None else xp.astype(move(mean, placement), dtype, copy=False)
        return work._replace(plan=work.plan.centered(mean)), centers - mean

    def predict(self, X: Array) -> Array:
        """Index of the closest center for each row of ``X`` (in X's namespace and device,
        unless the ``output`` setting names another). X may be on any device: the centers
        move to where the work runs, not the data."""
        config = get_config()
        with capped_threads(config["n_threads"]):
            work, centers = self._prepare(X, None, config)
            return move(assign_labels(work.X, centers, plan=work.plan), work.output)

    def transform(self, X: Array) -> Array:
        """Distances of each row of ``X`` to each center, shape (n, n_clusters): Euclidean,
        or with ``metric='cosine'`` cosine distances ``1 − cos``."""
        config = get_config()
        with capped_threads(config["n_threads"]):
            work, centers = self._prepare(X, None, config)
            squared = work.plan.pairwise(work.X, centers)
            if self.metric == "cosine":
                distances = move(squared * COSINE_PER_SQUARED_DISTANCE, work.output)
            else:
                distances = move(work.plan.xp.sqrt(squared), work.output)
        return self._wrap_output(distances, X)

    def score(self, X: Array, y: object = None, sample_weight: Array | None = None) -> float:
        """Opposite of the (weighted) inertia of ``X`` on the fitted centers."""
        config = get_config()
        with capped_threads(config["n_threads"]):
            work, centers = self._prepare(X, sample_weight, config)
            _, total = labels_and_inertia(work.X, work.weights, centers, plan=work.plan, spherical=self.metric == "cosine")
            return -total

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the output columns of :meth:`transform`: ``kmeans0``, ``kmeans1``, …"""
        self._check_fitted()
        if input_features is not None and len(input_features) != self.n_features_in_:
            raise ValueError(
                f"input_features should have length equal to number of features "
                f"({self.n_features_in_}), got {len(input_features)}"
            )
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(self._n_features_out)], dtype=object)

    def save(self, path: Any) -> None:
        """Write the fitted model to ``path``, a ``.npz`` file that :func:`anykmeans.load`
        reads without pickle (the layout is in :mod:`anykmeans._persistence`)."""
        from ._persistence import save_model

        save_model(self, path)

    def __getstate__(self) -> dict[str, Any]:
        # Arrays on a CUDA device are pickled as NumPy arrays that remember their device, so
        # that the pickle opens on machines without it (see _pickling).
        return portable_state(self.__dict__)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(restored_state(state))

    def _repr_html_(self) -> str:
        """The notebook view: the parameters that differ from the defaults and, once fitted,
        the clusters, the iterations and where and how long the fit ran."""
        from ._repr import estimator_html

        return estimator_html(self)

    def __sklearn_tags__(self) -> Any:
        # scikit-learn is only needed by whoever asks for the tags.
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags

        return Tags(
            estimator_type="clusterer",
            target_tags=TargetTags(required=False),
            transformer_tags=TransformerTags(preserves_dtype=["float64", "float32"]),
            input_tags=InputTags(),
            array_api_support=True,
        )

