"""Nearest centers from reduced-precision products, with exact labels.

``matmul_precision="high"`` and ``"medium"`` let the distance products run on tensor cores:
``x·c`` from inputs rounded to TF32 (11 significant bits) or BF16 (8 significant bits),
accumulated in float32. A row takes its label from these fast scores only when its best and
runner-up scores are further apart than :func:`margins`, a proven bound on the errors of both
the fast scores and the data-precision ones; every other row (a *near tie*) is rechecked in
the data's own precision. The labels are then those of ``"highest"``, except where two
centers are equally near within the rounding of the data's precision itself. The bound and
its derivation are in ``docs/precision.md``.

Here are the pieces in the Array API (the reference kernels emulate the fast product with
them, on any namespace), and :func:`assign`, the reference's certified assignment. A GPU
backend runs the fast product on its tensor cores and uses :func:`margins` and
:func:`center_stats` for the same test.

Only float32 data takes the fast path: float64 data (which no tensor core speeds up without
losing its precision) computes at ``"highest"`` in every mode.
"""

from __future__ import annotations

import functools
import inspect
from typing import NamedTuple

from .._typing import Array, Namespace

__all__ = [
    "PRECISIONS",
    "SIGNIFICANT_BITS",
    "CenterStats",
    "accepts_precision",
    "assign",
    "center_stats",
    "fast_scores",
    "margins",
    "near_ties",
    "round_significand",
    "uses_fast_product",
]

PRECISIONS = ("highest", "high", "medium")
#: Significant bits (the implicit leading one included) of the fast product's inputs.
SIGNIFICANT_BITS = {"high": 11, "medium": 8}
_FLOAT32_BITS = 24
# Unit roundoff of float32 (round to nearest), and the unit of an accumulation that
# truncates (tensor cores align and truncate their addends, Fasi et al. 2021).
_U = 2.0**-24
_U_TRUNCATED = 2.0**-23


def accepts_precision(operation: object, /) -> bool:
    """Whether a kernel operation takes ``precision=`` by name (kernels written before the
    option did not, and compute at ``"highest"``: they are called without it; so is a wrapper
    that passes ``**kwargs`` on, which may end in one of them)."""
    try:
        return _names_precision(operation)
    except TypeError:  # not hashable: not cached
        return _names_precision.__wrapped__(operation)


@functools.lru_cache(maxsize=256)
def _names_precision(operation: object) -> bool:
    try:
        return "precision" in inspect.signature(operation).parameters
    except (TypeError, ValueError):
        return False


def uses_fast_product(precision: str, dtype: object, /, *, xp: Namespace) -> bool:
    """Whether ``precision`` asks for the reduced-precision product for data of ``dtype``
    (only float32 data has one)."""
    return precision in SIGNIFICANT_BITS and dtype == xp.float32


def round_significand(x: Array, /, *, bits: int, xp: Namespace) -> Array:
    """float32 ``x`` rounded to ``bits`` significant bits (to nearest), still float32.

    Veltkamp's splitting: with ``σ = 2**(24 − bits) + 1``, ``(σx) − ((σx) − x)`` keeps the
    leading ``bits`` bits of x, rounded to nearest. Exact arithmetic facts, no bit casts (which
    the Array API lacks). Values beyond ``3.4e38 / σ`` would overflow; squared norms of such
    data overflow float32 already.
    """
    scale = float(2 ** (_FLOAT32_BITS - bits) + 1)
    big = x * scale
    return big - (big - x)


def _norms(rows: Array, /, *, xp: Namespace) -> Array:
    return xp.sqrt(xp.vecdot(rows, rows, axis=-1))


class CenterStats(NamedTuple):
    """What the bound needs of the centers (0-d arrays, float32): the largest ``‖c‖``, of the
    rounded centers ``‖c̃‖`` and of their rounding residuals ``‖c − c̃‖``, and the largest
    ``‖c‖²`` as the scores use it."""

    norm: Array
    rounded_norm: Array
    residual_norm: Array
    sqnorm: Array


def center_stats(centers: Array, rounded: Array, centers_sqnorm: Array, /, *, xp: Namespace) -> CenterStats:
    """:class:`CenterStats` of ``centers``, their rounded copy and their squared norms."""
    return CenterStats(
        xp.max(_norms(centers, xp=xp)),
        xp.max(_norms(rounded, xp=xp)),
        xp.max(_norms(centers - rounded, xp=xp)),
        xp.max(centers_sqnorm),
    )


def _gamma(n: float, unit: float) -> float:
    """Higham's γ_n: the relative error bound of a sum of n + 1 terms, ``n·u / (1 − n·u)``."""
    return n * unit / (1 - n * unit)


def margins(
    row_norm: Array, rounded_norm: Array, residual_norm: Array, centers: CenterStats, /, *,
    n_features: int, xp: Namespace,
) -> Array:
    """Per row, the gap between its two best fast scores above which the best is certain.

    For a row x and center c, the scores are ``‖c‖² − 2·x·c``; the fast one uses the product
    of the rounded ``x̃·c̃`` accumulated in float32, the ``"highest"`` one ``x·c`` in
    float32. With ``t`` the exact score, each fast score is within ``A`` of ``t`` and each
    highest score within ``H`` (``docs/precision.md`` derives both)::

        A = 2·(‖x − x̃‖·C + ‖x̃‖·ΔC + γ_acc·‖x̃‖·C̃) + u·(K + 2·(1 + γ_acc)·‖x̃‖·C̃)
        H = 2·γ_d·‖x‖·C + u·(K + 2·(1 + γ_d)·‖x‖·C)

    (C, C̃, ΔC: the largest ‖c‖, ‖c̃‖, ‖c − c̃‖; K the largest ‖c‖²; u = 2⁻²⁴;
    γ_d = γ(d, u) for any order of summation; γ_acc = γ(2d, 2⁻²³): an accumulator that
    truncates, with as many alignment steps as additions). If the fast best beats the
    runner-up by more than ``2·(A + H)``, the exact scores and the highest ones have the
    same strict minimum, at the same center. The result is widened by ``slack`` to cover
    the float32 rounding of this computation (norms, products: a few ``d·u`` relative).
    """
    d = float(n_features)
    gamma_d, gamma_acc = _gamma(d, _U), _gamma(2 * d, _U_TRUNCATED)
    fast = 2 * (residual_norm * centers.norm + rounded_norm * centers.residual_norm
                + gamma_acc * rounded_norm * centers.rounded_norm)
    fast = fast + _U * (centers.sqnorm + 2 * (1 + gamma_acc) * rounded_norm * centers.rounded_norm)
    highest = 2 * gamma_d * row_norm * centers.norm
    highest = highest + _U * (centers.sqnorm + 2 * (1 + gamma_d) * row_norm * centers.norm)
    slack = 1 + max(2.0**-6, 8 * (d + 8) * _U)
    return 2 * (fast + highest) * slack


def fast_scores(rows: Array, centers: Array, /, *, precision: str, xp: Namespace) -> tuple[Array, Array]:
    """The emulated fast scores ``‖c‖² − 2·x̃·c̃`` (inputs rounded, float32 products) and each
    row's margin (:func:`margins`): ``(scores, margins)``."""
    bits = SIGNIFICANT_BITS[precision]
    rounded_rows = round_significand(rows, bits=bits, xp=xp)
    rounded_centers = round_significand(centers, bits=bits, xp=xp)
    centers_sqnorm = xp.vecdot(centers, centers, axis=-1)
    scores = centers_sqnorm - 2 * (rounded_rows @ xp.matrix_transpose(rounded_centers))
    stats = center_stats(centers, rounded_centers, centers_sqnorm, xp=xp)
    row_margins = margins(
        _norms(rows, xp=xp), _norms(rounded_rows, xp=xp), _norms(rows - rounded_rows, xp=xp), stats,
        n_features=rows.shape[1], xp=xp,
    )
    return scores, row_margins


def _best_two(scores: Array, /, *, xp: Namespace) -> tuple[Array, Array, Array]:
    """Each row's lowest-index minimum, its score, and the smallest score of the other columns
    (``+inf`` for one column)."""
    labels = xp.argmin(scores, axis=1)
    best = xp.min(scores, axis=1)
    columns = xp.arange(scores.shape[1], dtype=labels.dtype, device=_device(scores))
    others = xp.where(columns[None, :] == labels[:, None], xp.inf, scores)
    return xp.astype(labels, xp.int32), best, xp.min(others, axis=1)


def near_ties(X: Array, centers: Array, /, *, precision: str, shift: Array | None, xp: Namespace) -> Array:
    """The rows (a bool array) whose fast scores cannot certify their nearest center: the
    rows a fit at ``precision`` rechecks in the data's precision. None for ``"highest"``
    or float64 data."""
    if not uses_fast_product(precision, X.dtype, xp=xp):
        return xp.zeros(X.shape[0], dtype=xp.bool, device=_device(X))
    rows = X if shift is None else X - shift
    scores, row_margins = fast_scores(rows, centers, precision=precision, xp=xp)
    _, best, second = _best_two(scores, xp=xp)
    # NaN gaps (no finite score) are never certain.
    return ~(second - best > row_margins)


def assign(
    X: Array, centers: Array, /, *, precision: str, shift: Array | None, xp: Namespace, exact,
) -> tuple[Array, Array]:
    """Certified nearest centers from the emulated fast scores: ``(labels, sqdist)``.

    ``exact`` is the data-precision ``assign`` primitive: the near ties are gathered and
    passed to it (a compacted recheck of the few rows that need one). ``sqdist`` is the
    direct-form ``‖row − centers[label]‖²`` in the data's precision, not the fast scores.
    """
    rows = X if shift is None else X - shift
    if not uses_fast_product(precision, X.dtype, xp=xp):
        return exact(rows, centers, shift=None, xp=xp)
    scores, row_margins = fast_scores(rows, centers, precision=precision, xp=xp)
    labels, best, second = _best_two(scores, xp=xp)
    del scores
    uncertain = ~(second - best > row_margins)
    (checked,) = xp.nonzero(uncertain)
    if checked.shape[0]:
        exact_labels, _ = exact(xp.take(rows, checked, axis=0), centers, shift=None, xp=xp)
        # Row i's recheck is at position (number of near ties before it): no scatter needed.
        position = xp.cumulative_sum(xp.astype(uncertain, xp.int64)) - 1
        position = xp.clip(position, min=0)
        labels = xp.where(uncertain, xp.take(exact_labels, position), labels)
    diff = rows - xp.take(centers, labels, axis=0)
    return labels, xp.vecdot(diff, diff, axis=-1)


def _device(x: Array) -> object:
    from array_api_compat import device

    return device(x)
