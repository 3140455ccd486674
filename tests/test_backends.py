"""The kernel backends against the reference (and the reference against plain NumPy), and the
registry that picks them: ``auto`` priorities, names, entry points, errors.

Every registered implementation is checked in every placement it claims to support, so a
third-party backend registered before the suite runs is checked too.
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap

import array_api_compat
import numpy as np
import pytest

import anykmeans
from anykmeans import KMeans, backends
from anykmeans._engine import Engine
from anykmeans.backends import _registry
from anykmeans.backends import array_api as reference

DTYPES = ["float32", "float64"]
# Tolerances against the reference; an absolute part scaled by the magnitudes involved covers
# the cancellation that expanded distances and signed sums have in any summation order.
RTOL = {"float32": 1e-5, "float64": 1e-12}

# The compiled backend wins on NumPy when Numba is installed.
NUMPY_BEST = "numba" if importlib.util.find_spec("numba") else "numpy"


# --------------------------------------------------------------------------- helpers


def _supporting(kind, placement):
    """The registered backends of ``kind`` that claim ``placement``, the reference first."""
    found = [
        b for b in backends.list_backends(kind).values()
        if b.supports(placement.xp, placement.device)
    ]
    assert reference.distance in found or reference.reduction in found
    return found


def _implementations(kind, placement):
    """Supporting backends other than the reference."""
    ref = reference.distance if kind == "distance" else reference.reduction
    return [b for b in _supporting(kind, placement) if b is not ref]


def _nearest_inputs(seed=0, n=300, k=7, d=5):
    """Points near well-separated centers (no near-ties), float64 on the host."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=10.0, size=(k, d))
    truth = rng.integers(0, k, size=n)
    X = centers[truth] + rng.normal(scale=0.5, size=(n, d))
    return X, centers, truth


def _brute_sqdist(X, centers):
    X, centers = np.asarray(X, np.float64), np.asarray(centers, np.float64)
    return ((X[:, None, :] - centers[None, :, :]) ** 2).sum(axis=-1)


def _distance_atol(X, centers, rtol):
    """Error scale of ‖x‖² − 2x·c + ‖c‖²: rounding is relative to ‖x‖² + ‖c‖², not to the
    (smaller) result."""
    X, centers = np.asarray(X, np.float64), np.asarray(centers, np.float64)
    return rtol * float((X * X).sum(axis=1).max() + (centers * centers).sum(axis=1).max())


def _segment_inputs(seed=0, n=400, d=4, n_clusters=7):
    """Labels that leave clusters 1, 4 and 6 without rows, some zero weights, and cluster 5
    with rows that all weigh zero."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.1, 10.0, size=d)
    labels = rng.choice(np.array([0, 2, 3, 5]), size=n)
    weights = rng.uniform(0.5, 2.0, size=n)
    weights[rng.random(n) < 0.2] = 0.0
    weights[labels == 5] = 0.0
    return X, labels, weights, n_clusters


def _brute_segment_sum(X, labels, weights, n_clusters):
    X, weights = np.asarray(X, np.float64), np.asarray(weights, np.float64)
    sums = np.zeros((n_clusters, X.shape[1]))
    np.add.at(sums, labels, weights[:, None] * X)
    weight_sums = np.zeros(n_clusters)
    np.add.at(weight_sums, labels, weights)
    # Σ|terms|: any summation order is within n·eps of it.
    scale = np.zeros((n_clusters, X.shape[1]))
    np.add.at(scale, labels, np.abs(weights[:, None] * X))
    return sums, weight_sums, scale


def _assert_sums_close(got, expected, scale, rtol, msg=""):
    got = np.asarray(got, np.float64)
    bound = rtol * (scale + np.abs(expected))
    assert got.shape == expected.shape, msg
    assert np.all(np.abs(got - expected) <= bound), (
        f"{msg}: max excess {np.max(np.abs(got - expected) - bound)}"
    )


def _assert_placed(array, placement, dtype=None):
    """``array`` is of the placement's namespace, on its device (and of ``dtype``)."""
    assert array_api_compat.array_namespace(array) is placement.xp
    assert array_api_compat.device(array) == placement.device
    if dtype is not None:
        assert array.dtype == dtype


def _set_of(kind):
    return set(backends.list_backends(kind))


@pytest.fixture
def restore_registry():
    """Leave the registry (and whether entry points were scanned) as the test found it."""
    saved = {kind: dict(table) for kind, table in _registry._registry.items()}
    loaded = _registry._entry_points_loaded
    yield
    for kind, table in _registry._registry.items():
        table.clear()
        table.update(saved[kind])
    _registry._entry_points_loaded = loaded


class _Counting:
    """A backend that claims every placement and counts the calls it forwards to the reference."""

    def __init__(self, priority=0, name="counting"):
        self.priority = priority
        self.name = name
        self.calls = 0

    def supports(self, xp, device):
        return True


class CountingDistance(_Counting, backends.DistanceBackend):
    """The reference distance, counting its calls."""

    def nearest(self, X, centers, *, xp):
        self.calls += 1
        return reference.distance.nearest(X, centers, xp=xp)

    def pairwise(self, X, centers, *, xp):
        self.calls += 1
        return reference.distance.pairwise(X, centers, xp=xp)


class CountingReduction(_Counting, backends.ReductionBackend):
    """The reference reduction, counting its calls."""

    def segment_sum(self, X, labels, weights, n_clusters, *, xp):
        self.calls += 1
        return reference.reduction.segment_sum(X, labels, weights, n_clusters, xp=xp)


def _fit_data(seed=0, n=240, d=3, k=4):
    """float64 blobs and an initial-centers array whose last center is far from every point,
    so that the first iteration leaves it empty and the relocation runs too."""
    rng = np.random.default_rng(seed)
    blob_centers = rng.normal(scale=8.0, size=(k, d))
    X = blob_centers[rng.integers(0, k, size=n)] + rng.normal(size=(n, d))
    init = X[rng.choice(n, size=k, replace=False)].copy()
    init[-1] = 1000.0
    return X, init


def _fit(placement, X, init, **params):
    km = KMeans(n_clusters=init.shape[0], init=placement.asarray(init, "float64"), **params)
    return km.fit(placement.asarray(X, "float64"))


def _assert_same_fit(got, expected, placement, rtol=1e-10):
    np.testing.assert_array_equal(
        placement.to_numpy(got.labels_), placement.to_numpy(expected.labels_)
    )
    np.testing.assert_allclose(
        placement.to_numpy(got.cluster_centers_),
        placement.to_numpy(expected.cluster_centers_),
        rtol=rtol,
        atol=1e-12,
    )
    assert got.n_iter_ == expected.n_iter_
    assert got.inertia_ == pytest.approx(expected.inertia_, rel=rtol)


# --------------------------------------------------------------------------- the reference


@pytest.mark.parametrize("dtype", DTYPES)
def test_reference_distances_match_brute_force(placement, dtype):
    X, centers, truth = _nearest_inputs()
    Xd, Cd = placement.asarray(X, dtype), placement.asarray(centers, dtype)
    # Compare with the float64 distances of the values actually stored in ``dtype``.
    X_host, C_host = X.astype(dtype), centers.astype(dtype)
    expected = _brute_sqdist(X_host, C_host)
    atol = _distance_atol(X_host, C_host, RTOL[dtype])

    labels, min_sqdist = reference.distance.nearest(Xd, Cd, xp=placement.xp)
    np.testing.assert_array_equal(placement.to_numpy(labels), truth)
    np.testing.assert_array_equal(placement.to_numpy(labels), expected.argmin(axis=1))
    np.testing.assert_allclose(
        placement.to_numpy(min_sqdist), expected.min(axis=1), rtol=RTOL[dtype], atol=atol
    )
    pairwise = reference.distance.pairwise(Xd, Cd, xp=placement.xp)
    np.testing.assert_allclose(placement.to_numpy(pairwise), expected, rtol=RTOL[dtype], atol=atol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_reference_segment_sum_matches_brute_force(placement, dtype):
    X, labels, weights, k = _segment_inputs()
    X_host, w_host = X.astype(dtype), weights.astype(dtype)
    sums, weight_sums = reference.reduction.segment_sum(
        placement.asarray(X_host), placement.asarray(labels, "int64"),
        placement.asarray(w_host), k, xp=placement.xp,
    )
    exp_sums, exp_weight_sums, scale = _brute_segment_sum(X_host, labels, w_host, k)
    _assert_sums_close(placement.to_numpy(sums), exp_sums, scale, RTOL[dtype], "sums")
    _assert_sums_close(
        placement.to_numpy(weight_sums), exp_weight_sums, exp_weight_sums, RTOL[dtype], "weights"
    )
    # Clusters without rows, and cluster 5 whose rows all weigh 0, sum to exactly zero.
    for empty in (1, 4, 5, 6):
        assert np.all(placement.to_numpy(sums)[empty] == 0)
        assert placement.to_numpy(weight_sums)[empty] == 0


# --------------------------------------------------------------------------- every implementation


@pytest.mark.parametrize("dtype", DTYPES)
def test_distance_backends_match_reference(placement, dtype):
    X, centers, truth = _nearest_inputs(seed=1)
    Xd, Cd = placement.asarray(X, dtype), placement.asarray(centers, dtype)
    atol = _distance_atol(X.astype(dtype), centers.astype(dtype), RTOL[dtype])
    ref_labels, ref_min = map(
        placement.to_numpy, reference.distance.nearest(Xd, Cd, xp=placement.xp)
    )
    ref_pairwise = placement.to_numpy(reference.distance.pairwise(Xd, Cd, xp=placement.xp))

    for backend in _implementations("distance", placement):
        labels, min_sqdist = backend.nearest(Xd, Cd, xp=placement.xp)
        np.testing.assert_array_equal(placement.to_numpy(labels), ref_labels, err_msg=backend.name)
        np.testing.assert_allclose(
            placement.to_numpy(min_sqdist), ref_min, rtol=RTOL[dtype], atol=atol,
            err_msg=backend.name,
        )
        pairwise = backend.pairwise(Xd, Cd, xp=placement.xp)
        np.testing.assert_allclose(
            placement.to_numpy(pairwise), ref_pairwise, rtol=RTOL[dtype], atol=atol,
            err_msg=backend.name,
        )


@pytest.mark.parametrize("dtype", DTYPES)
def test_reduction_backends_match_reference(placement, dtype):
    X, labels, weights, k = _segment_inputs(seed=2)
    X_host, w_host = X.astype(dtype), weights.astype(dtype)
    args = (
        placement.asarray(X_host), placement.asarray(labels, "int64"), placement.asarray(w_host), k
    )
    ref_sums, ref_weight_sums = map(
        placement.to_numpy, reference.reduction.segment_sum(*args, xp=placement.xp)
    )
    _, _, scale = _brute_segment_sum(X_host, labels, w_host, k)

    for backend in _implementations("reduction", placement):
        sums, weight_sums = backend.segment_sum(*args, xp=placement.xp)
        _assert_sums_close(placement.to_numpy(sums), ref_sums.astype(np.float64), scale,
                           RTOL[dtype], backend.name)
        _assert_sums_close(
            placement.to_numpy(weight_sums), ref_weight_sums.astype(np.float64),
            ref_weight_sums.astype(np.float64), RTOL[dtype], backend.name,
        )
        for empty in (1, 4, 5, 6):
            assert np.all(placement.to_numpy(sums)[empty] == 0), backend.name
            assert placement.to_numpy(weight_sums)[empty] == 0, backend.name


@pytest.mark.parametrize("dtype", DTYPES)
def test_equal_scores_go_to_the_lowest_center_index(placement, dtype):
    # Small integers: every backend computes these distances exactly, so the ties are exact.
    X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    centers = np.array([[0.0, 2.0], [1.0, 0.0], [-1.0, 0.0], [0.0, -1.0], [1.0, 0.0]])
    # Row 0: 4, 1, 1, 1, 1 -> 1; row 1: 5, 0, 4, 2, 0 -> 1; row 2: 1, 2, 2, 4, 2 -> 0.
    for backend in _supporting("distance", placement):
        labels, min_sqdist = backend.nearest(
            placement.asarray(X, dtype), placement.asarray(centers, dtype), xp=placement.xp
        )
        np.testing.assert_array_equal(placement.to_numpy(labels), [1, 1, 0], err_msg=backend.name)
        np.testing.assert_array_equal(placement.to_numpy(min_sqdist), [1.0, 0.0, 1.0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_duplicate_centers_go_to_the_lowest_index(placement, dtype):
    X, centers, truth = _nearest_inputs(seed=3, n=1000, k=4, d=16)
    # Center 1 again at indices 2 and 9, center 0 again at 10: identical rows, so equal
    # distances, although a matmul rounds them differently by column position.
    fillers = centers[3:4] + 100.0 * np.arange(1, 5)[:, None]
    duplicated = np.concatenate(
        [centers[:2], centers[1:2], centers[2:], fillers, centers[1:2], centers[:1]]
    )
    expected = np.array([0, 1, 3, 4])[truth]  # old index -> lowest new index of that center
    Xd, Cd = placement.asarray(X, dtype), placement.asarray(duplicated, dtype)
    for backend in _supporting("distance", placement):
        with anykmeans.config_context(distance=backend.name):
            engine = Engine.create(placement.xp, placement.device, n_features=16,
                                   n_columns=duplicated.shape[0], dtype=Xd.dtype)
        labels, _ = engine.nearest(Xd, Cd)
        np.testing.assert_array_equal(placement.to_numpy(labels), expected, err_msg=backend.name)
        weights = placement.xp.ones(X.shape[0], dtype=Xd.dtype, device=placement.device)
        labels, _, weight_sums, _ = engine.lloyd_pass(Xd, weights, Cd)
        np.testing.assert_array_equal(placement.to_numpy(labels), expected, err_msg=backend.name)
        assert np.all(placement.to_numpy(weight_sums)[[2, 9, 10]] == 0), backend.name
    # A NaN center is unequal to everything, itself included: it keeps its own index.
    nan_centers = np.array([[np.nan, 0.0], [0.0, 0.0], [np.nan, 0.0]])
    first = engine.first_duplicates(placement.asarray(nan_centers, dtype))
    np.testing.assert_array_equal(placement.to_numpy(first), [0, 1, 2])


@pytest.mark.parametrize("dtype", DTYPES)
def test_results_stay_in_the_input_namespace_and_device(placement, dtype):
    X, centers, _ = _nearest_inputs(n=50)
    Xd, Cd = placement.asarray(X, dtype), placement.asarray(centers, dtype)
    float_dtype = placement.dtype(dtype)
    for backend in _supporting("distance", placement):
        labels, min_sqdist = backend.nearest(Xd, Cd, xp=placement.xp)
        _assert_placed(labels, placement)
        assert placement.xp.isdtype(labels.dtype, "integral"), backend.name
        _assert_placed(min_sqdist, placement, float_dtype)
        _assert_placed(backend.pairwise(Xd, Cd, xp=placement.xp), placement, float_dtype)

    X, labels, weights, k = _segment_inputs(n=50)
    args = (placement.asarray(X, dtype), placement.asarray(labels, "int64"),
            placement.asarray(weights, dtype), k)
    for backend in _supporting("reduction", placement):
        sums, weight_sums = backend.segment_sum(*args, xp=placement.xp)
        _assert_placed(sums, placement, float_dtype)
        _assert_placed(weight_sums, placement, float_dtype)
        assert tuple(sums.shape) == (k, X.shape[1]) and tuple(weight_sums.shape) == (k,)


@pytest.mark.parametrize("dtype", DTYPES)
def test_segment_sum_is_deterministic(placement, dtype):
    # Enough rows that a parallel or atomic accumulation would show run-to-run differences.
    X, labels, weights, k = _segment_inputs(seed=4, n=20_000, d=16)
    args = (placement.asarray(X, dtype), placement.asarray(labels, "int64"),
            placement.asarray(weights, dtype), k)
    for backend in _supporting("reduction", placement):
        first = [placement.to_numpy(a) for a in backend.segment_sum(*args, xp=placement.xp)]
        second = [placement.to_numpy(a) for a in backend.segment_sum(*args, xp=placement.xp)]
        for a, b in zip(first, second):
            assert a.tobytes() == b.tobytes(), backend.name


# --------------------------------------------------------------------------- registry


def test_auto_picks_the_highest_priority_supporting_backend(placement):
    X = placement.asarray(np.zeros((3, 2)), "float64")
    xp, device = array_api_compat.array_namespace(X), array_api_compat.device(X)
    expected = {
        "numpy": (NUMPY_BEST, NUMPY_BEST),
        "strict-cpu": ("array_api", "array_api"),
        "strict-device1": ("array_api", "array_api"),
        "torch-cpu": ("array_api", "torch"),
        "dask": ("array_api", "array_api"),
        "jax": ("array_api", "array_api"),
        # On CUDA the torch reduction would use atomics (nondeterministic): the reference.
        "torch-cuda": ("array_api", "array_api"),
        "cupy": ("cupy", "cupy"),
    }[placement.id]
    got = (backends.select("distance", "auto", xp, device).name,
           backends.select("reduction", "auto", xp, device).name)
    assert got == expected
    engine = Engine.create(xp, device, n_features=2, n_columns=3, dtype=X.dtype)
    assert (engine.distance.name, engine.reduction.name) == expected


def test_auto_prefers_a_registered_backend_of_higher_priority(restore_registry):
    X = np.zeros((2, 2))
    xp, device = array_api_compat.array_namespace(X), array_api_compat.device(X)
    below = backends.register_reduction(CountingReduction(priority=9, name="below"))
    assert backends.select("reduction", "auto", xp, device).name == NUMPY_BEST
    high = backends.register_reduction(CountingReduction(priority=100))
    assert backends.select("reduction", "auto", xp, device) is high
    # Equal priorities: the first registered wins.
    backends.register_reduction(CountingReduction(priority=100, name="later"))
    assert backends.select("reduction", "auto", xp, device) is high
    # A backend that does not support the placement is never picked, whatever its priority.
    picky = CountingReduction(priority=1000, name="picky")
    picky.supports = lambda xp, device: False
    backends.register_reduction(picky)
    assert backends.select("reduction", "auto", xp, device) is high
    assert below.calls == 0


@pytest.mark.parametrize("priority", [-100, 100])
def test_backend_names_in_config_drive_the_fit(placement, restore_registry, priority):
    distance = backends.register_distance(CountingDistance(priority))
    reduction = backends.register_reduction(CountingReduction(priority))
    assert backends.list_backends("distance")["counting"] is distance
    assert backends.list_backends("reduction")["counting"] is reduction
    X, init = _fit_data()

    with anykmeans.config_context(distance="array_api", reduction="array_api"):
        engine = Engine.create(placement.xp, placement.device, n_features=3, n_columns=4,
                               dtype=placement.dtype("float64"))
        assert engine.distance is reference.distance
        assert engine.reduction is reference.reduction
        expected = _fit(placement, X, init)
    assert (distance.calls, reduction.calls) == (0, 0)

    with anykmeans.config_context(distance="counting", reduction="counting"):
        got = _fit(placement, X, init)
    assert distance.calls > 0 and reduction.calls > 0
    _assert_same_fit(got, expected, placement, rtol=0)

    distance.calls = reduction.calls = 0
    _fit(placement, X, init)  # auto
    used = (distance.calls > 0, reduction.calls > 0)
    assert used == ((True, True) if priority > 0 else (False, False))


def test_unknown_backend_name_lists_the_registered_ones(placement):
    X, init = _fit_data(n=20)
    for kind in ("distance", "reduction"):
        with anykmeans.config_context(**{kind: "no-such-backend"}):
            unknown = f"Unknown {kind} backend 'no-such-backend'"
            with pytest.raises(ValueError, match=unknown) as err:
                _fit(placement, X, init)
        for name in backends.list_backends(kind):
            assert repr(name) in str(err.value)
    with pytest.raises(ValueError, match="kind must be one of"):
        backends.list_backends("metric")


def test_named_backend_that_does_not_support_the_placement_raises(placement):
    X, init = _fit_data(n=20)
    xp, device = placement.xp, placement.device
    refusing = [
        (kind, name)
        for kind in ("distance", "reduction")
        for name, backend in backends.list_backends(kind).items()
        if not backend.supports(xp, device)
    ]
    if placement.id == "numpy":
        assert ("reduction", "torch") in refusing
    else:
        assert ("distance", "numpy") in refusing
    for kind, name in refusing:
        with pytest.raises(ValueError, match=f"{kind} backend '{name}' does not support"):
            backends.select(kind, name, xp, device)
        with anykmeans.config_context(**{kind: name}):
            with pytest.raises(ValueError, match="does not support"):
                _fit(placement, X, init)


def test_register_refuses_duplicates_unless_replace(restore_registry):
    first = backends.register_distance(CountingDistance())
    assert backends.register_distance(first) is first  # the same instance again is harmless
    second = CountingDistance()
    with pytest.raises(ValueError, match="already registered; pass replace=True"):
        backends.register_distance(second)
    assert backends.list_backends("distance")["counting"] is first
    assert backends.register_distance(second, replace=True) is second
    assert backends.list_backends("distance")["counting"] is second
    # The built-in reference cannot be shadowed by accident either.
    impostor = CountingReduction()
    impostor.name = "array_api"
    with pytest.raises(ValueError, match="already registered"):
        backends.register(impostor)
    assert backends.list_backends("reduction")["array_api"] is reference.reduction


def test_register_refuses_non_backends(restore_registry):
    before = {kind: _set_of(kind) for kind in ("distance", "reduction")}
    with pytest.raises(TypeError, match="must be an instance"):
        backends.register(object())
    with pytest.raises(TypeError, match="must be an instance"):
        backends.register(CountingDistance)  # the class, not an instance
    with pytest.raises(TypeError, match="takes a DistanceBackend"):
        backends.register_distance(CountingReduction())
    with pytest.raises(TypeError, match="takes a ReductionBackend"):
        backends.register_reduction(CountingDistance())
    nameless = CountingDistance()
    for bad in ("", "auto"):
        nameless.name = bad
        with pytest.raises(ValueError, match="non-empty name other than 'auto'"):
            backends.register(nameless)
    assert {kind: _set_of(kind) for kind in ("distance", "reduction")} == before


# --------------------------------------------------------------------------- entry points

_PLUGIN_MODULE = "anykmeans_fakeplugin"
_BROKEN_MODULE = "anykmeans_brokenplugin"

_PLUGIN_SOURCE = textwrap.dedent(
    """
    from anykmeans.backends import DistanceBackend, ReductionBackend
    from anykmeans.backends import array_api as _reference


    class FakeDistance(DistanceBackend):
        name = "fake"
        priority = -10
        calls = 0

        def supports(self, xp, device):
            return True

        def nearest(self, X, centers, *, xp):
            self.calls += 1
            return _reference.distance.nearest(X, centers, xp=xp)

        def pairwise(self, X, centers, *, xp):
            self.calls += 1
            return _reference.distance.pairwise(X, centers, xp=xp)


    class FakeReduction(ReductionBackend):
        name = "fake"
        priority = -10
        calls = 0

        def supports(self, xp, device):
            return True

        def segment_sum(self, X, labels, weights, n_clusters, *, xp):
            self.calls += 1
            return _reference.reduction.segment_sum(X, labels, weights, n_clusters, xp=xp)


    distance = FakeDistance()
    reduction = FakeReduction()
    both = [distance, reduction]
    """
)


def _write_distribution(root, dist_name, entry_points, modules):
    """An installed distribution as pip lays it out: module files and a dist-info folder."""
    for module, source in modules.items():
        (root / f"{module}.py").write_text(source)
    info = root / f"{dist_name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 0.1\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{backends.ENTRY_POINT_GROUP}]\n{lines}")
    (info / "RECORD").write_text("")


@pytest.fixture
def plugin_path(tmp_path, monkeypatch, restore_registry):
    """A site directory on sys.path; the plugin modules are forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for module in (_PLUGIN_MODULE, _BROKEN_MODULE):
        sys.modules.pop(module, None)


def test_entry_point_backends_are_listed_and_selectable(placement, plugin_path):
    _write_distribution(
        plugin_path, "fakeplugin", {"fake": f"{_PLUGIN_MODULE}:both"},
        {_PLUGIN_MODULE: _PLUGIN_SOURCE},
    )
    assert "fake" not in backends.list_backends("distance")
    backends.reload_entry_points()
    plugin = sys.modules[_PLUGIN_MODULE]
    assert backends.list_backends("distance")["fake"] is plugin.distance
    assert backends.list_backends("reduction")["fake"] is plugin.reduction
    # Scanning again finds the same instances: no duplicate-name error, no warning.
    backends.reload_entry_points()
    assert backends.list_backends("distance")["fake"] is plugin.distance

    X, init = _fit_data(n=60)
    expected = _fit(placement, X, init)
    assert plugin.distance.calls == 0  # low priority: auto does not pick it
    with anykmeans.config_context(distance="fake", reduction="fake"):
        got = _fit(placement, X, init)
    assert plugin.distance.calls > 0 and plugin.reduction.calls > 0
    _assert_same_fit(got, expected, placement)


def test_broken_entry_point_warns_and_leaves_the_registry_usable(plugin_path):
    _write_distribution(
        plugin_path, "brokenplugin", {"broken": f"{_BROKEN_MODULE}:distance"},
        {_BROKEN_MODULE: "raise ImportError('the plugin exploded')\n"},
    )
    _write_distribution(
        plugin_path, "fakeplugin", {"fake": f"{_PLUGIN_MODULE}:distance",
                                    "notabackend": f"{_PLUGIN_MODULE}:FakeDistance"},
        {_PLUGIN_MODULE: _PLUGIN_SOURCE},
    )
    with pytest.warns(RuntimeWarning) as record:
        backends.reload_entry_points()
    messages = sorted(str(w.message) for w in record)
    assert len(messages) == 2
    assert "'broken'" in messages[0] and "the plugin exploded" in messages[0]
    assert "'notabackend'" in messages[1] and "must be an instance" in messages[1]

    distance = backends.list_backends("distance")
    assert {"array_api", "numpy", "fake"} <= set(distance)
    assert "broken" not in distance and "notabackend" not in distance
    assert set(backends.list_backends("reduction")) >= {"array_api", "numpy"}
    X, init = _fit_data(n=60)
    km = KMeans(n_clusters=4, init=init).fit(X)
    assert km.cluster_centers_.shape == (4, 3)
    with anykmeans.config_context(distance="fake"):
        np.testing.assert_array_equal(KMeans(n_clusters=4, init=init).fit(X).labels_, km.labels_)


# --------------------------------------------------------------------------- whole fits


def test_every_backend_combination_fits_like_the_reference(placement):
    X, init = _fit_data(seed=5)
    with anykmeans.config_context(distance="array_api", reduction="array_api"):
        expected = _fit(placement, X, init, tol=0)
    combinations = [
        (d.name, r.name)
        for d in _supporting("distance", placement)
        for r in _supporting("reduction", placement)
    ]
    assert ("array_api", "array_api") in combinations
    for distance, reduction in combinations:
        with anykmeans.config_context(distance=distance, reduction=reduction):
            got = _fit(placement, X, init, tol=0)
        _assert_same_fit(got, expected, placement)


@pytest.mark.parametrize("init", ["array", "k-means++"])
def test_tiny_working_memory_chunks_give_the_same_fit(placement, init):
    X, init_centers = _fit_data(seed=6, n=320)
    Xd = placement.asarray(X, "float64")
    init = placement.asarray(init_centers, "float64") if init == "array" else init
    params = dict(n_clusters=4, init=init, random_state=0, tol=0)
    xp, device = placement.xp, placement.device

    engine = Engine.create(xp, device, n_features=3, n_columns=4, dtype=Xd.dtype)
    assert engine.chunk_size >= X.shape[0]
    one_chunk = KMeans(**params).fit(Xd)
    # 0.004 MiB is 32 rows of 4 clusters and 3 features: 10 chunks (a lazy namespace builds
    # a graph per chunk, so many more would only make the test slow).
    with anykmeans.config_context(working_memory=0.004):
        engine = Engine.create(xp, device, n_features=3, n_columns=4, dtype=Xd.dtype)
        assert len(list(engine.chunks(X.shape[0]))) >= 10
        chunked = KMeans(**params).fit(Xd)
        # predict and transform go through the chunked passes as well.
        np.testing.assert_array_equal(
            placement.to_numpy(one_chunk.predict(Xd)), placement.to_numpy(chunked.labels_)
        )
        np.testing.assert_allclose(
            placement.to_numpy(chunked.transform(Xd)), placement.to_numpy(one_chunk.transform(Xd)),
            rtol=1e-10,
        )
    _assert_same_fit(chunked, one_chunk, placement)
