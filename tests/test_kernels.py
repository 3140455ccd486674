"""Conformance: every operation of every registered backend against the reference operations
(:mod:`anykmeans.backends.reference`), on the same inputs, in every placement the backend
claims: ties, equal centers, zero weights, shifted and unshifted rows, float32 and float64.

The reference itself is checked against brute-force NumPy. A third-party backend registered
before the suite runs is checked too.
"""

from __future__ import annotations

import numpy as np
import pytest

from anykmeans import backends
from anykmeans.backends import reference

DTYPES = ["float32", "float64"]
# Rounding of expanded-form distances and of sums, relative to the magnitudes involved.
RTOL = {"float32": 1e-5, "float64": 1e-12}
# Centers 2 and 5 are equal: a backend may label their rows with either, the core ties them.
EQUAL = (2, 5)


def _supporting(placement):
    found = [k for k in backends.list_kernels().values() if k.supports(placement.xp, placement.device)]
    assert backends.list_kernels()["array_api"] in found
    return found


def _problem(dtype, *, n=300, d=5, k=7, seed=0):
    """Rows near k centers, far from the origin (so the shift matters), centers in the
    coordinates of the mean-centered rows with two equal, and weights with zeros."""
    rng = np.random.default_rng(seed)
    offset = rng.uniform(50.0, 100.0, size=d)
    centers = rng.normal(scale=6.0, size=(k, d))
    centers[EQUAL[1]] = centers[EQUAL[0]]
    X = offset + centers[rng.integers(0, k, size=n)] + rng.normal(scale=0.7, size=(n, d))
    weights = rng.uniform(0.5, 2.0, size=n)
    weights[rng.random(n) < 0.2] = 0.0
    shift = X.mean(axis=0)
    return X.astype(dtype), weights.astype(dtype), centers.astype(dtype), shift.astype(dtype)


def _tied(labels):
    """Labels with the equal centers tied to the lower index."""
    labels = np.asarray(labels).copy()
    labels[labels == EQUAL[1]] = EQUAL[0]
    return labels


def _merged(sums):
    """Per-center sums with the equal centers' sums added into the lower index."""
    sums = np.asarray(sums, np.float64).copy()
    sums[EQUAL[0]] += sums[EQUAL[1]]
    sums[EQUAL[1]] = 0
    return sums


def _atol(X, centers, shift, dtype):
    rows = np.asarray(X, np.float64) - (0 if shift is None else shift)
    scale = (rows * rows).sum(axis=1).max() + (np.asarray(centers, np.float64) ** 2).sum(axis=1).max()
    return 4 * RTOL[dtype] * scale


def _placed(placement, *arrays):
    return [None if a is None else placement.asarray(a) for a in arrays]


def _check_placed(placement, array, dtype=None):
    import array_api_compat

    assert array_api_compat.array_namespace(array) is placement.xp
    assert array_api_compat.device(array) == placement.device
    if dtype is not None:
        assert array.dtype == dtype


@pytest.fixture(params=[False, True], ids=["unshifted", "shifted"])
def shifted(request):
    return request.param


# --------------------------------------------------------------------------- the reference


@pytest.mark.parametrize("dtype", DTYPES)
def test_reference_matches_brute_force(placement, dtype, shifted):
    X, weights, centers, shift = _problem(dtype)
    shift = shift if shifted else None
    rows = X.astype(np.float64) - (0 if shift is None else shift)
    exact = ((rows[:, None, :] - centers.astype(np.float64)[None]) ** 2).sum(axis=-1)
    Xd, wd, Cd, sd = _placed(placement, X, weights, centers, shift)
    xp, atol = placement.xp, _atol(X, centers, shift, dtype)

    labels, min_sqdist = map(placement.to_numpy, reference.assign(Xd, Cd, shift=sd, xp=xp))
    assert labels.dtype == np.int32
    if shifted:  # unshifted, every row is about equally far from all centers
        np.testing.assert_array_equal(_tied(labels), _tied(exact.argmin(axis=1)))
    np.testing.assert_allclose(min_sqdist, exact[np.arange(len(X)), labels], rtol=RTOL[dtype], atol=atol)
    pairwise = placement.to_numpy(reference.pairwise(Xd, Cd, shift=sd, xp=xp))
    np.testing.assert_allclose(pairwise, exact, rtol=RTOL[dtype], atol=atol)
    assigned = placement.to_numpy(reference.sqdist_to_assigned(Xd, placement.asarray(labels), Cd, shift=sd, xp=xp))
    np.testing.assert_allclose(assigned, exact[np.arange(len(X)), labels], rtol=4 * RTOL[dtype])
    with_labels, total = reference.assign_with_inertia(Xd, wd, Cd, shift=sd, xp=xp)
    np.testing.assert_array_equal(placement.to_numpy(with_labels), labels)
    exact_inertia = (weights.astype(np.float64) * exact[np.arange(len(X)), labels]).sum()
    np.testing.assert_allclose(float(total), exact_inertia, rtol=8 * RTOL[dtype])

    sums, weight_sums = map(placement.to_numpy, reference.segment_sum(
        Xd, wd, placement.asarray(labels), n_clusters=7, shift=sd, xp=xp
    ))
    expected = np.zeros((7, X.shape[1]))
    np.add.at(expected, labels, weights.astype(np.float64)[:, None] * rows)
    magnitude = np.zeros((7, X.shape[1]))
    np.add.at(magnitude, labels, np.abs(weights.astype(np.float64)[:, None] * rows))
    assert np.all(np.abs(sums - expected) <= 4 * RTOL[dtype] * magnitude)
    np.testing.assert_allclose(weight_sums, np.bincount(labels, weights, minlength=7), rtol=4 * RTOL[dtype])


# --------------------------------------------------------------------------- every backend


@pytest.mark.parametrize("dtype", DTYPES)
def test_assign_pairwise_and_distances_match_the_reference(placement, dtype, shifted):
    X, weights, centers, shift = _problem(dtype, seed=1)
    shift = shift if shifted else None
    Xd, wd, Cd, sd = _placed(placement, X, weights, centers, shift)
    xp, atol, rtol = placement.xp, _atol(X, centers, shift, dtype), RTOL[dtype]
    ref_labels, ref_min = map(placement.to_numpy, reference.assign(Xd, Cd, shift=sd, xp=xp))
    ref_pairwise = placement.to_numpy(reference.pairwise(Xd, Cd, shift=sd, xp=xp))
    labels_d = placement.asarray(ref_labels)
    ref_assigned = placement.to_numpy(reference.sqdist_to_assigned(Xd, labels_d, Cd, shift=sd, xp=xp))

    for kernels in _supporting(placement):
        labels, min_sqdist = kernels.assign(Xd, Cd, shift=sd, xp=xp)
        _check_placed(placement, labels, placement.xp.int32)
        _check_placed(placement, min_sqdist, Xd.dtype)
        np.testing.assert_array_equal(_tied(placement.to_numpy(labels)), _tied(ref_labels), err_msg=kernels.name)
        np.testing.assert_allclose(placement.to_numpy(min_sqdist), ref_min, rtol=rtol, atol=atol, err_msg=kernels.name)
        pairwise = kernels.pairwise(Xd, Cd, shift=sd, xp=xp)
        _check_placed(placement, pairwise, Xd.dtype)
        np.testing.assert_allclose(placement.to_numpy(pairwise), ref_pairwise, rtol=rtol, atol=atol, err_msg=kernels.name)
        assigned = kernels.sqdist_to_assigned(Xd, labels_d, Cd, shift=sd, xp=xp)
        _check_placed(placement, assigned, Xd.dtype)
        np.testing.assert_allclose(placement.to_numpy(assigned), ref_assigned, rtol=4 * rtol, err_msg=kernels.name)
        with_labels, total = kernels.assign_with_inertia(Xd, wd, Cd, shift=sd, xp=xp)
        _check_placed(placement, with_labels, placement.xp.int32)
        np.testing.assert_array_equal(_tied(placement.to_numpy(with_labels)), _tied(ref_labels), err_msg=kernels.name)
        expected = (weights.astype(np.float64) * ref_assigned.astype(np.float64)).sum()
        np.testing.assert_allclose(float(total), expected, rtol=8 * rtol, err_msg=kernels.name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sums_match_the_reference(placement, dtype, shifted):
    X, weights, centers, shift = _problem(dtype, seed=2)
    shift = shift if shifted else None
    Xd, wd, Cd, sd = _placed(placement, X, weights, centers, shift)
    xp, rtol = placement.xp, RTOL[dtype]
    ref_labels, ref_inertia, ref_sums, ref_weight_sums = map(
        placement.to_numpy, reference.assign_and_sum(Xd, wd, Cd, shift=sd, xp=xp)
    )
    # Labels that leave clusters 1, 4 and 6 without rows, and cluster 3 with rows of zero weight.
    rng = np.random.default_rng(3)
    labels = rng.choice(np.array([0, 2, 3, 5]), size=len(X)).astype(np.int32)
    weights_some_zero = np.where(labels == 3, 0, weights).astype(dtype)
    args = (Xd, placement.asarray(weights_some_zero), placement.asarray(labels))
    seg_sums, seg_weight_sums = map(
        placement.to_numpy, reference.segment_sum(*args, n_clusters=7, shift=sd, xp=xp)
    )
    rows = X.astype(np.float64) - (0 if shift is None else shift)
    magnitude = np.abs(weights.astype(np.float64)[:, None] * rows).sum(axis=0) + np.abs(ref_sums).max()

    for kernels in _supporting(placement):
        got = kernels.assign_and_sum(Xd, wd, Cd, shift=sd, xp=xp)
        for value, shape in zip(got, [(len(X),), (), (7, X.shape[1]), (7,)]):
            _check_placed(placement, value)
            assert tuple(value.shape) == shape, kernels.name
        labels_got, inertia, sums, weight_sums = map(placement.to_numpy, got)
        assert got[2].dtype == got[3].dtype == Xd.dtype and got[0].dtype == placement.xp.int32
        np.testing.assert_array_equal(_tied(labels_got), _tied(ref_labels), err_msg=kernels.name)
        np.testing.assert_allclose(inertia, ref_inertia, rtol=4 * rtol, err_msg=kernels.name)
        np.testing.assert_allclose(_merged(sums), _merged(ref_sums), rtol=4 * rtol, atol=4 * rtol * magnitude.max())
        np.testing.assert_allclose(_merged(weight_sums), _merged(ref_weight_sums), rtol=4 * rtol)

        sums, weight_sums = kernels.segment_sum(*args, n_clusters=7, shift=sd, xp=xp)
        _check_placed(placement, sums, Xd.dtype)
        _check_placed(placement, weight_sums, Xd.dtype)
        sums, weight_sums = placement.to_numpy(sums), placement.to_numpy(weight_sums)
        np.testing.assert_allclose(sums, seg_sums, rtol=4 * rtol, atol=4 * rtol * magnitude.max(), err_msg=kernels.name)
        np.testing.assert_allclose(weight_sums, seg_weight_sums, rtol=4 * rtol, err_msg=kernels.name)
        # Clusters without rows, and cluster 3 whose rows all weigh 0, sum to exactly zero.
        for empty in (1, 3, 4, 6):
            assert np.all(sums[empty] == 0) and weight_sums[empty] == 0, kernels.name


@pytest.mark.parametrize("dtype", DTYPES)
def test_exact_ties_go_to_the_lowest_index(placement, dtype, shifted):
    # Small integers: every distance is exact. Each row is nearest to centers 1, 3, 6 and 9
    # alike (1 and 6 are equal); all other centers are farther.
    k, d = 12, 4
    C = np.zeros((k, d))
    C[:, 0] = 2.0
    for j, (axis, sign) in {1: (1, 1.0), 3: (1, -1.0), 6: (1, 1.0), 9: (2, 1.0)}.items():
        C[j] = 0.0
        C[j, axis] = sign
    X = np.zeros((70, d))
    X[:, 3] = np.arange(70) % 7  # on the axis that all four are orthogonal to
    shift = np.array([3.0, -2.0, 1.0, 4.0]) if shifted else None
    X_stored = X + (0 if shift is None else shift)
    Xd, Cd, sd = _placed(placement, X_stored.astype(dtype), C.astype(dtype), None if shift is None else shift.astype(dtype))
    wd = placement.asarray(np.ones(70, dtype=dtype))
    xp = placement.xp
    for kernels in _supporting(placement):
        labels, min_sqdist = map(placement.to_numpy, kernels.assign(Xd, Cd, shift=sd, xp=xp))
        np.testing.assert_array_equal(labels, np.full(70, 1), err_msg=kernels.name)
        np.testing.assert_array_equal(min_sqdist, 1.0 + X[:, 3] ** 2, err_msg=kernels.name)
        labels, inertia, sums, weight_sums = map(placement.to_numpy, kernels.assign_and_sum(Xd, wd, Cd, shift=sd, xp=xp))
        np.testing.assert_array_equal(labels, np.full(70, 1), err_msg=kernels.name)
        assert float(inertia) == float((1.0 + X[:, 3] ** 2).sum())
        np.testing.assert_array_equal(weight_sums, np.eye(k)[1] * 70)
        np.testing.assert_array_equal(sums[1], X.sum(axis=0))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("block_rows", [7, 64])
def test_seeding_operations_match_the_reference(placement, dtype, shifted, block_rows):
    # Neither 7 nor 64 divides the 300 rows: the last block is short.
    X, weights, centers, shift = _problem(dtype, seed=4)
    shift = shift if shifted else None
    rows = X.astype(np.float64) - (0 if shift is None else shift)
    to_pending = ((rows - centers[3].astype(np.float64)) ** 2).sum(axis=1)
    closest = (to_pending * np.random.default_rng(5).uniform(0.5, 1.5, size=len(X))).astype(dtype)
    Xd, wd, cd, Cd, sd = _placed(placement, X, weights, closest, centers, shift)
    pending, candidates = Cd[3:4, :], Cd[:3, :]
    xp, rtol = placement.xp, RTOL[dtype]
    options = dict(block_rows=block_rows, shift=sd, xp=xp)
    ref_updated, ref_blocks = map(
        placement.to_numpy, reference.seeding_pass(Xd, wd, cd, pending, candidates, **options)
    )
    # The pending center lowered some distances and not others: the test can tell.
    assert (ref_updated < closest).any() and (ref_updated == closest).any()
    block_sums = placement.asarray(ref_blocks[:, 0])
    targets = placement.asarray(np.random.default_rng(6).uniform(size=50) * ref_blocks[:, 0].sum())
    ref_drawn = placement.to_numpy(reference.seeding_draw(Xd, wd, cd, pending, block_sums, targets, **options))

    for kernels in _supporting(placement):
        updated, blocks = kernels.seeding_pass(Xd, wd, cd, pending, candidates, **options)
        _check_placed(placement, updated, Xd.dtype)
        _check_placed(placement, blocks, Xd.dtype)
        assert tuple(blocks.shape) == (-(-len(X) // block_rows), 3)
        np.testing.assert_allclose(placement.to_numpy(updated), ref_updated, rtol=rtol, atol=rtol * ref_updated.max())
        np.testing.assert_allclose(placement.to_numpy(blocks), ref_blocks, rtol=rtol, atol=rtol * ref_blocks.max())
        drawn = kernels.seeding_draw(Xd, wd, cd, pending, block_sums, targets, **options)
        _check_placed(placement, drawn)
        np.testing.assert_array_equal(placement.to_numpy(drawn), ref_drawn, err_msg=kernels.name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_operations_are_deterministic(placement, dtype):
    X, weights, centers, shift = _problem(dtype, n=20_000, d=16, seed=7)
    Xd, wd, Cd, sd = _placed(placement, X, weights, centers, shift)
    for kernels in _supporting(placement):
        runs = [kernels.assign_and_sum(Xd, wd, Cd, shift=sd, xp=placement.xp) for _ in range(2)]
        for a, b in zip(*runs):
            assert placement.to_numpy(a).tobytes() == placement.to_numpy(b).tobytes(), kernels.name


def test_every_builtin_backend_is_registered_and_picks_its_placements(placement):
    names = {k.name for k in _supporting(placement)}
    expected = {"numpy": {"array_api", "numpy", "numba"}, "torch-cpu": {"array_api", "torch"},
                "cupy": {"array_api", "cupy"}, "torch-cuda": {"array_api", "torch_cuda"}}.get(placement.id, {"array_api"})
    import importlib.util

    if importlib.util.find_spec("numba") is None:
        expected = expected - {"numba"}
    assert expected <= names
    # The CUDA kernels claim CUDA arrays only.
    assert ("torch_cuda" in names) == (placement.id == "torch-cuda")
    assert ("cupy" in names) == (placement.id == "cupy")
