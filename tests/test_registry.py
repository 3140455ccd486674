"""The registry of kernels: ``auto`` priorities, names in the configuration, entry points,
errors, and a minimal third-party backend driving whole fits."""

from __future__ import annotations

import importlib.util
import sys
import textwrap

import array_api_compat
import array_api_compat.numpy
import numpy as np
import pytest

import anykmeans
from anykmeans import KMeans, backends

# The compiled backend wins on NumPy when Numba is installed.
NUMPY_BEST = "numba" if importlib.util.find_spec("numba") else "numpy"


@pytest.fixture
def restore_registry():
    """Leave the registry as the test found it, through its public functions."""
    saved = backends.list_kernels()
    yield
    for name in set(backends.list_kernels()) - set(saved):
        backends.unregister_kernels(name)
    for kernels in saved.values():
        backends.register_kernels(kernels, replace=True)


class Counting(backends.Kernels):
    """The reference kernels, counting the operations called (only ``assign`` and
    ``segment_sum`` are overridden: the passes are built from them)."""

    def __init__(self, priority=0, name="counting"):
        self.priority = priority
        self.name = name
        self.calls = 0

    def supports(self, xp, device):
        return True

    def assign(self, X, centers, /, *, shift, xp):
        self.calls += 1
        return super().assign(X, centers, shift=shift, xp=xp)

    def segment_sum(self, X, weights, labels, /, *, n_clusters, shift, xp):
        self.calls += 1
        return super().segment_sum(X, weights, labels, n_clusters=n_clusters, shift=shift, xp=xp)


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
    np.testing.assert_array_equal(placement.to_numpy(got.labels_), placement.to_numpy(expected.labels_))
    np.testing.assert_allclose(
        placement.to_numpy(got.cluster_centers_), placement.to_numpy(expected.cluster_centers_),
        rtol=rtol, atol=1e-12,
    )
    assert got.n_iter_ == expected.n_iter_
    assert got.inertia_ == pytest.approx(expected.inertia_, rel=rtol)


def test_auto_picks_the_highest_priority_supporting_backend(placement):
    X = placement.asarray(np.zeros((3, 2)), "float64")
    xp, device = array_api_compat.array_namespace(X), array_api_compat.device(X)
    expected = {
        "numpy": NUMPY_BEST,
        "torch-cpu": "torch",
        "cupy": "cupy",
        # On CUDA the torch kernels would sum with atomics (nondeterministic): the reference.
    }.get(placement.id, "array_api")
    assert backends.select_kernels("auto", xp, device).name == expected


def test_auto_prefers_a_registered_backend_of_higher_priority(restore_registry):
    xp, device = array_api_compat.numpy, "cpu"
    below = backends.register_kernels(Counting(priority=9, name="below"))
    assert backends.select_kernels("auto", xp, device).name == NUMPY_BEST
    high = backends.register_kernels(Counting(priority=100))
    assert backends.select_kernels("auto", xp, device) is high
    # Equal priorities: the first registered wins.
    backends.register_kernels(Counting(priority=100, name="later"))
    assert backends.select_kernels("auto", xp, device) is high
    # A backend that does not support the placement is never picked, whatever its priority.
    picky = Counting(priority=1000, name="picky")
    picky.supports = lambda xp, device: False
    backends.register_kernels(picky)
    assert backends.select_kernels("auto", xp, device) is high
    assert below.calls == 0


@pytest.mark.parametrize("priority", [-100, 100])
def test_backend_name_in_config_drives_the_fit(placement, restore_registry, priority):
    counting = backends.register_kernels(Counting(priority))
    assert backends.list_kernels()["counting"] is counting
    X, init = _fit_data()

    with anykmeans.config_context(kernels="array_api"):
        expected = _fit(placement, X, init)
    assert counting.calls == 0
    with anykmeans.config_context(kernels="counting"):
        got = _fit(placement, X, init)
    assert counting.calls > 0
    _assert_same_fit(got, expected, placement, rtol=0)

    counting.calls = 0
    _fit(placement, X, init)  # auto
    assert (counting.calls > 0) == (priority > 0)


def test_unknown_backend_name_lists_the_registered_ones(placement):
    with pytest.raises(ValueError, match="Unknown backend 'no-such-backend'") as err:
        backends.select_kernels("no-such-backend", placement.xp, placement.device)
    for name in backends.list_kernels():
        assert repr(name) in str(err.value)
    with pytest.raises(ValueError, match="name of a registered backend; got 'no-such-backend'"):
        with anykmeans.config_context(kernels="no-such-backend"):
            pass


def test_named_backend_that_does_not_support_the_placement_raises(placement):
    X, init = _fit_data(n=20)
    xp, device = placement.xp, placement.device
    refusing = [name for name, k in backends.list_kernels().items() if not k.supports(xp, device)]
    assert ("torch" if placement.id == "numpy" else "numpy") in refusing
    for name in refusing:
        with pytest.raises(ValueError, match=f"backend '{name}' does not support"):
            backends.select_kernels(name, xp, device)
        with anykmeans.config_context(kernels=name):
            if placement.id == "dask" and backends.list_kernels()[name].supports(array_api_compat.numpy, "cpu"):
                # Dask input runs the kernels of its blocks' library: NumPy blocks here.
                assert _fit(placement, X, init)._fit_stats["kernels"] == name
                continue
            with pytest.raises(ValueError, match="does not support"):
                _fit(placement, X, init)


def test_register_refuses_duplicates_unless_replace(restore_registry):
    first = backends.register_kernels(Counting())
    assert backends.register_kernels(first) is first  # the same instance again is harmless
    second = Counting()
    with pytest.raises(ValueError, match="already registered; pass replace=True"):
        backends.register_kernels(second)
    assert backends.list_kernels()["counting"] is first
    assert backends.register_kernels(second, replace=True) is second
    assert backends.list_kernels()["counting"] is second
    # The built-in reference cannot be shadowed by accident either.
    reference = backends.list_kernels()["array_api"]
    with pytest.raises(ValueError, match="already registered"):
        backends.register_kernels(Counting(name="array_api"))
    assert backends.list_kernels()["array_api"] is reference
    assert backends.unregister_kernels("counting") is second
    assert "counting" not in backends.list_kernels()
    with pytest.raises(ValueError, match="No backend named 'counting'"):
        backends.unregister_kernels("counting")


def test_register_refuses_non_backends(restore_registry):
    before = set(backends.list_kernels())
    with pytest.raises(TypeError, match="must be an instance"):
        backends.register_kernels(object())
    with pytest.raises(TypeError, match="must be an instance"):
        backends.register_kernels(Counting)  # the class, not an instance
    for bad in ("", "auto"):
        with pytest.raises(ValueError, match="non-empty name other than 'auto'"):
            backends.register_kernels(Counting(name=bad))
    assert set(backends.list_kernels()) == before


# --------------------------------------------------------------------------- entry points

_PLUGIN_MODULE = "anykmeans_fakeplugin"
_BROKEN_MODULE = "anykmeans_brokenplugin"

_PLUGIN_SOURCE = textwrap.dedent(
    """
    from anykmeans.backends import Kernels


    class Fake(Kernels):
        priority = -10
        calls = 0

        def __init__(self, name):
            self.name = name

        def supports(self, xp, device):
            return True

        def assign(self, X, centers, /, *, shift, xp):
            self.calls += 1
            return super().assign(X, centers, shift=shift, xp=xp)


    kernels = Fake("fake")
    both = [kernels, Fake("fake2")]
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
    _write_distribution(plugin_path, "fakeplugin", {"fake": f"{_PLUGIN_MODULE}:both"}, {_PLUGIN_MODULE: _PLUGIN_SOURCE})
    assert "fake" not in backends.list_kernels()
    backends.reload_entry_points()
    plugin = sys.modules[_PLUGIN_MODULE]
    assert backends.list_kernels()["fake"] is plugin.kernels
    assert backends.list_kernels()["fake2"] is plugin.both[1]
    # Scanning again finds the same instances: no duplicate-name error, no warning.
    backends.reload_entry_points()
    assert backends.list_kernels()["fake"] is plugin.kernels

    X, init = _fit_data(n=60)
    expected = _fit(placement, X, init)
    assert plugin.kernels.calls == 0  # low priority: auto does not pick it
    with anykmeans.config_context(kernels="fake"):
        got = _fit(placement, X, init)
    assert plugin.kernels.calls > 0
    _assert_same_fit(got, expected, placement)


def test_broken_entry_point_warns_and_leaves_the_registry_usable(plugin_path):
    _write_distribution(
        plugin_path, "brokenplugin", {"broken": f"{_BROKEN_MODULE}:kernels"},
        {_BROKEN_MODULE: "raise ImportError('the plugin exploded')\n"},
    )
    _write_distribution(
        plugin_path, "fakeplugin", {"fake": f"{_PLUGIN_MODULE}:kernels", "notabackend": f"{_PLUGIN_MODULE}:Fake"},
        {_PLUGIN_MODULE: _PLUGIN_SOURCE},
    )
    with pytest.warns(RuntimeWarning) as record:
        backends.reload_entry_points()
    messages = sorted(str(w.message) for w in record)
    assert len(messages) == 2
    assert "'broken'" in messages[0] and "the plugin exploded" in messages[0]
    assert "'notabackend'" in messages[1] and "must be an instance" in messages[1]

    registered = backends.list_kernels()
    assert {"array_api", "numpy", "fake"} <= set(registered)
    assert "broken" not in registered and "notabackend" not in registered
    X, init = _fit_data(n=60)
    km = KMeans(n_clusters=4, init=init).fit(X)
    assert km.cluster_centers_.shape == (4, 3)
    with anykmeans.config_context(kernels="fake"):
        np.testing.assert_array_equal(KMeans(n_clusters=4, init=init).fit(X).labels_, km.labels_)


# --------------------------------------------------------------------------- whole fits


def test_every_backend_fits_like_the_reference(placement):
    X, init = _fit_data(seed=5)
    with anykmeans.config_context(kernels="array_api"):
        expected = _fit(placement, X, init, tol=0)
    names = [n for n, k in backends.list_kernels().items() if k.supports(placement.xp, placement.device)]
    assert "array_api" in names
    for name in names:
        with anykmeans.config_context(kernels=name):
            got = _fit(placement, X, init, tol=0)
        _assert_same_fit(got, expected, placement)
