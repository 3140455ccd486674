"""The start of every public call: validated input moved to where the work runs, with the
plan (kernels, chunking) for it and the placement of the results."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import array_api_compat

from .backends import select_kernels
from ._arrays import namespace_and_device
from ._passes import Plan
from ._placement import Placement, placements
from ._transfers import materialize, move
from ._typing import Array


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
    reads them from the workers' memory).
    """
    input_placement = namespace_and_device(X)
    (xp, device), output = placements(*input_placement, config)
    lazy = array_api_compat.is_dask_namespace(xp) and array_api_compat.is_dask_array(X)
    kernels = select_kernels(config["kernels"], *(namespace_and_device(X._meta) if lazy else (xp, device)))
    X, weights = move(X, (xp, device)), move(weights, (xp, device))
    row_chunks = None
    if lazy:
        if X.numblocks[1] > 1:
            X = X.rechunk({1: -1})
        row_chunks = X.chunks[0]
        if weights.chunks[0] != row_chunks:
            weights = weights.rechunk((row_chunks,))
        (weights,) = materialize(weights, xp=xp)
    plan = Plan.create(
        xp, device, kernels, working_memory=int(config["working_memory"] * 2**20),
        n_features=X.shape[1], n_columns=n_columns, itemsize=xp.finfo(X.dtype).bits // 8,
        row_chunks=row_chunks,
    )
    return Work(X, weights, plan, input_placement, output)
