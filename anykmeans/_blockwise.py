"""Passes over the blocks of a Dask array: the pass runner for Dask input.

A Dask X is never cut into row slices on the client nor gathered. Each pass is one task per
row block of X (Dask's own chunks): the task runs an in-memory :class:`~anykmeans._passes.Plan`
on the block, with the kernels of the block's library and device (NumPy blocks: ``numba``
when it is installed, else ``numpy``; CuPy blocks: ``cupy``), so that a block is worked on by
the same per-chunk code as an in-memory X (the block plan may chunk it further). The small
per-center arrays (centers, candidates) go to every block as literals (Dask ones are computed
first: they are small); per-row arrays (weights, labels, bounds) are aligned with X's row
chunks.

What a pass returns:

- row outputs (labels, distances, bounds) are Dask arrays with X's row chunks; lazy, unless
  the pass also sums, in which case they are persisted together with the sums, so that the
  kernels run once per block;
- partial sums (per-cluster sums, weight sums, inertia, counts) are converted to float64 on
  the worker that made them, added in a fixed tree (block order, whatever the scheduling:
  the same bits run to run), cast back to the kernels' dtype and returned as small NumPy
  arrays: per pass the client receives ``k × (d + 1)`` numbers and a few scalars.

The driver (Lloyd, seeding) does its k × d arithmetic with ``plan.xp``. For Dask input that is
a :class:`LazyRowsNamespace`: Dask's namespace for Dask arrays, NumPy's for in-memory ones, so
that the driver's small steps between passes run in memory instead of as task graphs on the
cluster (a round trip each), while its arrays of one value per row are created as Dask arrays
chunked like X.

k-means++ draws (``seeding_draw``) take the per-block potentials of a ``seeding_pass``, which
here are grouped per Dask block (a block of X holds ``ceil(rows / block_rows)`` of them): the
client finds the Dask blocks the draws fall in from the blocks' totals, and only those blocks
are read, one task each.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import array_api_compat
import numpy as np

from .backends import Kernels
from ._arrays import as_working, namespace_and_device, working_dtype
from ._passes import Halvings, Output, Plan
from ._transfers import move, to_host_numpy
from ._typing import Array, Device, Namespace

# Partial sums of this many blocks are added by one task; the tree of such tasks adds the
# groups in block order.
_TREE_FAN_IN = 16

# Creation functions whose first argument is a shape: their per-row arrays (one entry per
# row of X) are made as Dask arrays chunked like X.
_SHAPED_CREATION = frozenset({"zeros", "ones", "empty", "full"})


def _is_lazy(x: object) -> bool:
    return array_api_compat.is_dask_array(x)


def _any_lazy(values: Iterable[object]) -> bool:
    for value in values:
        if _is_lazy(value):
            return True
        if isinstance(value, (list, tuple)) and _any_lazy(value):
            return True
    return False


class LazyRowsNamespace:
    """The namespace the driver uses for Dask input: Dask's for Dask arrays, NumPy's for the
    rest.

    A function given any Dask array (also inside a list, as ``concat`` takes them) is Dask's,
    whose functions take in-memory arrays as constants; a function given only in-memory
    arrays is NumPy's, and runs at once on the client. ``zeros``, ``ones``, ``empty`` and
    ``full`` of a shape whose first dimension is X's number of rows make Dask arrays with X's
    row chunks (per-row arrays: labels, distances, bounds); other shapes make NumPy arrays
    (per-center arrays). ``asarray`` keeps a Dask array Dask and makes anything else NumPy.

    It is Dask's namespace for everyone who asks (``array_api_compat.is_dask_namespace`` is
    true for it, and its name is Dask's): the data it stands for is a Dask array.
    """

    __name__ = "array_api_compat.dask.array"

    def __init__(
        self, row_chunks: tuple[int, ...] | None = None, compute_options: tuple[tuple[str, object], ...] = ()
    ) -> None:
        import array_api_compat.dask.array as lazy_xp
        import array_api_compat.numpy as host_xp

        self._lazy = lazy_xp
        self._host = host_xp
        self.row_chunks = None if row_chunks is None else tuple(int(c) for c in row_chunks)
        self.n_rows = None if self.row_chunks is None else sum(self.row_chunks)
        #: Dask's ``compute``/``persist`` options for the driver's evaluations (a scheduler).
        self.compute_options = dict(compute_options)

    def __repr__(self) -> str:
        return f"<LazyRowsNamespace: Dask for rows, NumPy in memory; row chunks {self.row_chunks}>"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name != "__array_namespace_info__":
            raise AttributeError(name)
        host = getattr(self._host, name)
        lazy = getattr(self._lazy, name, None)
        if not callable(host) or isinstance(host, type) or name in ("isdtype", "finfo", "iinfo"):
            value = host  # dtypes, constants, dtype queries: the same for both
        elif name == "__array_namespace_info__":
            value = host
        elif name == "asarray":
            value = self._asarray
        elif name in _SHAPED_CREATION:
            value = functools.partial(self._create, name)
        else:
            value = _dispatching(name, host, lazy)
        self.__dict__[name] = value  # looked up once per name
        return value

    def _asarray(self, obj: object, /, **kwargs: object) -> Array:
        if _is_lazy(obj):
            return self._lazy.asarray(obj, **kwargs)
        return self._host.asarray(obj, **kwargs)

    def _create(self, name: str, shape: int | tuple[int, ...], *args: object, **kwargs: object) -> Array:
        dims = (shape,) if isinstance(shape, int) else tuple(shape)
        if self.n_rows is not None and len(dims) >= 1 and dims[0] == self.n_rows:
            chunks = (self.row_chunks, *((d,) for d in dims[1:]))
            return getattr(self._lazy, name)(dims, *args, chunks=chunks, **kwargs)
        return getattr(self._host, name)(shape, *args, **kwargs)


def _dispatching(name: str, host: Callable, lazy: Callable | None) -> Callable:
    def call(*args: object, **kwargs: object) -> Any:
        if not (_any_lazy(args) or _any_lazy(kwargs.values())):
            return host(*args, **kwargs)
        if lazy is None:
            raise TypeError(f"{name} is not available for Dask arrays")
        if name != "take":
            # As if every array were Dask: some of Dask's functions need all of them to be.
            # ``take`` keeps in-memory indices, with which Dask reads only the blocks needed.
            args = _as_lazy(args)
            kwargs = dict(zip(kwargs, _as_lazy(tuple(kwargs.values()))))
        return lazy(*args, **kwargs)

    call.__name__ = name
    return call


def _as_lazy(values: tuple) -> tuple:
    import dask.array as da

    return tuple(
        da.asarray(v) if isinstance(v, np.ndarray)
        else type(v)(_as_lazy(tuple(v))) if isinstance(v, (list, tuple)) else v
        for v in values
    )


def place(x: Array) -> Array:
    """``x`` where a :class:`LazyRowsNamespace` keeps it: Dask arrays as they are, anything
    else as a NumPy array on the host."""
    if _is_lazy(x):
        return x
    import array_api_compat.numpy as host_xp

    return move(x, (host_xp, "cpu"))


# ---------------------------------------------------------------- the tasks


@dataclass(frozen=True)
class _BlockSpec:
    """What a block task runs: an operation of ``kernels`` with a block plan's settings."""

    operation: Callable
    kernels: Kernels
    outputs: tuple[Output, ...]
    n_row_arrays: int
    updates: tuple[int, ...]
    working_memory: int
    n_features: int
    itemsize: int
    chunk_rows: int | None
    multiple_of: int
    options: tuple[tuple[str, object], ...]
    placement: tuple[Namespace, Device] | None = None
    # The plan's halvings after out-of-memory errors: the blocks run by one process share it.
    halvings: Halvings | None = None
    half_chunk_rows: int | None = None


def _block_plan(spec: _BlockSpec, X: Array, shift: Array | None) -> Plan:
    xp, device = namespace_and_device(X)
    shift = None if shift is None else move(shift, (xp, device))
    return Plan(
        xp, device, spec.kernels, spec.working_memory, spec.n_features, spec.itemsize,
        chunk_rows=spec.chunk_rows, shift=shift, half_chunk_rows=spec.half_chunk_rows,
        **({} if spec.halvings is None else {"halvings": spec.halvings}),
    )


def _run_block(spec: _BlockSpec, X: Array, *rest: object) -> np.ndarray:
    """One pass over one block: the block plan's combined outputs, in an object array of one
    element (a block of the ``calls`` array). With a block placement, the block and its
    arrays are copied there first and the outputs come back to the host."""
    if spec.placement is None:
        return _one(_run_on_block(spec, X, *rest))
    with spec.kernels.streaming(spec.placement[1]):
        moved = [None if a is None else spec.kernels.to_device(a, spec.placement) for a in (X, *rest)]
        return _one(_on_host(_run_on_block(spec, *moved)))


def _on_host(values: Iterable[object]) -> tuple:
    """Arrays as host NumPy arrays; host scalars (counts, NumPy scalars) as they are."""
    return tuple(
        v if isinstance(v, (int, float, np.generic, np.ndarray)) or v is None else to_host_numpy(v)
        for v in values
    )


def _run_on_block(spec: _BlockSpec, X: Array, *rest: object) -> tuple:
    rows, arrays, shift = rest[: spec.n_row_arrays], rest[spec.n_row_arrays : -1], rest[-1]
    plan = _block_plan(spec, X, shift)
    placement = (plan.xp, plan.device)
    rows = [move(a, placement) for a in rows]
    for position in spec.updates:
        # The kernels write these in place; the block belongs to an earlier result, which a
        # recomputation (a worker lost) must find unchanged.
        rows[position] = plan.xp.asarray(rows[position], copy=True)
    arrays = tuple(move(a, placement) for a in arrays)
    return plan._run(
        spec.operation, X, tuple(rows), arrays, spec.outputs, multiple_of=spec.multiple_of,
        updates=spec.updates, **dict(spec.options),
    )


def _pick(calls: np.ndarray, position: int) -> Array:
    return calls[0][position]


def _partial_sums(calls: np.ndarray, positions: tuple[int, ...]) -> np.ndarray:
    """A block's partial sums on the host, floats in float64, as ``(value, dtype)`` pairs
    (in an object array of one element)."""
    partials = []
    for position in positions:
        value = calls[0][position]
        if isinstance(value, (int, np.integer)):
            partials.append((int(value), None))
            continue
        host = np.asarray(value) if isinstance(value, (float, np.generic)) else to_host_numpy(value)
        dtype = host.dtype
        partials.append((host.astype(np.float64) if dtype.kind == "f" else host, dtype))
    return _one(partials)


def _add_group(group: np.ndarray) -> np.ndarray:
    """The sum of consecutive blocks' partials, added in block order."""
    total = list(group[0])
    for partials in group[1:]:
        total = [(a + b, dtype) for (a, dtype), (b, _) in zip(total, partials)]
    return _one(total)


def _finish(total: np.ndarray) -> np.ndarray:
    return _one(tuple(value if dtype is None else np.asarray(value).astype(dtype) for value, dtype in total[0]))


def _one(value: object) -> np.ndarray:
    out = np.empty(1, dtype=object)
    out[0] = value
    return out


def _draw_in_block(
    kernels: Kernels, X: Array, weights: Array, closest: Array, block_sums: Array,
    pending: Array, targets: np.ndarray, shift: Array | None, block_rows: int,
    placement: tuple[Namespace, Device] | None = None,
) -> np.ndarray:
    if placement is not None:
        with kernels.streaming(placement[1]):
            return _draw_in_block(
                kernels, kernels.to_device(X, placement), weights, closest, block_sums, pending,
                targets, shift, block_rows,
            )
    xp, device = namespace_and_device(X)
    placement = (xp, device)
    X = as_working(X, xp=xp)  # one block of float16 / bfloat16 rows, in float32
    drawn = kernels.seeding_draw(
        X, move(weights, placement), move(closest, placement), move(pending, placement),
        move(block_sums, placement), move(targets, placement),
        block_rows=block_rows, shift=None if shift is None else move(shift, placement), xp=xp,
    )
    return to_host_numpy(drawn).astype(np.int64)


def _block_totals(block_sums: np.ndarray) -> np.ndarray:
    host = to_host_numpy(block_sums).astype(np.float64)
    return np.asarray([host.sum()]) if host.shape[0] else np.zeros(1)


# ---------------------------------------------------------------- the plan


@dataclass(frozen=True)
class BlockwisePlan(Plan):
    """The passes over a Dask X: one task per row block of X (see the module's docstring).

    ``xp`` is a :class:`LazyRowsNamespace`; ``kernels``, ``chunk_rows`` and ``shift`` are what
    the plan of each block runs with. ``shift`` is kept as given (the driver reads it, a Dask
    array or not); ``host_shift`` is its value in memory, computed once, which the tasks take.
    """

    host_shift: np.ndarray | None = None
    block_placement: tuple[Namespace, Device] | None = None
    compute_options: tuple[tuple[str, object], ...] = ()

    @classmethod
    def create(
        cls, xp: Namespace, device: Device, kernels: Kernels, *,
        working_memory: int, n_features: int, n_columns: int, itemsize: int,
        row_chunks: tuple[int, ...] | None = None, block_placement: tuple[Namespace, Device] | None = None,
        compute_options: dict[str, object] | None = None,
    ) -> BlockwisePlan:
        """``block_placement``: where each block's pass runs (its block copied there first,
        its outputs brought back), for host blocks computed on a device; ``None``: where the
        blocks are. ``compute_options``: Dask's ``compute`` options for every pass (the
        scheduler of a streamed fit)."""
        options = tuple(sorted((compute_options or {}).items()))
        plan = cls(
            LazyRowsNamespace(row_chunks, options), device, kernels, int(working_memory), n_features, itemsize,
            block_placement=block_placement, compute_options=options,
        )
        return plan.for_columns(n_columns)

    def centered(self, shift: Array | None) -> BlockwisePlan:
        return replace(
            self, shift=shift, host_shift=None if shift is None else _host(shift, options=self.compute_options)[0]
        )

    def _shift(self) -> np.ndarray | None:
        if self.shift is None:
            return None
        return self.host_shift if self.host_shift is not None else _host(self.shift, options=self.compute_options)[0]

    def _host_plan(self) -> Plan:
        """The plan for arrays already in memory on the client (small ones: moved rows)."""
        import array_api_compat.numpy as host_xp

        return Plan(
            host_xp, "cpu", self.kernels, self.working_memory, self.n_features, self.itemsize,
            chunk_rows=self.chunk_rows, shift=self._shift(), precision=self.precision,
            half_chunk_rows=self.half_chunk_rows,
        )

    def _run(
        self, operation: Callable, X: Array, row_arrays: tuple, arrays: tuple,
        outputs: tuple[Output, ...], *, multiple_of: int = 1, updates: tuple[int, ...] = (),
        **options: object,
    ) -> tuple:
        spec = _BlockSpec(
            operation, self.kernels, outputs, len(row_arrays), tuple(updates), self.working_memory,
            self.n_features, self.itemsize, self.chunk_rows, multiple_of, tuple(sorted(options.items())),
            self.block_placement, self.halvings, self.half_chunk_rows,
        )
        if not _is_lazy(X):
            # Arrays in memory on the client (a few moved rows): one block, run here.
            host = [to_host_numpy(a) for a in (X, *row_arrays, *arrays)]
            if self.block_placement is not None:
                return _run_block(spec, *host, self._shift())[0]
            n_rows = len(row_arrays)
            return self._host_plan()._run(
                operation, host[0], tuple(host[1 : 1 + n_rows]), tuple(host[1 + n_rows :]), outputs,
                multiple_of=multiple_of, updates=updates, **options,
            )
        import dask
        import dask.array as da

        X = _rows_of(X)
        row_chunks = X.chunks[0]
        rows = [_aligned(a, row_chunks) for a in row_arrays]
        args: list = [spec, None, X, "ij"]
        for a in rows:
            args += [a, "i" + "klmn"[: a.ndim - 1]]
        # Per-center arrays and the shift go to every block whole, as literals: Dask ones (the
        # centers of a first iteration, k-means++ candidates) are computed first, together.
        small = [*_host(*arrays, options=self.compute_options), self._shift()]
        for a in small:
            args += [a, None]
        calls = da.blockwise(
            _run_block, "i", *args,
            adjust_chunks={"i": 1}, concatenate=True, dtype=object, meta=np.empty((0,), dtype=object),
            name=f"anykmeans-{_operation_name(operation)}-{dask.base.tokenize(spec, *args[2::2])}",
        )
        meta_xp, meta_device = namespace_and_device(X._meta)
        results: list = [None] * len(outputs)
        lazy_positions = []
        for position, output in enumerate(outputs):
            if output.combine == "sum":
                continue
            sizes = row_chunks if output.combine == "concat" else tuple(-(-r // multiple_of) for r in row_chunks)
            dtype = working_dtype(X) if output.dtype is None else np.dtype(output.dtype)
            index, new_axes = ("i", {}) if output.width is None else ("ik", {"k": output.width})
            meta = meta_xp.empty((0,) * len(index), dtype=dtype, device=meta_device)
            results[position] = da.blockwise(
                _pick, index, calls, "i", position, None, new_axes=new_axes,
                adjust_chunks={"i": sizes}, dtype=dtype, meta=meta,
            )
            lazy_positions.append(position)
        sum_positions = tuple(p for p, output in enumerate(outputs) if output.combine == "sum")
        if not sum_positions:
            return tuple(results)
        total = _tree_sum(calls, sum_positions)
        # The row outputs are made by the same tasks as the sums: persisted with them, so
        # that the kernels run once per block.
        options = dict(self.compute_options)
        persisted = dask.persist(*(results[p] for p in lazy_positions), total, **options)
        for position, value in zip(lazy_positions, persisted):
            results[position] = value
        for position, value in zip(sum_positions, persisted[-1].compute(**options)[0]):
            results[position] = value
        return tuple(results)

    def seeding_draw(
        self, X: Array, weights: Array, closest: Array, pending: Array, block_sums: Array, targets: Array,
        *, block_rows: int,
    ) -> Array:
        """k-means++ draws: the Dask blocks the targets fall in, from the totals of their
        block sums (one round trip), then the kernels' draw in each of those blocks only."""
        if not _is_lazy(X):
            X, weights, closest, pending, block_sums, targets = (
                to_host_numpy(a) for a in (X, weights, closest, pending, block_sums, targets)
            )
            if self.block_placement is not None:
                return _draw_in_block(
                    self.kernels, X, weights, closest, block_sums, pending, targets, self._shift(), block_rows,
                    self.block_placement,
                )
            return self._host_plan().seeding_draw(X, weights, closest, pending, block_sums, targets, block_rows=block_rows)
        import dask
        import dask.array as da

        X = _rows_of(X)
        row_chunks = X.chunks[0]
        blocks_per_chunk = tuple(-(-r // block_rows) for r in row_chunks)
        weights, closest = _aligned(weights, row_chunks), _aligned(closest, row_chunks)
        block_sums = _aligned(block_sums, blocks_per_chunk)
        totals = da.map_blocks(
            _block_totals, block_sums, chunks=((1,) * len(row_chunks),), dtype=np.float64,
            meta=np.empty((0,), dtype=np.float64),
        )
        totals, targets, pending = _host(totals, targets, pending, options=self.compute_options)
        shift = self._shift()
        # Which Dask block each target falls in, and what is left of it there: the running sum
        # of the blocks' totals (float64), as the kernels run it over their blocks.
        ends = np.cumsum(totals)
        positive = np.flatnonzero(totals > 0)
        last = int(positive[-1]) if positive.size else 0
        chunk_of = np.minimum(np.searchsorted(ends, targets.astype(np.float64), side="right"), last)
        starts = np.concatenate([[0], np.cumsum(row_chunks)[:-1]])
        pieces = {name: a.to_delayed(optimize_graph=False).ravel() for name, a in
                  (("X", X), ("weights", weights), ("closest", closest), ("block_sums", block_sums))}
        draws, order = [], []
        for chunk in np.unique(chunk_of):
            which = np.flatnonzero(chunk_of == chunk)
            before = ends[chunk] - totals[chunk]
            local = np.maximum(targets[which].astype(np.float64) - before, 0.0).astype(targets.dtype)
            draw = dask.delayed(_draw_in_block, pure=True)(
                self.kernels, pieces["X"][chunk], pieces["weights"][chunk], pieces["closest"][chunk],
                pieces["block_sums"][chunk], pending, local, shift, block_rows, self.block_placement,
            )
            draws.append(draw)
            order.append((which, int(starts[chunk])))
        drawn = np.empty(targets.shape[0], dtype=np.int64)
        for (which, start), local_rows in zip(order, dask.compute(*draws, **dict(self.compute_options))):
            drawn[which] = local_rows + start
        return drawn


def _host(*arrays: Array | None, options: tuple[tuple[str, object], ...] = ()) -> list:
    """Small arrays as host NumPy arrays (``None`` kept); the Dask ones computed in one go."""
    import dask

    lazy = [a for a in arrays if _is_lazy(a)]
    computed = iter(dask.compute(*lazy, **dict(options))) if lazy else iter(())
    return [None if a is None else to_host_numpy(next(computed) if _is_lazy(a) else a) for a in arrays]


def _operation_name(operation: Callable) -> str:
    return getattr(operation, "__name__", "pass").replace("_", "-")


def _rows_of(X: Array) -> Array:
    """X with all its columns in each block and known row chunks."""
    if X.ndim == 2 and X.numblocks[1] > 1:
        X = X.rechunk({1: -1})
    if any(math.isnan(c) for c in X.chunks[0]):
        X = X.compute_chunk_sizes()
    return X


def _aligned(a: Array, row_chunks: tuple[int, ...]) -> Array:
    """A per-row array as a Dask array with the given row chunks (and one chunk across)."""
    import dask.array as da

    chunks = (tuple(row_chunks), *((n,) for n in a.shape[1:]))
    if not _is_lazy(a):
        return da.from_array(to_host_numpy(a), chunks=chunks)
    if any(math.isnan(c) for c in a.chunks[0]):
        a = a.compute_chunk_sizes()
    return a if a.chunks == chunks else a.rechunk(chunks)


def _tree_sum(calls: Array, positions: tuple[int, ...]) -> Array:
    """The partial sums of all blocks, added in a fixed tree: each block's in float64 on its
    worker, then groups of ``_TREE_FAN_IN`` consecutive ones in block order, level after
    level; the total, cast back to the kernels' dtypes, in an object array of one element."""
    import dask.array as da

    meta = np.empty((0,), dtype=object)
    level = da.blockwise(_partial_sums, "i", calls, "i", positions, None, dtype=object, meta=meta)
    while level.numblocks[0] > 1:
        grouped = level.rechunk(_TREE_FAN_IN)
        level = grouped.map_blocks(_add_group, chunks=((1,) * grouped.numblocks[0],), dtype=object, meta=meta)
    return level.map_blocks(_finish, dtype=object, meta=meta)
