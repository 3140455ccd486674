// Deterministic weighted per-cluster sums, for T = float or double. No atomics.
//
// The rows are visited through `order`, a stable sort of the labels: cluster c's rows are
// order[row_offsets[c] : row_offsets[c + 1]], in increasing row index. Column d of the
// virtual (n x (d + 1)) matrix is the weight itself, so the weight sums come out of the same
// pass as the sums.
//
// Level 1 (segment_partials): the rows of each cluster are cut into work items of at most
// `rows_per_item` consecutive rows; block b sums work item b into partials[b, :].
// Level 2 (segment_merge): block c sums the partials of cluster c's items, in item order.
//
// Within a block (block_sum_rows), thread t handles column t % width of the current column
// tile and the rows lane, lane + lanes, lane + 2 lanes, ... of the range (lane = t / width);
// the lanes' sums are then added in lane order by one thread per column. Which thread adds
// which numbers in which order depends only on the shapes and the labels, never on timing,
// so every run gives the same bits. Sums accumulate in double (exact products for float
// input; the reduction is memory-bound, so the wider adds are cheap).

// Sums rows [start, end) of a virtual matrix with `cols` columns, whose entry (r, f) is
// value(r, f), into out[0 .. cols). scratch: blockDim.x accumulators in shared memory.
// Every thread of the block must call it (it synchronises the block).
template <typename Out, typename Value>
__device__ __forceinline__ void block_sum_rows(long long start, long long end, int cols,
                                               int width, const Value& value,
                                               Out* __restrict__ out, double* scratch) {
    const int lanes = blockDim.x / width;
    const int lane = threadIdx.x / width;
    const int col = threadIdx.x - lane * width;
    for (int tile = 0; tile < cols; tile += width) {
        const int f = tile + col;
        if (lane < lanes) {
            double acc = 0.0;
            if (f < cols) {
                for (long long r = start + lane; r < end; r += lanes) acc += value(r, f);
            }
            scratch[lane * width + col] = acc;
        }
        __syncthreads();
        if (threadIdx.x < width && f < cols) {
            double total = scratch[col];
            for (int l = 1; l < lanes; ++l) total += scratch[l * width + col];
            out[f] = (Out)total;
        }
        __syncthreads();
    }
}

// Last cluster c in [0, k) with item_offsets[c] <= item (item_offsets is non-decreasing, and
// item_offsets[0] = 0 <= item): the cluster that owns work item `item`.
__device__ __forceinline__ int owning_cluster(const long long* __restrict__ item_offsets,
                                              int k, long long item) {
    int lo = 0, hi = k - 1;
    while (lo < hi) {
        const int mid = lo + (hi - lo + 1) / 2;
        if (item_offsets[mid] <= item) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    return lo;
}

// Level 1. Grid: an upper bound of the number of work items (blocks past
// item_offsets[k] return at once). Dynamic shared memory: blockDim.x doubles.
// partials: (grid x (d + 1)) doubles.
template <typename T>
__global__ void segment_partials(const T* __restrict__ X, const T* __restrict__ weights,
                                 const long long* __restrict__ order,
                                 const long long* __restrict__ row_offsets,
                                 const long long* __restrict__ item_offsets, int k, int d,
                                 long long rows_per_item, int width,
                                 double* __restrict__ partials) {
    extern __shared__ double scratch[];
    const long long item = blockIdx.x;
    if (item >= item_offsets[k]) return;  // the whole block leaves together
    const int c = owning_cluster(item_offsets, k, item);
    const long long start = row_offsets[c] + (item - item_offsets[c]) * rows_per_item;
    const long long stop = row_offsets[c + 1];
    const long long end = start + rows_per_item < stop ? start + rows_per_item : stop;
    const int cols = d + 1;
    auto value = [=](long long r, int f) -> double {
        const long long i = order[r];
        const double w = (double)weights[i];
        return f < d ? w * (double)X[i * d + f] : w;
    };
    block_sum_rows(start, end, cols, width, value, partials + item * cols, scratch);
}

// Level 2. Grid: k blocks, block c writes out[c, :] (k x (d + 1), in T): the sum of the
// partials of cluster c's items, zeros for a cluster without rows. Dynamic shared memory:
// blockDim.x doubles.
template <typename T>
__global__ void segment_merge(const double* __restrict__ partials,
                              const long long* __restrict__ item_offsets, int cols, int width,
                              T* __restrict__ out) {
    extern __shared__ double scratch[];
    const int c = blockIdx.x;
    auto value = [=](long long r, int f) -> double { return partials[r * cols + f]; };
    block_sum_rows(item_offsets[c], item_offsets[c + 1], cols, width, value,
                   out + (long long)c * cols, scratch);
}
