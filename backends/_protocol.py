"""The kernel protocol: one class whose unit is a pass over rows.

A backend is an instance of a :class:`Kernels` subclass. The base class runs the reference
operations (:mod:`anykmeans.backends.reference`); a backend overrides only what it does
faster. The composite operations are built from ``self``'s primitives, so a backend with a
faster ``assign`` or ``segment_sum`` has faster composites without writing them.

Conventions, the same for every operation:

- arrays are positional-only, in one order: ``X`` first, then the other per-row arrays
  (``weights``, ``labels``, ``closest``), then the per-center ones (``centers``, ``pending``,
  ``candidates``) and the rest; options are keyword-only, ``xp`` last;
- the rows are ``X - shift`` (``shift``: a row of length d, or ``None``): a compiled kernel
  subtracts it as it reads X, so that the fit never makes a centered copy of X;
- every operation works on the rows it is given (a chunk chosen by the pass runner, or all
  rows when :meth:`Kernels.max_chunk_rows` returns ``None``), except ``seeding_draw``, which
  takes all rows and reads only the drawn blocks;
- results are deterministic (the same input gives the same bits) and lazy-safe in the
  reference: no data-dependent shapes, no ``bool()`` or ``float()`` of an array;
- ties go to the lowest center index among equal scores. Equal centers may score differently
  (a matmul rounds a column by its position); the core, not the kernels, maps them to the
  lowest of their indices.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Iterator
from pathlib import Path

from .._typing import Array, Device, Namespace
from . import reference

# working_memory="auto" on the host: this many L2 caches of one core, within these bounds.
_HOST_L2_MULTIPLE = 4
_HOST_BUDGET_DEFAULT = 8 * 2**20
_HOST_BUDGET_BOUNDS = (4 * 2**20, 64 * 2**20)
# working_memory="auto" on a device the kernels do not ask for its free memory.
ACCELERATOR_BUDGET = 256 * 2**20
_ACCELERATOR_NAMES = ("cuda", "gpu", "tpu", "mps", "rocm", "xpu", "metal")


def is_accelerator(device: Device) -> bool:
    """Whether ``device`` (of any library) names an accelerator rather than host memory."""
    name = f"{getattr(device, 'type', '')} {getattr(device, 'platform', '')} {device}".lower()
    return any(word in name for word in _ACCELERATOR_NAMES)


def power_of_two_at_most(n_bytes: int) -> int:
    """The largest power of two ``<= n_bytes`` (at least 1): budgets taken from a device's
    free memory are rounded down to one, so that small changes in what is free between runs
    do not change the chunks (and the summation order)."""
    return 1 << max(0, int(n_bytes).bit_length() - 1)


@functools.cache
def host_chunk_budget() -> int:
    """Bytes for a host pass's chunk temporaries: ``_HOST_L2_MULTIPLE`` × one core's L2 cache
    (Linux sysfs), within ``_HOST_BUDGET_BOUNDS``; ``_HOST_BUDGET_DEFAULT`` where unknown."""
    l2 = None
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            if (index / "level").read_text().strip() == "2":
                l2 = _size_in_bytes((index / "size").read_text())
        except (OSError, ValueError):
            continue
    if not l2:
        return _HOST_BUDGET_DEFAULT
    low, high = _HOST_BUDGET_BOUNDS
    return min(high, max(low, _HOST_L2_MULTIPLE * l2))


def _size_in_bytes(text: str) -> int:
    """``"2048K"`` → 2097152 (sysfs cache sizes)."""
    text = text.strip().upper()
    scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
    return int(text.rstrip("KMG")) * scale


class Kernels:
    """The reference kernels, and the protocol every backend implements.

    Subclass it, set ``name`` (and ``priority``), override :meth:`supports` and whichever
    operations your backend does faster, then register an instance with
    :func:`anykmeans.backends.register_kernels`.
    """

    #: The name that ``config_context(kernels=...)`` selects.
    name: str = ""
    #: ``auto`` picks the supporting backend with the highest priority (ties: first registered).
    priority: int = 0

    def supports(self, xp: Namespace, device: Device) -> bool:
        """Whether these kernels run on arrays of namespace ``xp`` on ``device``."""
        return False

    @property
    def out_of_memory_errors(self) -> tuple[type[BaseException], ...]:
        """What a kernel raises when the device is out of memory: the pass runner then halves
        its chunks and goes on. ``MemoryError`` (NumPy's, CuPy's), and PyTorch's
        out-of-memory error once PyTorch is imported."""
        torch = sys.modules.get("torch")
        torch_error = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
        return (MemoryError,) if torch_error is None else (MemoryError, torch_error)

    def auto_working_memory(self, device: Device) -> int:
        """The budget in bytes that ``working_memory="auto"`` gives a pass on ``device``.

        Here: on the host, four times one core's L2 cache (8 MiB where it is not known), so
        that a chunk's distance block stays in cache while it is reduced; on an accelerator
        these kernels know nothing of, 256 MiB. A GPU backend returns a share of the
        device's free memory instead.
        """
        return ACCELERATOR_BUDGET if is_accelerator(device) else host_chunk_budget()

    def free_memory(self, device: Device) -> int | None:
        """Bytes free on ``device`` for new arrays, or ``None`` for host memory (not limited
        here). Host input larger than a share of it is streamed to the device in row blocks
        instead of copied whole."""
        return None

    @contextlib.contextmanager
    def streaming(self, device: Device) -> Iterator[None]:
        """The context of one streamed block's work on ``device``: its copy in, its passes and
        its results out. A GPU backend runs each worker thread's blocks on a stream of the
        thread's own, so that one block's copy runs while another block's kernels do."""
        yield

    def to_device(self, x: Array, placement: tuple[Namespace, Device], /) -> Array:
        """A host block copied to ``placement``, inside :meth:`streaming`."""
        from .._transfers import move

        return move(x, placement)

    def max_chunk_rows(
        self, n_features: int, n_columns: int, itemsize: int, *, working_memory: int
    ) -> int | None:
        """The most rows one call may take, or ``None`` to be given all rows at once.

        ``n_columns`` is the widest block of distances a pass builds per row (the number of
        centers, or of k-means++ candidates); ``working_memory`` is the budget in bytes for a
        call's temporaries. The reference keeps its ``rows × n_columns`` blocks within it.
        A backend that tiles its own work (a compiled CPU pass, a GPU kernel) returns ``None``
        and bounds its temporaries itself.
        """
        # The distance block and the one-hot block (2 · k), and row-sized scratch (2 · d).
        row_bytes = itemsize * (2 * n_columns + 2 * n_features + 2)
        return max(1, working_memory // row_bytes)

    # ---------------------------------------------------------------- primitives

    def assign(
        self, X: Array, centers: Array, /, *, shift: Array | None, xp: Namespace, precision: str = "highest"
    ) -> tuple[Array, Array]:
        """Nearest center of each row: ``(labels, min_sqdist)``.

        ``precision`` is the ``matmul_precision`` setting (given only when it is not
        ``"highest"``). A backend may then compute the scores with a reduced-precision
        product, but its labels must be those of ``"highest"``: it rechecks in X's dtype the
        rows whose best two scores are within :func:`anykmeans.backends.precision.margins`.
        A backend without a faster product computes as for ``"highest"``; the reference
        emulates the reduced product (:mod:`anykmeans.backends.precision`).

        Returns
        -------
        labels : int32 array of shape (n,)
            The lowest index wins equal scores.
        min_sqdist : array of shape (n,), X's dtype
            ``‖x‖² − 2x·c + ‖c‖²`` to that center, clamped at 0 (with a reduced
            ``precision``, it may be the direct form ``‖x − c‖²`` instead).
        """
        return reference.assign(X, centers, shift=shift, xp=xp, precision=precision)

    def pairwise(self, X: Array, centers: Array, /, *, shift: Array | None, xp: Namespace) -> Array:
        """All squared distances, shape ``(n, k)`` in X's dtype, clamped at 0."""
        return reference.pairwise(X, centers, shift=shift, xp=xp)

    def segment_sum(
        self, X: Array, weights: Array, labels: Array, /, *, n_clusters: int, shift: Array | None, xp: Namespace
    ) -> tuple[Array, Array]:
        """Weighted per-cluster sums of the rows: ``(sums, weight_sums)``.

        Returns
        -------
        sums : array of shape (n_clusters, d), X's dtype
            ``sums[j] = Σ_{labels[i]=j} weights[i] · row[i]``.
        weight_sums : array of shape (n_clusters,), X's dtype
            ``weight_sums[j] = Σ_{labels[i]=j} weights[i]``.
        """
        return reference.segment_sum(X, weights, labels, n_clusters=n_clusters, shift=shift, xp=xp)

    def sqdist_to_assigned(
        self, X: Array, labels: Array, centers: Array, /, *, shift: Array | None, xp: Namespace
    ) -> Array:
        """Exact ``‖row[i] − centers[labels[i]]‖²`` per row, in the direct form (no
        cancellation), shape ``(n,)`` in X's dtype."""
        return reference.sqdist_to_assigned(X, labels, centers, shift=shift, xp=xp)

    # ---------------------------------------------------------------- composites

    def assign_and_sum(
        self, X: Array, weights: Array, centers: Array, /, *, shift: Array | None, xp: Namespace,
        precision: str = "highest",
    ) -> tuple[Array, Array, Array, Array]:
        """One Lloyd E-step and the M-step sums: ``(labels, inertia, sums, weight_sums)``.

        ``labels`` as :meth:`assign` (at ``precision``); ``inertia`` the 0-d
        ``Σ weights[i] · min_sqdist[i]``; ``sums`` and ``weight_sums`` as :meth:`segment_sum`
        of the rows by their labels.
        """
        return reference.assign_and_sum(
            X, weights, centers, shift=shift, xp=xp, precision=precision,
            assign=self.assign, segment_sum=self.segment_sum,
        )

    def assign_with_inertia(
        self, X: Array, weights: Array, centers: Array, /, *, shift: Array | None, xp: Namespace,
        precision: str = "highest",
    ) -> tuple[Array, Array]:
        """Labels and the exact inertia in one pass: ``(labels, inertia)``, what a fit's last
        pass, ``predict`` with ``score`` and a mini-batch fit's end need.

        ``labels`` as :meth:`assign` (at ``precision``); ``inertia`` the 0-d
        ``Σ weights[i] · ‖row[i] − centers[labels[i]]‖²``, distances as :meth:`sqdist_to_assigned`.
        """
        return reference.assign_with_inertia(
            X, weights, centers, shift=shift, xp=xp, precision=precision,
            assign=self.assign, sqdist_to_assigned=self.sqdist_to_assigned,
        )

    def seeding_pass(
        self, X: Array, weights: Array, closest: Array, pending: Array, candidates: Array, /, *,
        block_rows: int, shift: Array | None, xp: Namespace,
    ) -> tuple[Array, Array]:
        """One greedy k-means++ step over the rows: ``(updated, block_sums)``.

        ``updated = min(closest, ‖row[i] − pending‖²)`` takes in the center chosen at the
        previous step (``pending``, shape ``(1, d)``); ``block_sums[b, c]`` is
        ``Σ weights[i] · min(updated[i], ‖row[i] − candidates[c]‖²)`` over the rows of block
        ``b`` (``block_rows`` consecutive rows; the last may be shorter), in X's dtype.
        """
        return reference.seeding_pass(
            X, weights, closest, pending, candidates,
            block_rows=block_rows, shift=shift, xp=xp, pairwise=self.pairwise,
        )

    def seeding_draw(
        self, X: Array, weights: Array, closest: Array, pending: Array, block_sums: Array, targets: Array, /, *,
        block_rows: int, shift: Array | None, xp: Namespace,
    ) -> Array:
        """Row indices (int64) drawn with probability ∝ ``weights · min(closest, ‖row − pending‖²)``.

        ``block_sums`` are those terms summed over blocks of ``block_rows`` rows and
        ``targets`` uniform draws scaled by their total; each target gives the row ``i`` with
        ``cumulative[i-1] <= target < cumulative[i]``, never a row with a zero term. Takes all
        rows of X; only the drawn blocks are read.
        """
        return reference.seeding_draw(
            X, weights, closest, pending, block_sums, targets,
            block_rows=block_rows, shift=shift, xp=xp, pairwise=self.pairwise,
        )

    # ---------------------------------------------------------------- optional: Elkan

    #: Whether :meth:`elkan_pass` is implemented.
    has_elkan_pass: bool = False

    def elkan_pays(self, n_features: int, n_clusters: int) -> bool:
        """Whether ``algorithm="elkan"`` should use :meth:`elkan_pass` for data of this shape.
        Where it does not, it runs Lloyd's passes (the same results): the bounds pay only in a
        compiled row loop, and only where a distance costs more than their bookkeeping."""
        return self.has_elkan_pass and n_clusters > 1

    def elkan_pass(
        self, X: Array, weights: Array, labels: Array, upper: Array, lower: Array, centers: Array,
        drift: Array, /, *, initial: bool, shift: Array | None, xp: Namespace,
    ) -> tuple[Array, Array, Array, Array, Array, Array, int, int]:
        """One Lloyd E-step with Elkan's bounds, and the M-step sums:
        ``(labels, upper, lower, sums, weight_sums, inertia, n_measured, n_examined)``.

        ``drift[j]`` (shape ``(k,)``) is how far center ``j`` has moved in all since the bounds
        were first set: the sum of its Euclidean shifts, each pass to the next. The bounds of
        row ``i`` are kept against it, so that moving centers loosens them without writing
        them: ``upper[i] + drift[labels[i]] >= ‖row[i] − centers[labels[i]]‖`` and
        ``lower[i, j] − drift[j] <= ‖row[i] − centers[j]‖`` (distances, not squared). The
        pass measures, in the direct form, only the centers the bounds cannot rule out, and
        tightens the bounds it measures. With ``initial`` the input labels and bounds are
        ignored and set from scratch.

        ``upper`` and ``lower`` are updated in place and returned; the labels are a new array,
        each row's nearest center (among equal distances: any); ``sums`` and ``weight_sums`` as
        :meth:`segment_sum` of the rows by the new labels; ``inertia`` the 0-d
        ``Σ weights[i] · ‖row[i] − centers[labels[i]]‖²`` (direct form); ``n_measured`` and
        ``n_examined`` the distances the pass computed for the labels and the lower bounds it
        read (each at most ``n × k``; an initial pass may count all of them).
        """
        raise NotImplementedError(f"the {self.name!r} kernels have no Elkan pass")

    def elkan_relative_cost(
        self, n_rows: int, n_features: int, n_clusters: int, n_measured: int, n_examined: int
    ) -> float:
        """The time of an Elkan pass that counted ``n_measured`` and ``n_examined``, estimated
        relative to a Lloyd pass over the same rows: the core returns to Lloyd's passes when
        the bounds no longer pay. A model of the kernels' own speed, not a timing, so that
        the choice, like the results, is the same run to run."""
        raise NotImplementedError(f"the {self.name!r} kernels have no Elkan pass")

    def __repr__(self) -> str:
        return f"<kernels {self.name!r} (priority {self.priority})>"
