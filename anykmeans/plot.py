"""Plots for a k-means fit: the clusters, the inertia per iteration and the elbow curve.

Each function draws with matplotlib (an optional dependency: ``pip install
"anykmeans[notebook]"``) on the ``ax`` it is given, or on a new figure, and returns that
Axes. Data of any array-API library and device is accepted; the computations (labels,
principal components, fits) run where the data lives and only what is drawn (a subsample of
rows, their 2-D coordinates) is copied to the host.

Example
-------
>>> import numpy as np
>>> from anykmeans import KMeans
>>> from anykmeans.plot import plot_clusters, plot_elbow, plot_inertia
>>> X = np.random.default_rng(0).normal(size=(500, 4))
>>> km = KMeans(n_clusters=3, n_init=4, random_state=0).fit(X)
>>> ax = plot_clusters(X, km)          # 4 features: drawn on the first two principal components
>>> ax = plot_inertia(km)              # one line per run of n_init, the kept one emphasised
>>> ax = plot_elbow(X, range(1, 7))    # inertia (and silhouette) against k
>>> ax.figure.savefig("elbow.png")     # doctest: +SKIP
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._arrays import as_working, namespace_and_device, working_dtype
from ._transfers import materialize, move, to_host_numpy
from ._validation import check_data, check_feature_names

__all__ = ["plot_clusters", "plot_elbow", "plot_inertia"]

_NEEDS_MATPLOTLIB = 'anykmeans.plot needs matplotlib: pip install "anykmeans[notebook]"'

# plot_inertia switches to a logarithmic y axis when the values span more than this factor.
_LOG_SCALE_SPAN = 100.0
# Cluster indices are written next to the centers up to this many clusters.
_MAX_ANNOTATED_CENTERS = 20
# plot_inertia lists every run in the legend up to this many runs.
_MAX_LEGEND_RUNS = 10


# ---------------------------------------------------------------------------- helpers


def _matplotlib() -> Any:
    """The matplotlib package, or the ImportError that says how to install it."""
    try:
        import matplotlib
        import matplotlib.ticker  # noqa: F401 - used through the package
    except ImportError as exc:
        raise ImportError(_NEEDS_MATPLOTLIB) from exc
    return matplotlib


def _axes_or_new(ax: Any) -> Any:
    """``ax`` itself, or the Axes of a new figure (pyplot is imported only then, so that
    drawing on a given Axes does not choose a backend). A new figure's layout leaves room
    for the labels (the twin axis of plot_elbow has one on the right)."""
    if ax is not None:
        return ax
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(_NEEDS_MATPLOTLIB) from exc
    _, ax = plt.subplots(layout="constrained")
    return ax


def _host_rng(random_state: Any) -> np.random.Generator:
    """A NumPy Generator from None, an int, a Generator or a legacy RandomState."""
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
    return np.random.default_rng(random_state)


def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}.")
    return int(value)


def _subsample_indices(n_rows: int, size: int, random_state: Any) -> np.ndarray | None:
    """Sorted indices of ``size`` distinct rows drawn uniformly on the host, or None when
    every row is kept. Sorting keeps the rows' order (and Dask reads its blocks in order)."""
    if n_rows <= size:
        return None
    return np.sort(_host_rng(random_state).choice(n_rows, size=size, replace=False))


def _take_rows(X: Any, indices: np.ndarray | None) -> Any:
    """The rows ``indices`` of X, taken on X's device (only the indices travel)."""
    if indices is None:
        return X
    xp, device = namespace_and_device(X)
    (rows,) = materialize(xp.take(X, xp.asarray(indices, device=device), axis=0), xp=xp)
    return rows


def _predict_rows(km: Any, data: Any, rows: Any) -> np.ndarray:
    """The labels of ``rows`` (taken from ``data``, the user's input) as a host array.

    The model's check of column names is made once, on ``data`` as given; ``rows`` is an
    array converted from it, whose lack of names is no reason to warn."""
    check_feature_names(data, getattr(km, "feature_names_in_", None), type(km).__name__)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names", category=UserWarning)
        labels = km.predict(rows)
    return to_host_numpy(labels).astype(np.intp, copy=False)


def _feature_names(X: Any, km: Any, n_features: int) -> list[str]:
    """Column names of a DataFrame X, else the names the model was fitted with, else
    ``feature i``."""
    for names in (getattr(X, "columns", None), getattr(km, "feature_names_in_", None)):
        if names is not None and len(names) == n_features:
            return [str(name) for name in names]
    return [f"feature {i}" for i in range(n_features)]


def _cluster_palette(matplotlib: Any, n_clusters: int) -> np.ndarray:
    """One RGB colour per cluster (k × 3): qualitative maps while they have enough colours, then
    evenly spaced samples of a continuous map."""
    if n_clusters <= 10:
        return np.asarray(matplotlib.colormaps["tab10"].colors[:n_clusters], dtype=float)[:, :3]
    if n_clusters <= 20:
        return np.asarray(matplotlib.colormaps["tab20"].colors[:n_clusters], dtype=float)[:, :3]
    return matplotlib.colormaps["turbo"](np.linspace(0.0, 1.0, n_clusters))[:, :3]


def _principal_axes(X: Any) -> tuple[Any, Any, np.ndarray]:
    """The column means of X (on its device), its first two principal directions (a d × 2
    array on its device, each direction's largest-magnitude entry positive so that the
    picture does not flip between runs) and their shares of the total variance.

    Only the d × d covariance comes to the host, for the eigendecomposition."""
    xp, device = namespace_and_device(X)
    n_rows = X.shape[0]
    mean = xp.mean(X, axis=0)
    centered = X - mean
    covariance = xp.matmul(xp.matrix_transpose(centered), centered) / max(n_rows - 1, 1)
    eigenvalues, eigenvectors = np.linalg.eigh(to_host_numpy(covariance).astype(np.float64))
    # eigh sorts ascending: the last two are the leading components.
    components = eigenvectors[:, ::-1][:, :2]
    leading = np.argmax(np.abs(components), axis=0)
    components = components * np.sign(components[leading, np.arange(2)])
    eigenvalues = np.clip(eigenvalues[::-1], 0.0, None)
    total = eigenvalues.sum()
    ratios = eigenvalues[:2] / total if total > 0 else np.zeros(2)
    components = xp.asarray(components, dtype=X.dtype, device=device)
    return mean, components, ratios


def _coordinates_2d(X: Any, centers: Any, names: list[str], rng: np.random.Generator) -> tuple:
    """Host (n, 2) and (k, 2) coordinates of the rows and centers, and the axis labels.

    2 features: drawn as they are. 1 feature: against a random vertical jitter (the centers
    at 0), which shows where the rows are dense. More: the first two principal components
    of X, computed on X's device, the centers projected with the same mean and directions.
    """
    n_rows, n_features = X.shape
    if n_features == 2:
        return to_host_numpy(X), to_host_numpy(centers), names
    if n_features == 1:
        points = np.column_stack([to_host_numpy(X)[:, 0], rng.uniform(-1.0, 1.0, n_rows)])
        tips = np.column_stack([to_host_numpy(centers)[:, 0], np.zeros(centers.shape[0])])
        return points, tips, [names[0], "random jitter (no meaning)"]
    xp = namespace_and_device(X)[0]
    mean, components, ratios = _principal_axes(X)
    points = to_host_numpy(xp.matmul(X - mean, components))
    tips = to_host_numpy(xp.matmul(centers - mean, components))
    labels = [f"PC{i + 1} ({100 * ratio:.1f}% variance)" for i, ratio in enumerate(ratios)]
    return points, tips, labels


# ---------------------------------------------------------------------------- plots


def plot_clusters(X: Any, km: Any, *, ax: Any = None, max_points: int = 20_000, random_state: Any = 0) -> Any:
    """Scatter the rows of ``X`` coloured by their cluster, with the centers marked.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        Data of any array-API library and device, or array-like (a pandas DataFrame's
        column names label the axes). It need not be the training data.
    km : fitted :class:`anykmeans.KMeans`
        Its ``predict`` gives the colours; its centers (of any namespace) are drawn as black
        crosses, with the cluster index next to them for up to 20 clusters.
    ax : matplotlib Axes, optional
        Where to draw; a new figure when None.
    max_points : int, default=20_000
        Above this many rows a uniform random subsample of that size is drawn: the rows
        ``numpy.random.default_rng(random_state).choice(n_samples, max_points,
        replace=False)``, sorted, taken on X's device (only they come to the host). The
        title says how many are shown.
    random_state : None, int or numpy.random.Generator, default=0
        Seeds the subsample (and the jitter of one-feature data).

    Returns
    -------
    matplotlib Axes

    Notes
    -----
    Two features are drawn as they are. One feature is drawn against a random vertical
    jitter in [-1, 1] (centers at 0): k-means clusters of one feature are intervals, and the
    jitter shows how dense they are. More features are projected on the first two principal
    components of the drawn rows, computed on X's device; the axis labels give the share of
    the variance each explains. Colours: ``tab10`` up to 10 clusters, ``tab20`` up to 20,
    evenly spaced samples of ``turbo`` beyond.
    """
    matplotlib = _matplotlib()
    km._check_fitted()
    max_points = _check_positive_int(max_points, "max_points")
    data = X
    X = check_data(X, estimator_name="plot_clusters")
    xp, device = namespace_and_device(X)
    n_rows, n_features = X.shape
    names = _feature_names(data, km, n_features)

    rng = _host_rng(random_state)
    shown = _take_rows(X, _subsample_indices(n_rows, max_points, rng))
    labels = _predict_rows(km, data, shown)
    # The shown rows and the centers in float32 for float16 data (its squares overflow).
    shown = as_working(shown, xp=xp)
    # The k × d centers go to the data's device (and dtype), never the data to the centers.
    centers = xp.astype(move(km.cluster_centers_, (xp, device)), working_dtype(X), copy=False)
    n_clusters = centers.shape[0]
    points, center_points, axis_labels = _coordinates_2d(shown, centers, names, rng)

    ax = _axes_or_new(ax)
    n_shown = points.shape[0]
    palette = _cluster_palette(matplotlib, n_clusters)
    # Smaller, lighter dots as the cloud grows, so that clusters stay readable; large clouds
    # are rasterised so that vector output (PDF, SVG) stays small.
    size = 20.0 if n_shown <= 1_000 else 6.0 if n_shown <= 10_000 else 2.0
    ax.scatter(
        points[:, 0], points[:, 1], c=palette[labels], s=size, linewidths=0,
        alpha=0.8 if n_shown > 1_000 else 1.0, rasterized=n_shown > 5_000,
    )
    ax.scatter(
        center_points[:, 0], center_points[:, 1], marker="X", s=200, c="black",
        edgecolors="white", linewidths=1.5, zorder=3, label="centers",
    )
    if n_clusters <= _MAX_ANNOTATED_CENTERS:
        for index, (x, y) in enumerate(center_points):
            ax.annotate(
                str(index), (x, y), xytext=(8, 8), textcoords="offset points", fontsize="small",
                fontweight="bold", bbox={"boxstyle": "round,pad=0.2", "fc": "white", "alpha": 0.7, "lw": 0},
            )
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    if n_features == 1:
        ax.set_yticks([])
    clusters = f"{n_clusters} cluster{'s' if n_clusters != 1 else ''}"
    rows = f"{n_shown:,} of {n_rows:,} points" if n_shown < n_rows else f"{n_rows:,} points"
    ax.set_title(f"k-means: {clusters}, {rows}")
    # A fixed corner: 'best' would scan every point of a large cloud.
    ax.legend(loc="upper right", fontsize="small")
    return ax


def plot_inertia(km: Any, *, ax: Any = None) -> Any:
    """The inertia after each iteration of every run of ``n_init``.

    Parameters
    ----------
    km : fitted :class:`anykmeans.KMeans`
        Reads ``km.inertia_history_`` (one array per run) and the index of the run that was
        kept.
    ax : matplotlib Axes, optional
        Where to draw; a new figure when None.

    Returns
    -------
    matplotlib Axes

    Notes
    -----
    One line per run, iterations numbered from 1. The kept run is drawn thick and labelled
    "kept run"; the others thin and grey, labelled "run i" (the legend lists them all up to
    10 runs, else one entry stands for the others). The y axis is logarithmic when the
    values span more than two decades (a factor of 100), linear otherwise.
    """
    matplotlib = _matplotlib()
    km._check_fitted()
    histories = getattr(km, "inertia_history_", None)
    if histories is None:
        raise ValueError(
            f"This {type(km).__name__} has no inertia_history_: only a model fitted with "
            "fit() records the inertia of its iterations."
        )
    histories = [np.asarray(history, dtype=np.float64) for history in histories]
    kept = int(getattr(km, "_fit_stats", {}).get("best_run", 0))

    ax = _axes_or_new(ax)
    others = []
    for run, history in enumerate(histories):
        if run != kept:
            (line,) = ax.plot(
                np.arange(1, history.size + 1), history, color="0.6", linewidth=1.0,
                marker="." if history.size <= 50 else None, label=f"run {run}",
            )
            others.append(line)
    # Drawn last, so that it lies on top of the others.
    history = histories[kept]
    (kept_line,) = ax.plot(
        np.arange(1, history.size + 1), history, color="C0", linewidth=2.5,
        marker="o" if history.size <= 50 else None, markersize=4, label="kept run", zorder=3,
    )
    values = np.concatenate(histories) if histories else np.empty(0)
    values = values[np.isfinite(values)]
    if values.size and values.min() > 0 and values.max() / values.min() > _LOG_SCALE_SPAN:
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("iteration")
    ax.set_ylabel("inertia")
    n_runs = len(histories)
    ax.set_title(f"inertia per iteration, {n_runs} run{'s' if n_runs != 1 else ''}")
    if len(others) < _MAX_LEGEND_RUNS:
        ax.legend(handles=[kept_line, *others])
    else:
        ax.legend(handles=[kept_line, others[0]], labels=["kept run", f"other runs ({len(others)})"])
    return ax


def _check_ks(ks: Any, n_samples: int) -> list[int]:
    """ks as a list of ints: a non-empty sequence of distinct ints in [1, n_samples]."""
    if isinstance(ks, (str, bytes)) or not isinstance(ks, (Sequence, np.ndarray)):
        raise ValueError(
            f"ks must be a non-empty sequence of ints (e.g. range(1, 11)), got {ks!r}."
        )
    ks = list(ks)
    if not ks:
        raise ValueError("ks must be a non-empty sequence of ints, got an empty one.")
    for k in ks:
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral):
            raise ValueError(f"ks must hold ints, got {k!r} ({type(k).__name__}).")
        if not 1 <= k <= n_samples:
            raise ValueError(f"Every k in ks must be in [1, n_samples={n_samples}], got {k}.")
    if len(set(ks)) != len(ks):
        raise ValueError(f"ks must not repeat a value, got {ks}.")
    return [int(k) for k in ks]


def _silhouette_function(silhouette: Any) -> Any:
    """sklearn.metrics.silhouette_score, or None when no silhouette is wanted (or 'auto'
    and scikit-learn is missing). Imported here: scikit-learn is optional."""
    if silhouette is False:
        return None
    if silhouette not in ("auto", True):
        raise ValueError(f"silhouette must be 'auto', True or False, got {silhouette!r}.")
    try:
        from sklearn.metrics import silhouette_score
    except ImportError as exc:
        if silhouette == "auto":
            return None
        raise ImportError(
            "plot_elbow(silhouette=True) needs scikit-learn: pip install scikit-learn"
        ) from exc
    return silhouette_score


def plot_elbow(
    X: Any,
    ks: Sequence[int],
    *,
    ax: Any = None,
    random_state: Any = 0,
    silhouette: bool | str = "auto",
    sample_size: int = 10_000,
    **kmeans_params: Any,
) -> Any:
    """Fit k-means for each k of ``ks`` and plot the inertia (and silhouette) against k.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        Data of any array-API library and device, or array-like. The fits run where it lives.
    ks : sequence of int
        Distinct numbers of clusters, each in [1, n_samples]; drawn in the given order.
    ax : matplotlib Axes, optional
        Where to draw; a new figure when None. The returned Axes holds the inertia; the
        silhouette, when drawn, is on a twin y axis (``ax.twinx()``).
    random_state : None, int or numpy.random.Generator, default=0
        Passed to every :class:`anykmeans.KMeans`; also seeds the silhouette sample.
    silhouette : 'auto', True or False, default='auto'
        Also draw the mean silhouette coefficient (k ≥ 2) of the sampled rows. 'auto': when
        scikit-learn is installed; True: scikit-learn is required. It is NaN (a gap in the
        line) where the sampled rows fall in fewer than 2 clusters or in as many as rows.
    sample_size : int, default=10_000
        The silhouette is computed on at most this many rows (the same rows for every k:
        ``numpy.random.default_rng(random_state).choice(n_samples, sample_size,
        replace=False)``, sorted), copied to the host; their labels are predicted on X's
        device.
    **kmeans_params
        Other parameters of :class:`anykmeans.KMeans` (``n_init``, ``max_iter``, …).

    Returns
    -------
    matplotlib Axes
    """
    matplotlib = _matplotlib()
    from ._kmeans import KMeans

    for reserved in ("n_clusters", "random_state"):
        if reserved in kmeans_params:
            raise TypeError(f"plot_elbow sets {reserved} itself; do not pass it in kmeans_params.")
    sample_size = _check_positive_int(sample_size, "sample_size")
    silhouette_score = _silhouette_function(silhouette)
    X = check_data(X, estimator_name="plot_elbow")
    n_samples = X.shape[0]
    ks = _check_ks(ks, n_samples)

    sample = sample_host = None
    if silhouette_score is not None:
        sample = as_working(_take_rows(X, _subsample_indices(n_samples, sample_size, random_state)), xp=namespace_and_device(X)[0])
        sample_host = to_host_numpy(sample)

    inertias, silhouette_ks, silhouettes = [], [], []
    for k in ks:
        km = KMeans(n_clusters=k, random_state=random_state, **kmeans_params).fit(X)
        inertias.append(float(km.inertia_))
        if sample is not None and k >= 2:
            labels = to_host_numpy(km.predict(sample))
            # The silhouette needs 2 to n - 1 distinct labels among the sampled rows.
            n_labels = np.unique(labels).size
            score = silhouette_score(sample_host, labels) if 2 <= n_labels < labels.size else np.nan
            silhouette_ks.append(k)
            silhouettes.append(float(score))

    ax = _axes_or_new(ax)
    (inertia_line,) = ax.plot(ks, inertias, "o-", color="C0", label="inertia")
    ax.set_xlabel("number of clusters k")
    ax.set_ylabel("inertia", color="C0")
    if len(ks) <= 20:
        ax.set_xticks(ks)
    else:
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    # Room above the axes for the legend.
    ax.set_title("elbow: inertia" + (" and silhouette" if silhouette_ks else "") + " against k", pad=24)
    handles, top = [inertia_line], ax
    if silhouette_ks:
        twin = ax.twinx()
        (silhouette_line,) = twin.plot(silhouette_ks, silhouettes, "s--", color="C1", label="silhouette")
        twin.set_ylabel("mean silhouette coefficient", color="C1")
        handles.append(silhouette_line)
        top = twin
    # Above the axes, where no curve can be hidden by it; on the topmost Axes, so that no
    # line is drawn over it.
    top.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    return ax
