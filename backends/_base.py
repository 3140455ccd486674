"""The two kernel protocols. A backend is an instance of one of these classes.

Every method works on one chunk of rows and must stay lazy-safe: no data-dependent shapes and
no ``bool()``/``float()`` on arrays, so the same code runs on eager and lazy namespaces.
"""

from __future__ import annotations

import abc
from typing import Any


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
