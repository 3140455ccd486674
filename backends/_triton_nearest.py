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

The inputs must already be on the reduced grid (``round_rows``): the tensor cores' own
conversion then changes nothing, and the bound holds whatever the hardware's rounding is.
Triton is used, not hand-written ``mma`` code, because its ``tl.dot`` lays out the tensor-core
fragments for every GPU generation and runs on the CPU in its interpreter
(``TRITON_INTERPRET=1``), where the tests check it; it comes with PyTorch's CUDA wheels, and
without it (or without PyTorch) the cuBLAS path is used. Triton and PyTorch are imported on
first use only.
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


def available() -> bool:
    """Whether Triton and PyTorch are installed (the kernel launches on PyTorch tensors)."""
    return all(importlib.util.find_spec(name) is not None for name in ("triton", "torch"))


@functools.cache
def _kernel() -> Any:
    import triton
    import triton.language as tl

    @triton.jit
    def nearest_two(
        X, C, c_sqnorm, margin, labels, uncertain, n, k, d,
        BF16: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    ):
        rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        row_ok = rows < n
        best = tl.full([BLOCK_M], float("inf"), tl.float32)
        second = tl.full([BLOCK_M], float("inf"), tl.float32)
        best_j = tl.zeros([BLOCK_M], dtype=tl.int32)
        for start_n in range(0, k, BLOCK_N):
            cols = start_n + tl.arange(0, BLOCK_N)
            col_ok = cols < k
            acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
            for start_k in range(0, d, BLOCK_K):
                features = start_k + tl.arange(0, BLOCK_K)
                feature_ok = features < d
                x = tl.load(X + rows[:, None].to(tl.int64) * d + features[None, :],
                            mask=row_ok[:, None] & feature_ok[None, :], other=0.0)
                c = tl.load(C + cols[None, :].to(tl.int64) * d + features[:, None],
                            mask=col_ok[None, :] & feature_ok[:, None], other=0.0)
                if BF16:
                    acc = tl.dot(x.to(tl.bfloat16), c.to(tl.bfloat16), acc, out_dtype=tl.float32)
                else:
                    acc = tl.dot(x, c, acc, input_precision="tf32", out_dtype=tl.float32)
            c2 = tl.load(c_sqnorm + cols, mask=col_ok, other=0.0)
            scores = tl.where(col_ok[None, :], c2[None, :] - 2.0 * acc, float("inf"))
            tile_best = tl.min(scores, axis=1)
            tile_j = tl.argmin(scores, axis=1).to(tl.int32)
            tile_second = tl.min(tl.where(cols[None, :] == (start_n + tile_j)[:, None], float("inf"), scores), axis=1)
            # An equal score in a later tile is not better: it becomes the runner-up (gap 0,
            # so the row is rechecked).
            better = tile_best < best
            second = tl.where(better, tl.minimum(best, tile_second), tl.minimum(second, tile_best))
            best_j = tl.where(better, start_n + tile_j, best_j)
            best = tl.where(better, tile_best, best)
        row_margin = tl.load(margin + rows, mask=row_ok, other=0.0)
        # NaN gaps are never certain.
        certain = (second - best) > row_margin
        tl.store(labels + rows, best_j.to(tl.int64), mask=row_ok)
        tl.store(uncertain + rows, tl.where(certain, 0, 1).to(tl.uint8), mask=row_ok)

    return nearest_two


def nearest_two(X: Any, centers: Any, c_sqnorm: Any, margin: Any, *, precision: str) -> tuple[Any, Any]:
    """Labels (int64) and near-tie flags (uint8) of the rows X for the centers, both float32
    PyTorch tensors already rounded for ``precision``, C-contiguous, on one device; launched
    on PyTorch's current stream."""
    import torch
    import triton

    n, d = X.shape
    k = centers.shape[0]
    labels = torch.empty(n, dtype=torch.int64, device=X.device)
    uncertain = torch.empty(n, dtype=torch.uint8, device=X.device)
    if n:
        _kernel()[(triton.cdiv(n, BLOCK_M),)](
            X, centers, c_sqnorm, margin, labels, uncertain, n, k, d,
            BF16=precision == "medium", BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K[precision],
            num_warps=NUM_WARPS,
        )
    return labels, uncertain
