"""A fused tensor-core nearest-center kernel in Triton, for ``matmul_precision`` "high" and
"medium" on CUDA.

The cuBLAS path writes the ``rows × k`` scores of a tile to memory and reads them back to
find the nearest centers; at small d that traffic costs more than the tensor-core GEMM
itself. This kernel keeps each block of scores in registers: a program takes ``BLOCK_M``
rows, runs over the centers ``BLOCK_N`` at a time, accumulates ``x̃·c̃`` on tensor cores
(TF32, or BF16 with float32 accumulation) and keeps, per row, the best score, its center and
the runner-up score. It writes the label and whether the gap is within the row's margin
(``anykmeans.backends.precision.margins``); those rows are rechecked in float32 by the
caller, so exact ties need no care here.

The kernel rounds the rows and centers to the reduced grid as it loads them (to nearest, ties
to even, as ``round_rows`` rounds them for the bound), so the tensor cores' own conversion
changes nothing and the bound holds whatever the hardware's rounding is; no rounded copy of X
is made.
Triton is used, not hand-written ``mma`` code, because its ``tl.dot`` lays out the tensor-core
fragments for every GPU generation and runs on the CPU in its interpreter
(``TRITON_INTERPRET=1``), where the tests check it; it comes with PyTorch's CUDA wheels, and
without it (or without a CUDA build of PyTorch) the cuBLAS path is used. Triton and PyTorch
are imported on first use only.
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any

# One configuration, not autotuned: the order of the sums inside a score, and so the set of
# rows rechecked, must not change between runs.
BLOCK_M = 64
BLOCK_N = 64
BLOCK_K = {"high": 32, "medium": 32}
NUM_WARPS = 4


@functools.cache
def available() -> bool:
    """Whether Triton and a PyTorch with CUDA are installed (the kernel launches on PyTorch
    tensors): a CPU build of PyTorch cannot view CuPy's device arrays."""
    if not all(importlib.util.find_spec(name) is not None for name in ("triton", "torch")):
        return False
    import torch

    return bool(torch.cuda.is_available())


@functools.cache
def _kernel() -> Any:
    from ._triton_kernels import nearest_two

    return nearest_two


def nearest_two(
    X: Any, centers: Any, c_sqnorm: Any, margin: Any, *, precision: str, rounded: bool
) -> tuple[Any, Any]:
    """Labels (int64) and near-tie flags (uint8) of the rows X for the centers, float32
    PyTorch tensors, C-contiguous, on one device, already rounded for ``precision`` or
    (``rounded=False``) rounded by the kernel as it reads them; launched on PyTorch's current
    stream."""
    import torch
    import triton

    from .precision import SIGNIFICANT_BITS

    n, d = X.shape
    k = centers.shape[0]
    drop = 0 if rounded else 24 - SIGNIFICANT_BITS[precision]
    labels = torch.empty(n, dtype=torch.int64, device=X.device)
    uncertain = torch.empty(n, dtype=torch.uint8, device=X.device)
    if n:
        _kernel()[(triton.cdiv(n, BLOCK_M),)](
            X, centers, c_sqnorm, margin, labels, uncertain, n, k, d,
            BF16=precision == "medium", BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K[precision],
            DROP=drop, HALF=(1 << max(drop - 1, 0)) - 1, KEEP=0xFFFFFFFF ^ ((1 << drop) - 1),
            num_warps=NUM_WARPS,
        )
    return labels, uncertain
