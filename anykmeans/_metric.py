"""The ``metric`` parameter: Euclidean k-means, or spherical k-means by cosine distance.

Spherical k-means runs the Euclidean machinery on rows scaled to unit length: for unit
vectors ``‖x − c‖² = 2 (1 − cos(x, c))``, so the nearest center, k-means++'s D² sampling, the
farthest points that refill empty clusters and Elkan's bounds all order rows as the cosine
distance does, through the same kernels. What changes is that centers are put back on the
sphere after each update and that the inertia is ``Σ w · (1 − cos) = ½ Σ w · ‖x − c‖²``.
"""

from __future__ import annotations

import warnings

from ._arrays import as_working, namespace_and_device
from ._exceptions import InvalidParameterError
from ._typing import Array, Namespace

METRICS = ("euclidean", "cosine")

# The inertia and transform of spherical k-means are this times the squared Euclidean
# distance between unit rows and unit centers: 1 − cos = ½ ‖x − c‖².
COSINE_PER_SQUARED_DISTANCE = 0.5


def _row_norms(X: Array, /, *, xp: Namespace) -> Array:
    with warnings.catch_warnings():
        # NumPy warns of the over- or underflow handled below.
        warnings.simplefilter("ignore", RuntimeWarning)
        norms = xp.sqrt(xp.sum(X * X, axis=1))
    if bool(xp.all((norms > 0) & xp.isfinite(norms))):
        return norms
    # A square over- or underflowed (entries beyond ~1e154 or below ~1e-162 in float64,
    # ~1e19 and ~1e-23 in float32), or a row is zero: scale each row by its largest entry
    # first. Only then: it costs another pass and a temporary copy.
    scale = xp.max(xp.abs(X), axis=1)
    scaled = X / xp.where(scale > 0, scale, xp.ones_like(scale))[:, None]
    return scale * xp.sqrt(xp.sum(scaled * scaled, axis=1))


def unit_rows(X: Array, /, *, xp: Namespace, what: str = "X") -> Array:
    """The rows of ``X`` scaled to unit Euclidean norm: ``X`` itself when they already are
    (to rounding: data normalised beforehand is not copied), else a new array (on Dask a lazy
    one, each block scaled as a pass reads it). A zero row has no direction: a ``ValueError``
    says which. float16 / bfloat16 rows are scaled in float32 (a float32 copy of X)."""
    X = as_working(X, xp=xp)
    norms = _row_norms(X, xp=xp)
    # The rounding of a norm computed in X's dtype, and of the scaling that made it 1.
    tolerance = 2 * X.shape[1] * xp.finfo(X.dtype).eps
    if bool(xp.all(xp.abs(norms - 1) <= tolerance)):
        return X
    zero = norms == 0
    count = int(xp.sum(xp.astype(zero, xp.int64)))
    if count:
        first = int(xp.argmax(xp.astype(zero, xp.int8)))
        raise ValueError(
            f"{what} has {count} row{'s' if count > 1 else ''} of zero norm (the first is row "
            f"{first}): the cosine distance of a zero vector is undefined. Remove "
            f"{'them' if count > 1 else 'it'}, or use metric='euclidean'."
        )
    return X / norms[:, None]


def unit_data(X: Array, init_centers: Array | None, /, *, xp: Namespace) -> tuple[Array, Array | None]:
    """X's rows and the explicit initial centers (``None`` kept), of any host library,
    scaled to unit length: what a spherical fit works on."""
    X = unit_rows(X, xp=xp)
    if init_centers is not None:
        init_centers = unit_rows(init_centers, xp=namespace_and_device(init_centers)[0], what="init")
    return X, init_centers


def renormalized(centers: Array, previous: Array, /, *, xp: Namespace) -> Array:
    """``centers`` put back on the unit sphere; a center that sums to zero (its rows weigh
    nothing, or cancel out exactly) has no direction and keeps ``previous``."""
    # Sums of unit rows (or means of them): their squares neither over- nor underflow.
    norms = xp.sqrt(xp.sum(centers * centers, axis=1))
    positive = norms > 0
    scaled = centers / xp.where(positive, norms, xp.ones_like(norms))[:, None]
    return xp.where(positive[:, None], scaled, previous)


def check_metric(value: object, estimator_name: str) -> str:
    if not isinstance(value, str) or value not in METRICS:
        raise InvalidParameterError(
            f"The 'metric' parameter of {estimator_name} must be a str among "
            f"{{'euclidean', 'cosine'}}. Got {value!r} instead."
        )
    return value
