"""The start of every public call: validated input moved to where the work runs, with the
plan (kernels, chunking) for it and the placement of the results."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from .backends import select_kernels
from ._arrays import namespace_and_device
from ._passes import Plan
from ._placement import Placement, placements
from ._transfers import move
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
    """
    input_placement = namespace_and_device(X)
    (xp, device), output = placements(*input_placement, config)
    kernels = select_kernels(config["kernels"], xp, device)
    X, weights = move(X, (xp, device)), move(weights, (xp, device))
    plan = Plan.create(
        xp, device, kernels, working_memory=int(config["working_memory"] * 2**20),
        n_features=X.shape[1], n_columns=n_columns, itemsize=xp.finfo(X.dtype).bits // 8,
    )
    return Work(X, weights, plan, input_placement, output)
