"""The pass runner: the one loop over row chunks.

A :class:`Plan` holds the kernels, the chunk size and the centering shift for one placement.
Each pass maps one kernel operation over the chunks of X and combines the outputs in a fixed
order (row outputs concatenated, partial sums added chunk after chunk), so results are
deterministic and no ``n × k`` block exists whole. A backend that tiles its own work says so
through ``Kernels.max_chunk_rows`` returning ``None``, and gets all rows in one call.

The plan reads no configuration: the caller passes the kernels and the working-memory budget.

For a Dask X, :meth:`Plan.create` makes a :class:`~anykmeans._blockwise.BlockwisePlan`
instead: each pass maps one task over Dask's own row blocks, and in each block runs this plan
(the same kernels, chunking and combination) on the block's in-memory arrays. Row outputs
stay lazy Dask arrays with X's row chunks; partial sums are added in a fixed tree on the
workers and come back as small NumPy arrays, so the driver's k × d arithmetic runs in memory
(see :mod:`anykmeans._blockwise`). The outputs of a pass are described by :class:`Output`,
which the blockwise runner needs to lay out Dask arrays before anything runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Literal, NamedTuple

from .backends import Kernels, reference
from .backends.precision import accepts_precision
from ._arrays import as_working, is_half
from ._typing import Array, Device, Namespace

Combine = Literal["concat", "blocks", "sum"]

# float16 / bfloat16 rows are cast to float32 in chunks of at most this many bytes (of float32).
HALF_CHUNK_BYTES = 128 * 2**20


class Output(NamedTuple):
    """One output of a pass: how chunks combine, and what a row output holds.

    ``combine``: ``"concat"``, one entry per row, concatenated; ``"blocks"``, one entry per
    ``multiple_of`` rows (k-means++ block sums), concatenated; ``"sum"``, added up.
    ``dtype``: of a row output, ``None`` for X's dtype. ``width``: the second dimension of a
    2-d row output, ``None`` for a 1-d one.
    """

    combine: Combine
    dtype: object = None
    width: int | None = None


_SUM = Output("sum")
_LABELS = Output("concat", "int32")
_ROW = Output("concat")


@dataclass
class Halvings:
    """How many times a plan's chunks were halved because a pass ran out of memory: shared
    by the plans made from one another (``centered``, ``for_columns``), so that the passes
    after the one that failed start small. Chunks of other sizes sum in another order, so a
    fit whose chunks were halved can differ in the last bits from one whose were not."""

    count: int = 0


def _operation_name(operation: Callable) -> str:
    return getattr(operation, "__name__", "pass").replace("_", " ")


@dataclass(frozen=True)
class CountingChanges:
    """``operation`` (whose first output is labels) on a chunk, followed by the number of
    rows whose new label differs from ``previous``, the chunk's first row array."""

    operation: Callable

    @property
    def __name__(self) -> str:
        return getattr(self.operation, "__name__", "pass")

    def __call__(self, X: Array, previous: Array, /, *rest: Array, shift: Array | None, xp: Namespace, **options: object) -> tuple:
        result = self.operation(X, *rest, shift=shift, xp=xp, **options)
        # Counted in X's dtype, which every namespace has (JAX may lack int64): exact up to
        # 2**24 rows in float32, and never 0 when a label changed.
        return (*result, xp.sum(xp.astype(result[0] != previous, X.dtype)))


@dataclass(frozen=True)
class Plan:
    """The kernels, chunking and shift with which the passes read the rows of X.

    ``shift`` (a row of length d, or ``None``) is subtracted from every row the passes read:
    the fit works on mean-centered data without a centered copy of X.
    ``chunk_rows`` is ``None`` when the kernels take all rows in one call; float16 and
    bfloat16 X is read in chunks of at most ``half_chunk_rows`` all the same, each cast to
    float32 as it is read (the work is done in float32, without a float32 copy of X).
    ``precision`` is the ``matmul_precision`` the label passes ask the kernels for.
    """

    xp: Namespace
    device: Device
    kernels: Kernels
    working_memory: int
    n_features: int
    itemsize: int
    chunk_rows: int | None = None
    shift: Array | None = None
    halvings: Halvings = field(default_factory=Halvings, compare=False, repr=False)
    precision: str = "highest"
    half_chunk_rows: int | None = None

    @classmethod
    def create(
        cls, xp: Namespace, device: Device, kernels: Kernels, *,
        working_memory: int, n_features: int, n_columns: int, itemsize: int,
        row_chunks: tuple[int, ...] | None = None,
    ) -> Plan:
        """A plan whose chunks hold distance blocks ``n_columns`` wide (usually n_clusters)
        within ``working_memory`` bytes, or as the kernels ask.

        For the Dask namespace, a :class:`~anykmeans._blockwise.BlockwisePlan`: ``kernels``
        then run on each block (kernels for the blocks' namespace and device), and
        ``row_chunks``, X's row chunks, are those of the per-row arrays the driver makes.
        """
        import array_api_compat

        if array_api_compat.is_dask_namespace(xp):
            from ._blockwise import BlockwisePlan

            if cls is Plan:
                return BlockwisePlan.create(
                    xp, device, kernels, working_memory=working_memory, n_features=n_features,
                    n_columns=n_columns, itemsize=itemsize, row_chunks=row_chunks,
                )
        plan = cls(xp, device, kernels, int(working_memory), n_features, itemsize)
        return plan.for_columns(n_columns)

    def for_columns(self, n_columns: int) -> Plan:
        """The same plan with chunks sized for distance blocks ``n_columns`` wide."""
        rows = self.kernels.max_chunk_rows(
            self.n_features, n_columns, self.itemsize, working_memory=self.working_memory
        )
        # The float32 copy of a float16 chunk and its temporaries, as the reference counts
        # them, and the copy within HALF_CHUNK_BYTES whatever the budget.
        half_rows = min(
            Kernels.max_chunk_rows(
                self.kernels, self.n_features, n_columns, self.itemsize, working_memory=self.working_memory
            ),
            max(1, HALF_CHUNK_BYTES // (self.itemsize * self.n_features)),
        )
        return replace(self, chunk_rows=None if rows is None else max(1, int(rows)), half_chunk_rows=half_rows)

    def for_rows(self, n_features: int, n_columns: int) -> Plan:
        """The same kernels, placement and budget for uncentered rows of ``n_features``
        values and distance blocks ``n_columns`` wide (per-row arrays other than X)."""
        return replace(self.centered(None), n_features=n_features).for_columns(n_columns)

    def with_precision(self, precision: str) -> Plan:
        """The same plan with the label passes at ``precision`` (``matmul_precision``)."""
        return replace(self, precision=precision)

    def _precision(self, operation: Callable) -> dict[str, str]:
        # Given only when reduced, and to operations that take it: kernels written before the
        # option keep working (at "highest").
        if self.precision == "highest" or not accepts_precision(operation):
            return {}
        return {"precision": self.precision}

    def centered(self, shift: Array | None) -> Plan:
        """The same plan reading rows as ``X[i] - shift``."""
        return replace(self, shift=shift)

    def rows(self, X: Array, indices: Array) -> Array:
        """Rows ``indices`` of X as the passes read them (``X[indices] - shift``, float32 for
        float16 / bfloat16 X)."""
        picked = as_working(self.xp.take(X, indices, axis=0), xp=self.xp)
        return picked if self.shift is None else picked - self.shift

    def chunk_size(self, n_samples: int, multiple_of: int = 1, *, half: bool = False) -> int:
        """Rows per chunk of a pass over ``n_samples`` rows (a multiple of ``multiple_of``,
        except a single chunk of all rows), halved as often as the passes ran out of memory;
        ``half``: of float16 / bfloat16 rows, cast chunk by chunk."""
        limit = self.half_chunk_rows if half and self.chunk_rows is None else self.chunk_rows
        rows = n_samples if limit is None else min(limit, n_samples)
        if not self.halvings.count and rows == n_samples:
            return max(1, n_samples)  # one chunk
        rows = max(1, rows >> self.halvings.count)
        return max(multiple_of, rows // multiple_of * multiple_of)

    def chunks(self, n_samples: int, multiple_of: int = 1, *, half: bool = False) -> Iterator[slice]:
        """The row ranges of one pass (sizes rounded down to a multiple of ``multiple_of``)."""
        size = self.chunk_size(n_samples, multiple_of, half=half)
        for start in range(0, n_samples, size):
            yield slice(start, min(start + size, n_samples))

    def _run(
        self, operation: Callable, X: Array, row_arrays: tuple, arrays: tuple,
        outputs: tuple[Output, ...], *, multiple_of: int = 1, updates: tuple[int, ...] = (),
        **options: object,
    ) -> tuple:
        """``operation`` on each chunk of X (and of ``row_arrays``, aligned with X's rows),
        with ``arrays`` whole; outputs concatenated or summed in chunk order.

        ``updates``: the positions in ``row_arrays`` of arrays the operation writes in place
        (Elkan's bounds); in memory they are simply written, a lazy runner copies them first.
        """
        combine = tuple(output.combine for output in outputs)
        parts: list[list] = [[] for _ in combine]
        n_rows, start, half = X.shape[0], 0, is_half(X.dtype)
        while start < n_rows:
            size = self.chunk_size(n_rows, multiple_of, half=half)
            rows = slice(start, min(start + size, n_rows))
            try:
                result = operation(
                    as_working(X[rows, ...], xp=self.xp), *(a[rows, ...] for a in row_arrays), *arrays,
                    shift=self.shift, xp=self.xp, **options,
                )
            except self.kernels.out_of_memory_errors as exc:
                # Smaller chunks, from this one on and for the passes after it. A pass that
                # writes in place (Elkan's bounds) may have written part of the chunk: not retried.
                if updates:
                    raise
                if size <= multiple_of:
                    raise MemoryError(
                        f"The {_operation_name(operation)} pass ran out of memory on {self.device} even "
                        f"with {size} row(s) at a time ({type(exc).__name__}: {exc}). Free memory on "
                        "the device (arrays of your own, other processes), fit fewer clusters, or "
                        'compute on the CPU with anykmeans.set_config(device="cpu").'
                    ) from exc
                self.halvings.count += 1
                continue
            for collected, value in zip(parts, result if isinstance(result, tuple) else (result,)):
                collected.append(value)
            start = rows.stop
        return tuple(self._combine(chunk_parts, how) for chunk_parts, how in zip(parts, combine))

    def _combine(self, parts: list, how: Combine) -> Array:
        if len(parts) == 1:
            return parts[0]
        if how != "sum":
            return self.xp.concat(parts, axis=0)
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        return total

    # ---------------------------------------------------------------- the passes

    def assign(self, X: Array, centers: Array) -> tuple[Array, Array]:
        """Nearest center and squared distance to it, for every row (``Kernels.assign``)."""
        operation = self.kernels.assign
        return self._run(operation, X, (), (centers,), (_LABELS, _ROW), **self._precision(operation))

    def _run_counting(
        self, operation: Callable, X: Array, previous: Array | None, row_arrays: tuple, arrays: tuple,
        outputs: tuple[Output, ...], *, updates: tuple[int, ...] = (), **options: object,
    ) -> tuple:
        """:meth:`_run` of an operation whose first output is labels; with ``previous`` (labels
        of the same rows) each chunk also counts the rows whose label differs from it, and the
        count (in X's dtype, summed) is appended to the outputs: a convergence test that costs
        no pass and no round trip of its own."""
        if previous is None:
            return self._run(operation, X, row_arrays, arrays, outputs, updates=updates, **options)
        return self._run(
            CountingChanges(operation), X, (previous, *row_arrays), arrays, (*outputs, _SUM),
            updates=tuple(position + 1 for position in updates), **options,
        )

    def assign_and_sum(
        self, X: Array, weights: Array, centers: Array, *, previous: Array | None = None
    ) -> tuple[Array, ...]:
        """``(labels, inertia, sums, weight_sums)`` over all rows (``Kernels.assign_and_sum``);
        with ``previous``, ``n_changed`` too (see :meth:`_run_counting`)."""
        operation = self.kernels.assign_and_sum
        return self._run_counting(
            operation, X, previous, (weights,), (centers,), (_LABELS, _SUM, _SUM, _SUM),
            **self._precision(operation),
        )

    def assign_with_inertia(self, X: Array, weights: Array, centers: Array) -> tuple[Array, Array]:
        """Labels and the exact (direct-form) inertia in one pass (``Kernels.assign_with_inertia``)."""
        operation = self.kernels.assign_with_inertia
        return self._run(operation, X, (weights,), (centers,), (_LABELS, _SUM), **self._precision(operation))

    def elkan_pass(
        self, X: Array, weights: Array, labels: Array, upper: Array, lower: Array, centers: Array,
        drift: Array, *, initial: bool, previous: Array | None = None,
    ) -> tuple[Array, ...]:
        """``(labels, upper, lower, sums, weight_sums, inertia, n_measured, n_examined)``: an
        E-step with Elkan's bounds and the M-step sums (``Kernels.elkan_pass``); with
        ``previous``, ``n_changed`` too (see :meth:`_run_counting`)."""
        return self._run_counting(
            self.kernels.elkan_pass, X, previous, (weights, labels, upper, lower), (centers, drift),
            (_LABELS, _ROW, Output("concat", width=centers.shape[0]), _SUM, _SUM, _SUM, _SUM, _SUM),
            updates=(2, 3), initial=initial,
        )

    def pairwise(self, X: Array, centers: Array) -> Array:
        """All squared distances, shape ``(n, k)`` (``Kernels.pairwise``)."""
        return self._run(self.kernels.pairwise, X, (), (centers,), (Output("concat", width=centers.shape[0]),))[0]

    def segment_sum(self, X: Array, weights: Array, labels: Array, n_clusters: int) -> tuple[Array, Array]:
        """Weighted per-cluster sums of the rows (``Kernels.segment_sum``)."""
        return self._run(
            self.kernels.segment_sum, X, (weights, labels), (), (_SUM, _SUM), n_clusters=n_clusters
        )

    def sqdist_to_assigned(self, X: Array, labels: Array, centers: Array) -> Array:
        """Exact squared distance of each row to its center (``Kernels.sqdist_to_assigned``)."""
        return self._run(self.kernels.sqdist_to_assigned, X, (labels,), (centers,), (_ROW,))[0]

    def seeding_pass(
        self, X: Array, weights: Array, closest: Array, pending: Array, candidates: Array, *, block_rows: int
    ) -> tuple[Array, Array]:
        """One k-means++ step over all rows (``Kernels.seeding_pass``); chunks hold whole
        blocks, so the block sums of consecutive chunks line up."""
        return self._run(
            self.kernels.seeding_pass, X, (weights, closest), (pending, candidates),
            (_ROW, Output("blocks", width=candidates.shape[0])), multiple_of=block_rows, block_rows=block_rows,
        )

    def seeding_draw(
        self, X: Array, weights: Array, closest: Array, pending: Array, block_sums: Array, targets: Array,
        *, block_rows: int,
    ) -> Array:
        """k-means++ draws from a ``seeding_pass``'s block sums (``Kernels.seeding_draw``): it
        reads only the drawn blocks, so it takes all rows in one call. float16 / bfloat16 X
        goes to the reference draw, which casts the drawn blocks to float32 as it reads them."""
        if is_half(X.dtype):
            return reference.seeding_draw(
                X, weights, closest, pending, block_sums, targets,
                block_rows=block_rows, shift=self.shift, xp=self.xp, pairwise=self.kernels.pairwise,
            )
        return self.kernels.seeding_draw(
            X, weights, closest, pending, block_sums, targets,
            block_rows=block_rows, shift=self.shift, xp=self.xp,
        )
