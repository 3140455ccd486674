// Squared Euclidean distances and nearest centers, for T = float or double.
//
// Expanded form, as in the reference backend: ||x - c||^2 = (||c||^2 - 2 x.c) + ||x||^2.
// The nearest center minimises the score ||c||^2 - 2 x.c; ||x||^2 is added afterwards and the
// result is clamped at 0. Equal scores go to the lowest center index.
//
// Self-contained (no includes), compiled with NVRTC; kernels are templates instantiated
// through name expressions.

#define WARP_SIZE 32
#define FULL_MASK 0xffffffffu

template <typename T> __device__ __forceinline__ T positive_infinity();
template <> __device__ __forceinline__ float positive_infinity<float>() {
    return __int_as_float(0x7f800000);
}
template <> __device__ __forceinline__ double positive_infinity<double>() {
    return __longlong_as_double(0x7ff0000000000000LL);
}

// max(v, 0) that keeps a NaN a NaN, like numpy.maximum / clip.
template <typename T> __device__ __forceinline__ T clamp_at_zero(T v) {
    return v < T(0) ? T(0) : v;
}

// Sum over the 32 lanes of a warp with a fixed butterfly: every lane ends with the same
// value, and the order of the additions never changes.
template <typename T> __device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
    for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2) {
        v += __shfl_xor_sync(FULL_MASK, v, offset);
    }
    return v;
}

// ||row||^2 computed by one warp: lane l adds features l, l + 32, ... then the warp sums.
template <typename T>
__device__ __forceinline__ T warp_row_sqnorm(const T* __restrict__ row, int d, int lane) {
    T s = T(0);
    for (int f = lane; f < d; f += WARP_SIZE) {
        T v = row[f];
        s += v * v;
    }
    return warp_sum(s);
}

// Lexicographic minimum of (value, index) over a warp. Under this total order the minimum
// does not depend on the order of the comparisons, so the lowest index among equal values
// wins whatever the lanes saw. Every lane ends with the result.
template <typename T>
__device__ __forceinline__ void warp_argmin(T& best, int& best_j) {
#pragma unroll
    for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2) {
        T other = __shfl_xor_sync(FULL_MASK, best, offset);
        int other_j = __shfl_xor_sync(FULL_MASK, best_j, offset);
        if (other < best || (other == best && other_j < best_j)) {
            best = other;
            best_j = other_j;
        }
    }
}

// ||row||^2 of each row of an m x d matrix. One warp per row; blockDim.x a multiple of 32.
template <typename T>
__global__ void row_sqnorms(const T* __restrict__ X, long long m, int d, T* __restrict__ out) {
    const long long row = (long long)blockIdx.x * (blockDim.x / WARP_SIZE) + threadIdx.x / WARP_SIZE;
    const int lane = threadIdx.x % WARP_SIZE;
    if (row >= m) return;  // the whole warp leaves together
    const T s = warp_row_sqnorm(X + row * d, d, lane);
    if (lane == 0) out[row] = s;
}

// The GEMM path: scores[i, j] = x_i . c_j from cuBLAS, for an m-row tile of X. One warp per
// row: lane l scans columns l, l + 32, ... keeping the first (lowest-index) minimum of
// ||c_j||^2 - 2 scores[i, j], then the warp takes the lexicographic minimum of the lanes'
// (score, index) pairs. Writes the label and max(min score + ||x_i||^2, 0).
template <typename T>
__global__ void nearest_from_scores(const T* __restrict__ scores, const T* __restrict__ X,
                                    const T* __restrict__ c_sqnorm, long long m, int k, int d,
                                    long long* __restrict__ labels, T* __restrict__ min_sqdist) {
    const long long row = (long long)blockIdx.x * (blockDim.x / WARP_SIZE) + threadIdx.x / WARP_SIZE;
    const int lane = threadIdx.x % WARP_SIZE;
    if (row >= m) return;  // the whole warp leaves together
    const T* __restrict__ s = scores + row * k;
    T best = positive_infinity<T>();
    int best_j = k;  // no column seen yet (or only +inf / NaN scores)
#pragma unroll 4
    for (int j = lane; j < k; j += WARP_SIZE) {
        const T v = c_sqnorm[j] - T(2) * s[j];
        if (v < best) {
            best = v;
            best_j = j;
        }
    }
    warp_argmin(best, best_j);
    const T x_sqnorm = warp_row_sqnorm(X + row * d, d, lane);
    if (lane == 0) {
        labels[row] = best_j < k ? best_j : 0;
        min_sqdist[row] = clamp_at_zero(best + x_sqnorm);
    }
}

// pairwise: turns scores[i, j] = x_i . c_j (m x k, in place) into
// max((||c_j||^2 - 2 scores[i, j]) + ||x_i||^2, 0). Grid-stride loop over the m*k entries.
template <typename T>
__global__ void pairwise_from_scores(T* __restrict__ scores, const T* __restrict__ x_sqnorm,
                                     const T* __restrict__ c_sqnorm, long long m, int k) {
    const long long total = m * k;
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const long long row = i / k;
        const int j = (int)(i - row * k);
        scores[i] = clamp_at_zero((c_sqnorm[j] - T(2) * scores[i]) + x_sqnorm[row]);
    }
}

// The fused path for few features (D <= 16): no GEMM and no m x k score block. The block
// copies all k centers (rows padded to a multiple of 4 for aligned vector loads) and their
// squared norms into shared memory; each thread then takes one row at a time (grid-stride),
// keeps the row in registers and scans the centers in increasing index order, keeping the
// first minimum of ||c_j||^2 - 2 x.c_j: ties go to the lowest index. Same expanded form and
// the same ||c||^2 as the GEMM path.
// Dynamic shared memory: k * (round_up(D, 4) + 1) * sizeof(T) bytes.
template <typename T, int D>
__global__ void nearest_fused(const T* __restrict__ X, const T* __restrict__ centers,
                              const T* __restrict__ c_sqnorm, long long m, int k,
                              long long* __restrict__ labels, T* __restrict__ min_sqdist) {
    constexpr int DP = (D + 3) / 4 * 4;
    extern __shared__ __align__(16) unsigned char shared_bytes[];
    T* c_shared = reinterpret_cast<T*>(shared_bytes);  // k x DP
    T* n_shared = c_shared + (long long)k * DP;        // k
    for (int i = threadIdx.x; i < k * DP; i += blockDim.x) {
        const int j = i / DP;
        const int f = i - j * DP;
        c_shared[i] = f < D ? centers[(long long)j * D + f] : T(0);
    }
    for (int j = threadIdx.x; j < k; j += blockDim.x) n_shared[j] = c_sqnorm[j];
    __syncthreads();

    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long row = (long long)blockIdx.x * blockDim.x + threadIdx.x; row < m; row += stride) {
        T x[D];
#pragma unroll
        for (int f = 0; f < D; ++f) x[f] = X[row * D + f];
        T best = positive_infinity<T>();
        int best_j = 0;
        for (int j = 0; j < k; ++j) {
            const T* c = c_shared + j * DP;
            T dot = T(0);
#pragma unroll
            for (int f = 0; f < D; ++f) dot += x[f] * c[f];
            const T v = n_shared[j] - T(2) * dot;
            if (v < best) {
                best = v;
                best_j = j;
            }
        }
        T x_sqnorm = T(0);
#pragma unroll
        for (int f = 0; f < D; ++f) x_sqnorm += x[f] * x[f];
        labels[row] = best_j;
        min_sqdist[row] = clamp_at_zero(best + x_sqnorm);
    }
}
