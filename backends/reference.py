"""The reference operations, written against the Array API standard only.

Each is a free function that runs on any namespace and device, and is importable and testable
on its own; :class:`anykmeans.backends.Kernels` runs them unless a backend overrides them, and
the conformance tests compare every backend with them. They are lazy-safe: no data-dependent
shapes and no ``bool()`` or ``float()`` of an array.

The composite operations (``assign_and_sum``, ``assign_with_inertia``, ``seeding_pass``,
``seeding_draw``) take the
primitives they are built from as keywords, so that a backend that only has a faster
``assign`` or ``segment_sum`` gets faster composites too.

Rows are ``X - shift`` everywhere (``shift``: a row of length d, or ``None`` for none).
"""

from __future__ import annotations

from .._arrays import as_working
from .._typing import Array, Namespace

__all__ = [
    "assign",
    "assign_and_sum",
    "assign_with_inertia",
    "last_positive",
    "pairwise",
    "seeding_draw",
    "seeding_pass",
    "segment_sum",
    "shifted",
    "sqdist_to_assigned",
]


def shifted(X: Array, shift: Array | None, /) -> Array:
    """The rows ``X - shift`` (``X`` itself when there is no shift)."""
    return X if shift is None else X - shift


def _scores(X: Array, centers: Array, /, *, xp: Namespace) -> Array:
    # ‖c‖² − 2·x·c: the squared distance less ‖x‖², which does not change the argmin.
    centers_sqnorm = xp.vecdot(centers, centers, axis=-1)
    return centers_sqnorm - 2 * (X @ xp.matrix_transpose(centers))


def assign(
    X: Array, centers: Array, /, *, shift: Array | None, xp: Namespace, precision: str = "highest"
) -> tuple[Array, Array]:
    """Nearest center of each row: ``(labels, min_sqdist)``.

    ``labels`` are int32 (the lowest index wins equal scores), ``min_sqdist`` the expanded-form
    squared distance ``‖x‖² − 2x·c + ‖c‖²`` to that center, clamped at 0, in X's dtype.

    With ``precision`` ``"high"`` or ``"medium"`` (float32 data), the scores come from an
    emulation of the tensor cores' reduced-precision product and the near ties are rechecked
    (:func:`anykmeans.backends.precision.assign`): the same labels, and ``min_sqdist`` in
    the direct form.
    """
    if precision != "highest":
        from . import precision as reduced

        return reduced.assign(X, centers, precision=precision, shift=shift, xp=xp, exact=assign)
    rows = shifted(X, shift)
    scores = _scores(rows, centers, xp=xp)
    labels = xp.astype(xp.argmin(scores, axis=1), xp.int32)
    return labels, xp.clip(xp.min(scores, axis=1) + xp.vecdot(rows, rows, axis=-1), min=0)


def pairwise(X: Array, centers: Array, /, *, shift: Array | None, xp: Namespace) -> Array:
    """All squared distances, shape ``(n, k)``, expanded form, clamped at 0."""
    rows = shifted(X, shift)
    x_sqnorm = xp.vecdot(rows, rows, axis=-1)
    return xp.clip(_scores(rows, centers, xp=xp) + x_sqnorm[:, None], min=0)


def segment_sum(
    X: Array, weights: Array, labels: Array, /, *, n_clusters: int, shift: Array | None, xp: Namespace
) -> tuple[Array, Array]:
    """Weighted per-cluster sums of the rows: ``(sums, weight_sums)``.

    ``sums[j] = Σ_{labels[i]=j} weights[i]·row[i]``, shape ``(n_clusters, d)``, and
    ``weight_sums[j] = Σ_{labels[i]=j} weights[i]``, both in X's dtype. A one-hot matmul:
    exact per-term products, and a summation order fixed by the matmul (deterministic).
    """
    rows = shifted(X, shift)
    ids = xp.arange(n_clusters, dtype=labels.dtype, device=_device(X))
    weighted = xp.astype(labels[:, None] == ids[None, :], X.dtype) * weights[:, None]
    return xp.matrix_transpose(weighted) @ rows, xp.sum(weighted, axis=0)


def sqdist_to_assigned(
    X: Array, labels: Array, centers: Array, /, *, shift: Array | None, xp: Namespace
) -> Array:
    """Exact ``‖row[i] − centers[labels[i]]‖²`` per row, in the direct form (no cancellation)."""
    diff = shifted(X, shift) - xp.take(centers, labels, axis=0)
    return xp.vecdot(diff, diff, axis=-1)


def assign_and_sum(
    X: Array, weights: Array, centers: Array, /, *, shift: Array | None, xp: Namespace,
    precision: str = "highest", assign=assign, segment_sum=segment_sum,
) -> tuple[Array, Array, Array, Array]:
    """One E-step and the M-step sums: ``(labels, inertia, sums, weight_sums)``.

    ``labels`` as :func:`assign` (at ``precision``); ``inertia`` the 0-d
    ``Σ weights[i] · min_sqdist[i]``; ``sums`` and ``weight_sums`` as :func:`segment_sum` of
    the rows by their labels.
    """
    rows = shifted(X, shift)  # one centered copy, shared by both primitives
    labels, min_sqdist = assign(rows, centers, shift=None, xp=xp, **_precision_option(precision, assign))
    sums, weight_sums = segment_sum(rows, weights, labels, n_clusters=centers.shape[0], shift=None, xp=xp)
    return labels, xp.sum(weights * min_sqdist), sums, weight_sums


def assign_with_inertia(
    X: Array, weights: Array, centers: Array, /, *, shift: Array | None, xp: Namespace,
    precision: str = "highest", assign=assign, sqdist_to_assigned=sqdist_to_assigned,
) -> tuple[Array, Array]:
    """Labels and the exact inertia of one pass: ``(labels, inertia)``.

    ``labels`` as :func:`assign` (at ``precision``); ``inertia`` the 0-d ``Σ weights[i] · ‖row[i] − centers[labels[i]]‖²``
    with the distances in the direct form (:func:`sqdist_to_assigned`), as a fit reports it.
    """
    # The shift goes to each primitive: a compiled one reads the rows centered, without the
    # copy of all rows that a backend taking every row at once would otherwise make here.
    labels, _ = assign(X, centers, shift=shift, xp=xp, **_precision_option(precision, assign))
    return labels, xp.sum(weights * sqdist_to_assigned(X, labels, centers, shift=shift, xp=xp))


def _precision_option(precision: str, assign) -> dict[str, str]:
    # Passed only when reduced, and to an ``assign`` that takes it: one written before the
    # option keeps working (at "highest").
    from .precision import accepts_precision

    return {} if precision == "highest" or not accepts_precision(assign) else {"precision": precision}


def seeding_pass(
    X: Array, weights: Array, closest: Array, pending: Array, candidates: Array, /, *,
    block_rows: int, shift: Array | None, xp: Namespace, pairwise=pairwise,
) -> tuple[Array, Array]:
    """One greedy k-means++ step: ``(updated, block_sums)``.

    ``updated = min(closest, ‖row[i] − pending‖²)`` takes in the center chosen at the previous
    step (``pending``, shape ``(1, d)``); ``block_sums[b, c]`` is
    ``Σ weights[i] · min(updated[i], ‖row[i] − candidates[c]‖²)`` over the rows of block ``b``
    (``block_rows`` consecutive rows; the last block may be shorter), in X's dtype.
    """
    rows = shifted(X, shift)
    sqdist = pairwise(rows, xp.concat([pending, candidates], axis=0), shift=None, xp=xp)
    updated = xp.minimum(closest, sqdist[:, 0])
    terms = weights[:, None] * xp.minimum(sqdist[:, 1:], updated[:, None])
    n_rows, n_candidates = terms.shape
    n_blocks = -(-n_rows // block_rows)
    padding = n_blocks * block_rows - n_rows
    if padding:
        zeros = xp.zeros((padding, n_candidates), dtype=terms.dtype, device=_device(terms))
        terms = xp.concat([terms, zeros], axis=0)
    return updated, xp.sum(xp.reshape(terms, (n_blocks, block_rows, n_candidates)), axis=1)


def seeding_draw(
    X: Array, weights: Array, closest: Array, pending: Array, block_sums: Array, targets: Array, /, *,
    block_rows: int, shift: Array | None, xp: Namespace, pairwise=pairwise,
) -> Array:
    """Row indices drawn with probability ∝ ``weights · min(closest, ‖row − pending‖²)``.

    ``block_sums`` holds those terms summed over blocks of ``block_rows`` rows (from
    :func:`seeding_pass`) and ``targets`` are uniform draws scaled by their total. Each target
    finds its block from the block sums and only that block's terms are recomputed: the
    result is the row ``i`` with ``cumulative[i-1] <= target < cumulative[i]``, never one
    with a zero term. Takes all rows of X (it reads only the drawn blocks); int64 indices.
    """
    n_samples = X.shape[0]
    cumulative = xp.cumulative_sum(block_sums)
    # A target at or past the total (rounding) belongs to the last block with a positive sum.
    blocks = xp.minimum(xp.searchsorted(cumulative, targets, side="right"), last_positive(block_sums, xp=xp))
    blocks = xp.astype(blocks, xp.int64)
    residual = targets - (xp.take(cumulative, blocks) - xp.take(block_sums, blocks))
    residual = xp.maximum(residual, xp.zeros_like(residual))  # rounding can make it negative
    offsets = xp.arange(block_rows, dtype=xp.int64, device=_device(blocks))
    rows = blocks[:, None] * block_rows + offsets[None, :]
    valid = rows < n_samples
    flat = xp.reshape(xp.minimum(rows, n_samples - 1), (-1,))
    sqdist = pairwise(as_working(xp.take(X, flat, axis=0), xp=xp), pending, shift=shift, xp=xp)[:, 0]
    terms = xp.reshape(xp.take(weights, flat) * xp.minimum(xp.take(closest, flat), sqdist), rows.shape)
    terms = xp.where(valid, xp.astype(terms, block_sums.dtype), 0)
    within = xp.cumulative_sum(terms, axis=1)
    # The first row whose running sum passes the residual; rounding can leave the residual at
    # or past the block's recomputed total, and then the last row with a positive term is
    # taken (the block's first row if none). Found from the terms, not from the running sums,
    # which a parallel scan may round differently along a run of zero terms.
    passed = xp.sum(xp.astype(within <= residual[:, None], xp.int64), axis=1)
    last_term = xp.max(xp.where(terms > 0, offsets, 0), axis=1)
    return xp.minimum(blocks * block_rows + xp.minimum(passed, last_term), n_samples - 1)


def last_positive(values: Array, /, *, xp: Namespace) -> Array:
    """The index of the last positive entry of a 1-d array (0 if none), as a 0-d array: where a
    draw that rounding put at or past the total of ``values`` belongs."""
    return values.shape[0] - 1 - xp.argmax(xp.astype(xp.flip(values > 0), xp.int8))


def _device(x: Array) -> object:
    from array_api_compat import device

    return device(x)
