"""The start of every public call: validated input moved to where the work runs, with the
plan (kernels, chunking) for it and the placement of the results."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, NamedTuple

import array_api_compat
import numpy as np

from .backends import Kernels, select_kernels
from ._arrays import is_cpu_device, namespace_and_device, working_dtype
from ._blockwise import BlockwisePlan
from ._passes import Plan
from ._placement import Placement, placements
from ._transfers import materialize, move, to_host_numpy
from ._typing import Array, Device

# Host data larger than this share of a device's free memory is streamed to it in row blocks
# (each at most STREAM_BLOCK_SHARE_OF_FREE of it, STREAM_THREADS at a time) instead of
# copied whole.
STREAM_SHARE_OF_FREE = 0.5
STREAM_BLOCK_SHARE_OF_FREE = 1 / 16
STREAM_THREADS = 2


class Work(NamedTuple):
    X: Array
    weights: Array
    plan: Plan
    input: Placement
    output: Placement


def prepare(X: Array, weights: Array, *, config: Mapping[str, Any], n_columns: int) -> Work:
    """Place validated ``X`` and ``weights`` where ``config`` says the work runs.

    ``n_columns`` is the widest distance block the passes build (usually n_clusters). Raises,
    before any data moves, when the configured device, output or kernels are not available
    and may not fall back.

    A Dask X stays where it is: the plan runs the passes block by block with the kernels of
    the blocks' library and device (NumPy blocks: ``numba`` or ``numpy``), X gets all its
    columns in each block and the weights X's row chunks (persisted, so that every pass
    reads them from the workers' memory). With a device asked for (``device="cuda"``), each
    block's pass runs there: the block is copied to the device and the outputs come back.

    Host X asked to run on a device, and larger than half of the device's free memory, is
    not copied whole: it is streamed, as a Dask array over the same memory (NumPy, ``np.memmap``)
    whose blocks go to the device ``STREAM_THREADS`` at a time, so that one block's copy
    runs while another's kernels do. This needs Dask; without it a ``MemoryError`` says so.
    """
    input_placement = namespace_and_device(X)
    (xp, device), output = placements(*input_placement, config)
    budget = config["working_memory"]
    dask_input = array_api_compat.is_dask_array(X)
    on_device = not is_cpu_device(xp, device)
    if dask_input or (on_device and is_cpu_device(*input_placement)):
        kernels = select_kernels(config["kernels"], *((xp, device) if on_device else namespace_and_device(X._meta)))
        if dask_input or _does_not_fit(X, kernels, device):
            work = _blockwise_work(
                X, weights, kernels, input_placement, output, (xp, device) if on_device else None,
                budget=budget, n_columns=n_columns,
            )
            return work._replace(plan=work.plan.with_precision(config["matmul_precision"]))
    else:
        kernels = select_kernels(config["kernels"], xp, device)
    X, weights = move(X, (xp, device)), move(weights, (xp, device))
    working_memory = kernels.auto_working_memory(device) if budget == "auto" else int(budget * 2**20)
    plan = Plan.create(
        xp, device, kernels, working_memory=working_memory,
        n_features=X.shape[1], n_columns=n_columns, itemsize=xp.finfo(working_dtype(X)).bits // 8,
    )
    return Work(X, weights, plan.with_precision(config["matmul_precision"]), input_placement, output)


def _does_not_fit(X: Array, kernels: Kernels, device: Device) -> bool:
    """Whether host ``X`` is too large to be copied whole to ``device``: more than
    ``STREAM_SHARE_OF_FREE`` of its free memory."""
    free = kernels.free_memory(device)
    return free is not None and _nbytes(X) > STREAM_SHARE_OF_FREE * free


def _nbytes(X: Array) -> int:
    xp = namespace_and_device(X)[0]
    return X.shape[0] * X.shape[1] * (xp.finfo(X.dtype).bits // 8)


def _blockwise_work(
    X: Array, weights: Array, kernels: Kernels, input_placement: Placement, output: Placement,
    block_placement: Placement | None, *, budget: Any, n_columns: int,
) -> Work:
    """The work on a Dask X, or on host X streamed to a device in row blocks: the passes run
    block by block (:mod:`anykmeans._blockwise`), each block's on ``block_placement`` when
    there is one (copied there first), else where it is."""
    try:
        import array_api_compat.dask.array as dask_xp
        import dask.array as da
    except ImportError:
        free = kernels.free_memory(block_placement[1]) or 0
        raise MemoryError(
            f"X ({_gib(_nbytes(X))}) does not fit in the free memory of "
            f"{block_placement[1]} ({_gib(free)}); streaming it to the device in row blocks needs Dask: "
            'pip install "anykmeans[dask]". Or compute on the CPU: anykmeans.set_config(device="cpu").'
        ) from None
    n_features = X.shape[1]
    options: dict[str, object] = {}
    if array_api_compat.is_dask_array(X):
        device = input_placement[1]
    else:
        # Host data streamed: Dask's view of it (no copy, no hashing of the data), in blocks
        # that a device holds several of, on local threads (one block's copy runs while
        # another's kernels do).
        device = "cpu"
        host, host_weights = to_host_numpy(X), to_host_numpy(weights)
        free = kernels.free_memory(block_placement[1]) or 0
        rows = max(1, int(STREAM_BLOCK_SHARE_OF_FREE * free) // max(1, n_features * host.dtype.itemsize))
        token = uuid.uuid4().hex
        X = da.from_array(host, chunks=(rows, n_features), name=f"anykmeans-rows-{token}")
        weights = da.from_array(host_weights, chunks=(X.chunks[0],), name=f"anykmeans-weights-{token}")
        options = {"scheduler": "threads", "num_workers": STREAM_THREADS}
    if X.numblocks[1] > 1:
        X = X.rechunk({1: -1})
    row_chunks = X.chunks[0]
    if weights.chunks[0] != row_chunks:
        weights = weights.rechunk((row_chunks,))
    if budget != "auto":
        working_memory = int(budget * 2**20)
    elif block_placement is None:
        working_memory = kernels.auto_working_memory(namespace_and_device(X._meta)[1])
    else:
        # Several blocks are worked on at once: each gets a share of the device's budget.
        working_memory = kernels.auto_working_memory(block_placement[1]) // (2 * STREAM_THREADS)
    plan = BlockwisePlan.create(
        dask_xp, device, kernels, working_memory=working_memory, n_features=n_features,
        n_columns=n_columns, itemsize=np.dtype(working_dtype(X)).itemsize, row_chunks=row_chunks,
        block_placement=block_placement, compute_options=options,
    )
    (weights,) = materialize(weights, xp=plan.xp)
    return Work(X, weights, plan, input_placement, output)


def _gib(n_bytes: int) -> str:
    return f"{n_bytes / 2**30:.1f} GiB"
