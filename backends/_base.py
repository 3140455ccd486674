"""The two kernel protocols. A backend is an instance of one of these classes.

Every method works on one chunk of rows and must stay lazy-safe: no data-dependent shapes and
no ``bool()``/``float()`` on arrays, so the same code runs on eager and lazy namespaces.
"""

from __future__ import annotations

import abc
from typing import Any

from array_api_compat import device as array_device


class Backend(abc.ABC):
    """Common part: a name, a priority for ``auto`` selection and the placements it supports."""

    kind: str = ""
    name: str = ""
    #: ``auto`` picks the supporting backend with the highest priority (ties: first registered).
    priority: int = 0

    @abc.abstractmethod
    def supports(self, xp: Any, device: Any) -> bool:
        """Whether this backend can run on arrays of namespace ``xp`` on ``device``."""

    def __repr__(self) -> str:
        return f"<{self.kind} backend {self.name!r} (priority {self.priority})>"


class DistanceBackend(Backend):
    """Squared Euclidean distances between rows and centers."""

    kind = "distance"

    @abc.abstractmethod
    def nearest(self, X: Any, centers: Any, *, xp: Any) -> tuple[Any, Any]:
        """Nearest center of each row.

        Returns ``(labels, min_sqdist)``: integer labels of shape ``(n,)`` (the lowest index
        wins ties) and the squared distance to that center, clamped at 0, shape ``(n,)``.
        Identical centers need not score identically here (a matmul rounds by column
        position); the engine maps them to the lowest of their indices.
        """

    @abc.abstractmethod
    def pairwise(self, X: Any, centers: Any, *, xp: Any) -> Any:
        """All squared distances, shape ``(n, k)``, clamped at 0."""

    # The methods below have generic implementations built from ``nearest``, ``pairwise``
    # and the reduction backend; a backend overrides them to fuse the passes.

    def preferred_chunk_rows(self, n_features: int, n_columns: int, itemsize: int) -> int | None:
        """Rows per chunk this backend works best on (``None``: as many as
        ``working_memory`` allows). The engine never exceeds the working-memory bound."""
        return None

    def nearest_shifted(self, X: Any, centers: Any, *, xp: Any, shift: Any = None) -> tuple[Any, Any]:
        """``nearest`` of the rows ``X - shift`` (``shift``: a row, or ``None`` for none); a
        fused kernel can subtract it as it reads X instead of making a centered copy."""
        return self.nearest(_shifted(X, shift), centers, xp=xp)

    def nearest_and_sum(
        self, X: Any, centers: Any, weights: Any, label_map: Any, reduction: ReductionBackend,
        *, xp: Any, shift: Any = None,
    ) -> tuple[Any, Any, Any, Any]:
        """One E-step and the M-step sums for a chunk: ``(labels, inertia, sums, weight_sums)``.

        ``inertia`` is the 0-d ``Σ weights[i] · min_sqdist[i]`` over the chunk's rows.

        The rows are ``X - shift``, as in ``nearest_shifted``. ``labels`` are mapped
        through ``label_map`` (index of the first of equal centers) before summing. The sums
        must equal ``reduction.segment_sum``'s up to rounding and be deterministic; a backend
        fuses the two only for its own reduction.
        """
        X = _shifted(X, shift)
        labels, min_sqdist = self.nearest(X, centers, xp=xp)
        labels = xp.take(label_map, labels)
        sums, weight_sums = reduction.segment_sum(X, labels, weights, centers.shape[0], xp=xp)
        return labels, xp.sum(weights * min_sqdist), sums, weight_sums

    def seeding_pass(
        self, X: Any, candidates: Any, pending: Any, closest: Any, weights: Any, *,
        xp: Any, shift: Any = None, block_rows: int,
    ) -> tuple[Any, Any]:
        """One k-means++ step for a chunk: ``(updated, block_potentials)``.

        ``updated = min(closest, ‖X[i] − pending‖²)`` takes in the center chosen at the
        previous step (``pending``, shape ``(1, d)``), and ``block_potentials[b, c]`` is
        ``Σ weights[i] · min(updated[i], ‖X[i] − candidates[c]‖²)`` over the rows of block
        ``b`` (``block_rows`` consecutive rows; the last block may be shorter). Rows are
        ``X - shift`` as above. A fused kernel evaluates the pending center and the
        candidates in one read of the rows.
        """
        X = _shifted(X, shift)
        sqdist = self.pairwise(X, xp.concat([pending, candidates], axis=0), xp=xp)
        updated = xp.minimum(closest, sqdist[:, 0])
        terms = weights[:, None] * xp.minimum(sqdist[:, 1:], updated[:, None])
        n_rows, n_candidates = terms.shape
        n_blocks = -(-n_rows // block_rows)
        padding = n_blocks * block_rows - n_rows
        if padding:
            zeros = xp.zeros((padding, n_candidates), dtype=terms.dtype, device=array_device(terms))
            terms = xp.concat([terms, zeros], axis=0)
        return updated, xp.sum(xp.reshape(terms, (n_blocks, block_rows, n_candidates)), axis=1)

    def seeding_draw(
        self, X: Any, weights: Any, closest: Any, pending: Any, block_sums: Any, targets: Any, *,
        xp: Any, shift: Any = None, block_rows: int,
    ) -> Any:
        """Rows drawn with probability ∝ ``weights · min(closest, ‖X[i] − pending‖²)``.

        ``block_sums`` holds those terms summed over blocks of ``block_rows`` rows (from
        ``seeding_pass``) and ``targets`` are uniform draws scaled by their total. Each target
        finds its block from the block sums, and only that block's terms are recomputed: the
        result is the row ``i`` with ``cumulative[i-1] <= target < cumulative[i]``, never one
        with a zero term. Works on all of X (not a chunk); rows are ``X - shift`` as above.
        """
        n_samples = X.shape[0]
        cumulative = xp.cumulative_sum(block_sums)
        blocks = xp.minimum(xp.searchsorted(cumulative, targets, side="right"), block_sums.shape[0] - 1)
        residual = targets - (xp.take(cumulative, blocks) - xp.take(block_sums, blocks))
        residual = xp.maximum(residual, xp.zeros_like(residual))  # rounding can make it negative
        rows = blocks[:, None] * block_rows + xp.arange(block_rows, dtype=blocks.dtype, device=array_device(blocks))
        valid = rows < n_samples
        flat = xp.reshape(xp.minimum(rows, n_samples - 1), (-1,))
        sqdist = self.pairwise(_shifted(xp.take(X, flat, axis=0), shift), pending, xp=xp)[:, 0]
        terms = xp.reshape(xp.take(weights, flat) * xp.minimum(xp.take(closest, flat), sqdist), rows.shape)
        within = xp.cumulative_sum(xp.where(valid, xp.astype(terms, block_sums.dtype), 0), axis=1)
        # The first row whose running sum passes the residual; rounding can leave the residual
        # at or past the block's recomputed total, and then the row where that total is
        # reached (the last with a positive term) is taken.
        passed = xp.sum(xp.astype(within <= residual[:, None], blocks.dtype), axis=1)
        reached = xp.sum(xp.astype(within < within[:, -1:], blocks.dtype), axis=1)
        return xp.minimum(blocks * block_rows + xp.minimum(passed, reached), n_samples - 1)

    def sqdist_to_assigned(self, X: Any, centers: Any, labels: Any, *, xp: Any, shift: Any = None) -> Any:
        """Exact ``‖X[i] − centers[labels[i]]‖²`` per row, in the direct form (no cancellation);
        rows are ``X - shift`` as above."""
        X = _shifted(X, shift)
        diff = X - xp.take(centers, labels, axis=0)
        return xp.vecdot(diff, diff, axis=-1)


class ReductionBackend(Backend):
    """Weighted per-cluster sums of rows."""

    kind = "reduction"

    @abc.abstractmethod
    def segment_sum(
        self, X: Any, labels: Any, weights: Any, n_clusters: int, *, xp: Any
    ) -> tuple[Any, Any]:
        """``(sums, weight_sums)``: ``sums[j] = Σ_{labels[i]=j} weights[i]·X[i]`` of shape
        ``(n_clusters, d)`` in X's dtype, and ``weight_sums[j] = Σ_{labels[i]=j} weights[i]``.

        Must be deterministic: the same inputs give bit-identical sums.
        """


def _shifted(X: Any, shift: Any) -> Any:
    """The rows ``X - shift`` (``X`` itself when there is no shift)."""
    return X if shift is None else X - shift
