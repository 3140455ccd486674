// Reduced-precision scores with a certificate, for matmul_precision "high" and "medium".
//
// round_rows rounds float32 rows to a number of significant bits (11: TF32, 8: BF16) and
// measures what the error bound needs; the GEMM of the rounded rows and centers runs on
// tensor cores (its inputs are already on the TF32 / BF16 grid, so the hardware's own
// conversion changes nothing); nearest_two_from_scores takes each row's best and runner-up
// scores and flags the rows whose gap is within the row's margin, which are rechecked in
// float32. The bound is derived in docs/precision.md (anykmeans/backends/precision.py).
//
// Self-contained (no includes), compiled with NVRTC.

#define WARP_SIZE 32
#define FULL_MASK 0xffffffffu

__device__ __forceinline__ float warp_sum_f(float v) {
#pragma unroll
    for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(FULL_MASK, v, offset);
    return v;
}

// v rounded to nearest (ties to even) at `drop` bits below float32's 24 significant bits.
// Infinities and NaNs pass unchanged; a value rounded past the largest float becomes inf.
__device__ __forceinline__ float round_significand(float v, int drop) {
    unsigned int u = __float_as_uint(v);
    if ((u & 0x7f800000u) == 0x7f800000u) return v;
    const unsigned int half = (1u << (drop - 1)) - 1u + ((u >> drop) & 1u);
    u = (u + half) & ~((1u << drop) - 1u);
    return __uint_as_float(u);
}

// One warp per row of an m x d matrix: the norms ||x||, ||x~||, ||x - x~|| of the rows and
// their rounding x~ to 24 - drop significant bits (fixed butterfly sums), and, if
// write_rounded, rounded[i] = x~ (the fused kernel rounds as it reads, and skips that copy).
// blockDim.x a multiple of 32.
__global__ void round_rows(const float* __restrict__ X, long long m, int d, int drop, int write_rounded,
                           float* __restrict__ rounded, float* __restrict__ norm,
                           float* __restrict__ rounded_norm, float* __restrict__ residual_norm) {
    const long long row = (long long)blockIdx.x * (blockDim.x / WARP_SIZE) + threadIdx.x / WARP_SIZE;
    const int lane = threadIdx.x % WARP_SIZE;
    if (row >= m) return;  // the whole warp leaves together
    const float* __restrict__ x = X + row * d;
    float* __restrict__ out = rounded + row * d;
    float s = 0.0f, s_rounded = 0.0f, s_residual = 0.0f;
    for (int f = lane; f < d; f += WARP_SIZE) {
        const float v = x[f];
        const float r = round_significand(v, drop);
        const float e = v - r;  // exact: r has v's leading bits
        if (write_rounded) out[f] = r;
        s = fmaf(v, v, s);
        s_rounded = fmaf(r, r, s_rounded);
        s_residual = fmaf(e, e, s_residual);
    }
    s = warp_sum_f(s);
    s_rounded = warp_sum_f(s_rounded);
    s_residual = warp_sum_f(s_residual);
    if (lane == 0) {
        norm[row] = sqrtf(s);
        rounded_norm[row] = sqrtf(s_rounded);
        residual_norm[row] = sqrtf(s_residual);
    }
}

// (value, index) of the best score and the runner-up's value, merged over a warp. The best
// is the lexicographic minimum (lowest index among equal values, whatever the lanes saw);
// the runner-up is the smallest value among everything but that one entry.
__device__ __forceinline__ void warp_best_two(float& best, int& best_j, float& second) {
#pragma unroll
    for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2) {
        const float other = __shfl_xor_sync(FULL_MASK, best, offset);
        const int other_j = __shfl_xor_sync(FULL_MASK, best_j, offset);
        const float other_second = __shfl_xor_sync(FULL_MASK, second, offset);
        const bool other_wins = other < best || (other == best && other_j < best_j);
        const float loser = other_wins ? best : other;
        second = fminf(fminf(second, other_second), loser);
        if (other_wins) {
            best = other;
            best_j = other_j;
        }
    }
}

// scores[i, j] = x~_i . c~_j (m x k, from the tensor-core GEMM). One warp per row: the
// lowest-index minimum of ||c_j||^2 - 2 scores[i, j], the runner-up value, and
// uncertain[i] = !(runner_up - best > margin[i]) (NaN gaps are uncertain).
__global__ void nearest_two_from_scores(const float* __restrict__ scores, const float* __restrict__ c_sqnorm,
                                        const float* __restrict__ margin, long long m, int k,
                                        long long* __restrict__ labels, unsigned char* __restrict__ uncertain) {
    const long long row = (long long)blockIdx.x * (blockDim.x / WARP_SIZE) + threadIdx.x / WARP_SIZE;
    const int lane = threadIdx.x % WARP_SIZE;
    if (row >= m) return;  // the whole warp leaves together
    const float* __restrict__ s = scores + row * k;
    const float inf = __int_as_float(0x7f800000);
    float best = inf, second = inf;
    int best_j = k;
#pragma unroll 4
    for (int j = lane; j < k; j += WARP_SIZE) {
        const float v = c_sqnorm[j] - 2.0f * s[j];
        if (v < best) {
            second = best;
            best = v;
            best_j = j;
        } else {
            second = fminf(second, v);
        }
    }
    warp_best_two(best, best_j, second);
    if (lane == 0) {
        labels[row] = best_j < k ? best_j : 0;
        uncertain[row] = !(second - best > margin[row]);
    }
}

// ||x_i - c_{labels[i]}||^2 in the direct form, one warp per row (a fixed butterfly sum):
// the distances of the reduced path, in float32 and without an n x d temporary.
__global__ void sqdist_to_labels(const float* __restrict__ X, const float* __restrict__ centers,
                                 const long long* __restrict__ labels, long long m, int d,
                                 float* __restrict__ out) {
    const long long row = (long long)blockIdx.x * (blockDim.x / WARP_SIZE) + threadIdx.x / WARP_SIZE;
    const int lane = threadIdx.x % WARP_SIZE;
    if (row >= m) return;  // the whole warp leaves together
    const float* __restrict__ x = X + row * d;
    const float* __restrict__ c = centers + labels[row] * d;
    float s = 0.0f;
    for (int f = lane; f < d; f += WARP_SIZE) {
        const float diff = x[f] - c[f];
        s = fmaf(diff, diff, s);
    }
    s = warp_sum_f(s);
    if (lane == 0) out[row] = s;
}
