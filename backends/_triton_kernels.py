"""The Triton kernel of :mod:`anykmeans.backends._triton_nearest` (module level: Triton
resolves the helpers a kernel calls among its module's names). Imports Triton: imported on
first use only."""

import triton
import triton.language as tl


@triton.jit
def round_significand(v, DROP: tl.constexpr, HALF: tl.constexpr, KEEP: tl.constexpr):
    # To nearest, ties to even, at DROP bits below float32's 24 (as round_rows does);
    # infinities and NaNs unchanged. HALF = 2**(DROP-1) - 1, KEEP = ~(2**DROP - 1).
    bits = v.to(tl.uint32, bitcast=True)
    rounded = (bits + HALF + ((bits >> DROP) & 1)) & KEEP
    special = (bits & 0x7F800000) == 0x7F800000
    return tl.where(special, bits, rounded).to(tl.float32, bitcast=True)

@triton.jit
def nearest_two(
    X, C, c_sqnorm, margin, labels, uncertain, n, k, d,
    BF16: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    DROP: tl.constexpr, HALF: tl.constexpr, KEEP: tl.constexpr,
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
            if DROP > 0:
                x = round_significand(x, DROP, HALF, KEEP)
                c = round_significand(c, DROP, HALF, KEEP)
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
