"""anykmeans.plot: what is drawn (points, colours, centers, lines, labels), on every namespace."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import anykmeans  # noqa: E402
from anykmeans import KMeans, NotFittedError  # noqa: E402
from anykmeans.plot import plot_clusters, plot_elbow, plot_inertia  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _blobs(n_per_blob: int, n_features: int, n_blobs: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=5.0, size=(n_blobs, n_features))
    # Row order shuffled: prefixes and subsamples then see every blob.
    X = np.concatenate([center + rng.normal(size=(n_per_blob, n_features)) for center in centers])
    return X[rng.permutation(X.shape[0])]


def _points_and_centers(ax):
    """The scatter of the rows and the one of the centers."""
    centers = [c for c in ax.collections if c.get_label() == "centers"]
    points = [c for c in ax.collections if c.get_label() != "centers"]
    assert len(centers) == 1 and len(points) == 1
    return np.asarray(points[0].get_offsets()), points[0], np.asarray(centers[0].get_offsets())


def _pca_reference(X: np.ndarray, centers: np.ndarray):
    """Independent projection on the first two principal components (SVD of the centered
    rows), with the explained-variance shares."""
    mean = X.mean(axis=0)
    _, singular, vt = np.linalg.svd(X - mean, full_matrices=False)
    components = vt[:2].T
    ratios = singular**2 / np.sum(singular**2)
    return (X - mean) @ components, (centers - mean) @ components, ratios[:2]


def _assert_close_up_to_sign(actual: np.ndarray, expected: np.ndarray, *others, rtol=1e-6, atol=1e-6):
    """Columns equal up to one sign per column (the same sign for the ``others`` pairs)."""
    for j in range(expected.shape[1]):
        sign = 1.0 if np.dot(actual[:, j], expected[:, j]) >= 0 else -1.0
        np.testing.assert_allclose(actual[:, j], sign * expected[:, j], rtol=rtol, atol=atol)
        for other_actual, other_expected in others:
            np.testing.assert_allclose(other_actual[:, j], sign * other_expected[:, j], rtol=rtol, atol=atol)


def _assert_colours_follow_labels(collection, labels: np.ndarray) -> None:
    """One face colour per cluster present, the same for every row of a cluster."""
    colours = np.asarray(collection.get_facecolors())
    assert colours.shape[0] == labels.shape[0]
    assert np.unique(colours, axis=0).shape[0] == np.unique(labels).size
    for label in np.unique(labels):
        assert np.unique(colours[labels == label], axis=0).shape[0] == 1


# ---------------------------------------------------------------------------- plot_clusters


def test_clusters_two_features_draws_rows_and_centers():
    X = _blobs(100, 2)
    km = KMeans(n_clusters=3, random_state=0).fit(X)
    fig, given = plt.subplots()
    ax = plot_clusters(X, km, ax=given)
    assert ax is given
    points, collection, centers = _points_and_centers(ax)
    np.testing.assert_array_equal(points, X)
    np.testing.assert_allclose(centers, km.cluster_centers_)
    _assert_colours_follow_labels(collection, km.predict(X))
    assert ax.get_xlabel() == "feature 0" and ax.get_ylabel() == "feature 1"
    assert "3 clusters" in ax.get_title() and "300 points" in ax.get_title()
    # The cluster index is written next to each center.
    assert sorted(text.get_text() for text in ax.texts) == ["0", "1", "2"]


def test_clusters_new_figure_and_png(tmp_path):
    X = _blobs(50, 2)
    km = KMeans(n_clusters=3, random_state=0).fit(X)
    ax = plot_clusters(X, km)
    path = tmp_path / "clusters.png"
    ax.figure.savefig(path)
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 1000


def test_clusters_dataframe_column_names():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(_blobs(50, 2), columns=["height", "weight"])
    km = KMeans(n_clusters=3, random_state=0).fit(df)
    ax = plot_clusters(df, km)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("height", "weight")
    np.testing.assert_array_equal(_points_and_centers(ax)[0], df.to_numpy())


def test_clusters_feature_names_checked_as_predict_does():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(_blobs(50, 2), columns=["height", "weight"])
    km = KMeans(n_clusters=3, random_state=0).fit(df)
    # An array without names: the model's names label the axes, and the usual warning, once.
    with pytest.warns(UserWarning, match="does not have valid feature names") as record:
        ax = plot_clusters(df.to_numpy(), km)
    assert len(record) == 1
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("height", "weight")
    with pytest.raises(ValueError, match="feature names should match"):
        plot_clusters(df.rename(columns={"weight": "age"}), km)


def test_clusters_subsample_above_max_points():
    X = _blobs(1000, 2)
    km = KMeans(n_clusters=3, random_state=0).fit(X)
    ax = plot_clusters(X, km, max_points=500, random_state=7)
    points, collection, _ = _points_and_centers(ax)
    assert points.shape == (500, 2)
    # The documented draw: distinct rows, uniform, on the host, kept in order.
    rows = np.sort(np.random.default_rng(7).choice(3000, size=500, replace=False))
    np.testing.assert_array_equal(points, X[rows])
    _assert_colours_follow_labels(collection, km.predict(X[rows]))
    assert "500 of 3,000 points" in ax.get_title()
    # Same seed, same picture.
    again, _, _ = _points_and_centers(plot_clusters(X, km, max_points=500, random_state=7))
    np.testing.assert_array_equal(again, points)


def test_clusters_pca_projection_and_variance_labels():
    X = _blobs(100, 5)
    km = KMeans(n_clusters=3, random_state=0).fit(X)
    ax = plot_clusters(X, km)
    points, collection, centers = _points_and_centers(ax)
    expected_points, expected_centers, ratios = _pca_reference(X, km.cluster_centers_)
    _assert_close_up_to_sign(points, expected_points, (centers, expected_centers))
    assert centers.shape == (3, 2)
    assert ax.get_xlabel() == f"PC1 ({100 * ratios[0]:.1f}% variance)"
    assert ax.get_ylabel() == f"PC2 ({100 * ratios[1]:.1f}% variance)"
    _assert_colours_follow_labels(collection, km.predict(X))


def test_clusters_pca_sign_rule():
    # The documented sign: each component's largest-magnitude entry is positive, so the
    # picture never flips; no sign freedom is left in the comparison.
    X = _blobs(60, 4)
    km = KMeans(n_clusters=3, random_state=0).fit(X)
    points, _, centers = _points_and_centers(plot_clusters(X, km))
    mean = X.mean(axis=0)
    components = np.linalg.svd(X - mean, full_matrices=False)[2][:2].T
    components *= np.sign(components[np.argmax(np.abs(components), axis=0), [0, 1]])
    np.testing.assert_allclose(points, (X - mean) @ components, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(centers, (km.cluster_centers_ - mean) @ components, rtol=1e-6, atol=1e-8)


def test_clusters_one_feature_against_jitter():
    X = _blobs(80, 1)
    km = KMeans(n_clusters=3, random_state=0).fit(X)
    ax = plot_clusters(X, km)
    points, collection, centers = _points_and_centers(ax)
    np.testing.assert_array_equal(points[:, 0], X[:, 0])
    assert np.all(np.abs(points[:, 1]) <= 1.0) and np.ptp(points[:, 1]) > 0
    np.testing.assert_allclose(centers[:, 0], km.cluster_centers_[:, 0])
    np.testing.assert_array_equal(centers[:, 1], 0.0)
    assert ax.get_xlabel() == "feature 0"
    _assert_colours_follow_labels(collection, km.predict(X))


@pytest.mark.parametrize("n_clusters", [12, 25])
def test_clusters_many_clusters_get_distinct_colours(n_clusters):
    # A grid of well-separated points: every cluster is present.
    rng = np.random.default_rng(0)
    X = np.repeat(np.arange(n_clusters, dtype=float)[:, None] * 10.0, 20, axis=0)
    X = np.column_stack([X[:, 0] + rng.normal(size=X.shape[0]), rng.normal(size=X.shape[0])])
    km = KMeans(n_clusters=n_clusters, init=np.column_stack([np.arange(n_clusters) * 10.0, np.zeros(n_clusters)])).fit(X)
    ax = plot_clusters(X, km)
    _, collection, centers = _points_and_centers(ax)
    labels = km.predict(X)
    assert np.unique(labels).size == n_clusters
    _assert_colours_follow_labels(collection, labels)
    assert centers.shape == (n_clusters, 2)


def test_clusters_errors():
    X = _blobs(20, 2)
    with pytest.raises(NotFittedError):
        plot_clusters(X, KMeans(n_clusters=2))
    km = KMeans(n_clusters=2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="max_points"):
        plot_clusters(X, km, max_points=0)
    with pytest.raises(ValueError, match="2 features"):
        plot_clusters(_blobs(20, 3), km)


# "numpy": the model was fitted on the host, its centers are in another namespace than X.
@pytest.mark.parametrize("n_features, fit_on", [(2, "same"), (5, "same"), (5, "numpy")])
def test_clusters_on_every_namespace(placement, n_features, fit_on):
    X_host = _blobs(140, n_features)  # 420 rows, 300 drawn: the subsample is taken on the device
    X = placement.asarray(X_host, "float64")
    km = KMeans(n_clusters=3, random_state=0).fit(X if fit_on == "same" else X_host)
    ax = plot_clusters(X, km, max_points=300, random_state=1)
    points, collection, centers = _points_and_centers(ax)
    rows = np.sort(np.random.default_rng(1).choice(420, size=300, replace=False))
    centers_host = placement.to_numpy(km.cluster_centers_) if fit_on == "same" else km.cluster_centers_
    if n_features == 2:
        np.testing.assert_array_equal(points, X_host[rows])
        np.testing.assert_allclose(centers, centers_host)
    else:
        expected_points, expected_centers, _ = _pca_reference(X_host[rows], centers_host)
        _assert_close_up_to_sign(points, expected_points, (centers, expected_centers))
    labels = km.predict(X_host[rows]) if fit_on == "numpy" else placement.to_numpy(km.predict(X))[rows]
    _assert_colours_follow_labels(collection, np.asarray(labels))
    assert "300 of 420 points" in ax.get_title()


# ---------------------------------------------------------------------------- plot_inertia


def _lines_by_label(ax) -> dict:
    return {line.get_label(): line for line in ax.get_lines()}


def test_inertia_one_line_per_run_kept_run_emphasised():
    X = _blobs(60, 2)
    km = KMeans(n_clusters=3, init="random", n_init=4, random_state=3).fit(X)
    ax = plot_inertia(km)
    history, kept = km.inertia_history_, km._fit_stats["best_run"]
    lines = _lines_by_label(ax)
    assert len(ax.get_lines()) == len(history) == 4
    assert set(lines) == {"kept run"} | {f"run {i}" for i in range(4) if i != kept}
    for run, values in enumerate(history):
        line = lines["kept run" if run == kept else f"run {run}"]
        np.testing.assert_array_equal(line.get_ydata(), values)
        np.testing.assert_array_equal(line.get_xdata(), np.arange(1, values.size + 1))
    # The kept run's inertia is the fit's, and its line is the thickest.
    assert lines["kept run"].get_ydata()[-1] == pytest.approx(km.inertia_, rel=1e-9)
    widths = {label: line.get_linewidth() for label, line in lines.items()}
    assert all(widths["kept run"] > width for label, width in widths.items() if label != "kept run")
    assert ax.get_xlabel() == "iteration" and ax.get_ylabel() == "inertia"
    assert [t.get_text() for t in ax.get_legend().get_texts()][0] == "kept run"


def _hand_made(histories, best_run):
    km = KMeans(n_clusters=2)
    km.cluster_centers_ = np.zeros((2, 2))
    km.inertia_history_ = [np.asarray(h, dtype=np.float64) for h in histories]
    km._fit_stats = {"best_run": best_run}
    return km


def test_inertia_log_scale_only_beyond_two_decades():
    assert plot_inertia(_hand_made([[1e4, 10.0, 1.0]], 0)).get_yscale() == "log"
    assert plot_inertia(_hand_made([[100.0, 50.0, 2.0]], 0)).get_yscale() == "linear"
    # A zero inertia (as many clusters as rows) cannot go on a log axis.
    assert plot_inertia(_hand_made([[1e4, 0.0]], 0)).get_yscale() == "linear"


def test_inertia_many_runs_short_legend():
    histories = [[10.0 + run, 5.0 + run] for run in range(12)]
    ax = plot_inertia(_hand_made(histories, 5))
    assert len(ax.get_lines()) == 12
    np.testing.assert_array_equal(_lines_by_label(ax)["kept run"].get_ydata(), histories[5])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["kept run", "other runs (11)"]


def test_inertia_unfitted_raises():
    with pytest.raises(NotFittedError):
        plot_inertia(KMeans(n_clusters=2))


# ---------------------------------------------------------------------------- plot_elbow


def _twins(ax):
    return [other for other in ax.figure.axes if other is not ax]


def test_elbow_inertia_and_silhouette():
    metrics = pytest.importorskip("sklearn.metrics")
    X = _blobs(50, 3)
    ks = [1, 2, 3, 5]
    ax = plot_elbow(X, ks, random_state=4, n_init=2)
    (line,) = ax.get_lines()
    np.testing.assert_array_equal(line.get_xdata(), ks)
    expected = [KMeans(n_clusters=k, random_state=4, n_init=2).fit(X).inertia_ for k in ks]
    np.testing.assert_allclose(line.get_ydata(), expected, rtol=1e-12)
    assert ax.get_xlabel() == "number of clusters k" and ax.get_ylabel() == "inertia"

    (twin,) = _twins(ax)
    assert twin.get_shared_x_axes().joined(twin, ax)
    (silhouette,) = twin.get_lines()
    np.testing.assert_array_equal(silhouette.get_xdata(), [2, 3, 5])  # k=1 has none
    expected = [
        metrics.silhouette_score(X, KMeans(n_clusters=k, random_state=4, n_init=2).fit(X).predict(X))
        for k in (2, 3, 5)
    ]
    np.testing.assert_allclose(silhouette.get_ydata(), expected, rtol=1e-10)
    assert [t.get_text() for t in twin.get_legend().get_texts()] == ["inertia", "silhouette"]


def test_elbow_silhouette_on_a_sample():
    metrics = pytest.importorskip("sklearn.metrics")
    X = _blobs(100, 2)
    ax = plot_elbow(X, [2, 4], sample_size=120, random_state=2)
    rows = np.sort(np.random.default_rng(2).choice(300, size=120, replace=False))
    expected = [
        metrics.silhouette_score(X[rows], KMeans(n_clusters=k, random_state=2).fit(X).predict(X[rows]))
        for k in (2, 4)
    ]
    (silhouette,) = _twins(ax)[0].get_lines()
    np.testing.assert_allclose(silhouette.get_ydata(), expected, rtol=1e-10)


def test_elbow_without_silhouette(monkeypatch):
    X = _blobs(30, 2)
    ax = plot_elbow(X, range(1, 4), silhouette=False)
    assert _twins(ax) == [] and len(ax.get_lines()) == 1
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), [1, 2, 3])
    # 'auto' without scikit-learn: the inertia alone; True: a clear error.
    monkeypatch.setitem(sys.modules, "sklearn.metrics", None)
    plt.close("all")
    assert _twins(plot_elbow(X, [1, 2])) == []
    with pytest.raises(ImportError, match="needs scikit-learn"):
        plot_elbow(X, [1, 2], silhouette=True)


@pytest.mark.parametrize(
    "ks, message",
    [
        ([], "non-empty"),
        (3, "sequence"),
        ("123", "sequence"),
        ([0, 2], r"\[1, n_samples=30\]"),
        ([2, 31], r"\[1, n_samples=30\]"),
        ([2, 2.5], "ints"),
        ([True, 2], "ints"),
        ([2, 3, 2], "repeat"),
    ],
)
def test_elbow_bad_ks(ks, message):
    with pytest.raises(ValueError, match=message):
        plot_elbow(_blobs(10, 2), ks)


def test_elbow_bad_parameters():
    X = _blobs(10, 2)
    with pytest.raises(ValueError, match="silhouette"):
        plot_elbow(X, [2], silhouette="yes")
    with pytest.raises(TypeError, match="n_clusters"):
        plot_elbow(X, [2], n_clusters=3)


def test_elbow_on_every_namespace(placement):
    X_host = _blobs(40, 3)
    ks = [1, 3]
    ax = plot_elbow(placement.asarray(X_host, "float64"), ks, random_state=0, silhouette=False)
    expected = [KMeans(n_clusters=k, random_state=0).fit(X_host).inertia_ for k in ks]
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), expected, rtol=1e-8)


# ---------------------------------------------------------------------------- optional dependencies


def test_import_pulls_in_neither_matplotlib_nor_sklearn():
    code = textwrap.dedent(
        """
        import sys
        import anykmeans
        before = set(sys.modules)
        import anykmeans.plot
        new = set(sys.modules) - before
        print(sorted(m for m in new if m.split(".")[0] in ("matplotlib", "sklearn")))
        # Importing the module works without matplotlib too.
        del sys.modules["anykmeans.plot"]
        sys.modules["matplotlib"] = None
        import anykmeans.plot
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_missing_matplotlib_says_how_to_install(monkeypatch):
    X = _blobs(10, 2)
    km = KMeans(n_clusters=2, random_state=0).fit(X)
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    message = r'pip install "anykmeans\[notebook\]"'
    with pytest.raises(ImportError, match=message):
        plot_clusters(X, km)
    with pytest.raises(ImportError, match=message):
        plot_inertia(km)
    with pytest.raises(ImportError, match=message):
        plot_elbow(X, [1, 2])


def test_docstring_example_runs():
    import doctest

    import anykmeans.plot

    result = doctest.testmod(anykmeans.plot)
    assert result.attempted > 0 and result.failed == 0


def test_public_module():
    import anykmeans.plot as module

    assert module.__all__ == ["plot_clusters", "plot_elbow", "plot_inertia"]
    assert anykmeans.plot is module
