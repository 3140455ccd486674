"""``cupy``: fused CUDA kernels for the nearest center, deterministic segment sums.

The kernel sources are ``kernels/*.cu`` (package data), compiled with NVRTC through
``cupy.RawModule`` the first time they are needed and cached, once per source and set of
template instantiations (float or double, and the number of features of the fused path).
CuPy is imported inside the methods only: importing anykmeans never imports it.

``assign`` has two paths:

- the GEMM path: ``x·c`` for a tile of rows from cuBLAS (``cupy.matmul``), then one fused
  kernel per tile that adds ‖c‖², takes the argmin (a warp per row, the lowest index wins
  ties) and writes the label and ``max(min + ‖x‖², 0)``;
- the fused path for few features: centers and their norms in shared memory, a thread per
  row, no GEMM and no ``rows × k`` score block.

With ``matmul_precision`` ``"high"`` or ``"medium"`` (float32 data, GEMM-path shapes) the
rows and centers are rounded to TF32 / BF16 (``kernels/precision.cu``), the scores come from
tensor cores (the fused Triton kernel of ``_triton_nearest``, or without Triton cuBLAS TF32
GEMMs and ``nearest_two_from_scores``, "medium" then running as "high") with a near-tie flag
per row, and the flagged rows are gathered and assigned again by the float32 GEMM path (see
``precision``). GPUs without TF32 tensor cores (before compute capability 8.0) compute at
"highest".

``segment_sum`` sorts the labels (CuPy's stable radix sort), sums each cluster's rows in row
order in fixed-size pieces and merges the pieces in a fixed order: no floating-point atomics,
so the same inputs give the same bits on the same GPU.

Distances are computed in the data's dtype (as cuBLAS and the reference do); the sums
accumulate in double and are rounded once to the data's dtype (the reduction is
memory-bound, so the wider adds cost little).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.resources
import threading
from collections.abc import Iterator
from typing import Any

import array_api_compat
import numpy as np

from .._typing import Device, Namespace
from . import _triton_nearest
from . import precision as reduced
from . import reference
from ._protocol import Kernels, power_of_two_at_most
from .reference import shifted

# C types of the kernels' template parameter, by dtype name. Other dtypes use the reference.
_CTYPES = {"float32": "float", "float64": "double"}
_OPTIONS = ("--std=c++17",)
_THREADS = 256
_WARPS = _THREADS // 32

# GEMM path: the x·c score block of one tile of rows takes at most this share of the free
# device memory (CuPy's pool included), and may always take SCORES_TILE_BYTES. The pass
# runner's chunks are already sized by ``working_memory`` (by default half of the free
# memory, see ``auto_working_memory``), so a chunk is usually one tile: two launches per
# chunk whatever n is, and cuBLAS at its full rate. Tile rows are a multiple of
# _TILE_ROW_MULTIPLE so that no GEMM has a ragged block row except the last tile's.
SCORES_TILE_BYTES = 256 * 2**20
SCORES_SHARE_OF_FREE = 0.25
_TILE_ROW_MULTIPLE = 256
# working_memory="auto": this share of the free device memory for a pass's temporaries.
AUTO_SHARE_OF_FREE = 0.5
# matmul_precision "high" / "medium": the fused Triton kernel where Triton and a CUDA build of
# PyTorch are installed (no score block in memory), else cuBLAS TF32 GEMMs per tile.
USE_TRITON = True

# Fused path: used when d <= FUSED_MAX_FEATURES and the centers (rows padded to a multiple
# of 4 features) and their norms fit in _FUSED_MAX_SHARED_BYTES of shared memory. For so few
# features a row of X is a handful of registers and each (row, center) pair costs d FMAs,
# while the GEMM path writes and reads back k scores per row: 2·k·itemsize bytes against
# d·itemsize bytes of X, so for small d the GEMM path is bound by the score traffic, not by
# arithmetic. With more features the fused kernel's k·d FMAs per thread compete with
# cuBLAS's register-blocked GEMM, and which wins depends on k, d and the GPU: 16 is a
# conservative threshold until measured. 48 KiB is the dynamic shared memory a block gets
# without opting in.
FUSED_MAX_FEATURES = 16
_FUSED_MAX_SHARED_BYTES = 48 * 1024
# The fused kernel is instantiated (and compile-checked) up to this many features, so that
# the threshold above can be raised from measurements (benchmarks/gpu.py times both paths).
_FUSED_KERNEL_MAX_FEATURES = 32
# Fused path grid: at most this many blocks per multiprocessor (a grid-stride loop covers
# the rest), so that each block's copy of the centers serves many rows. Which thread handles
# a row does not change its result.
_FUSED_BLOCKS_PER_SM = 8

# pairwise: grid-stride blocks at most.
_MAX_ELEMENTWISE_BLOCKS = 32768

# segment_sum: each cluster's rows are summed in work items of rows_per_item rows, with
# rows_per_item = max(_MIN_ROWS_PER_ITEM, ceil(n / TARGET_ITEMS)): about TARGET_ITEMS
# blocks of work (plus at most one more per cluster) for any n, and short merge chains. It
# depends only on n, so the summation order does not depend on the GPU.
_MIN_ROWS_PER_ITEM = 256
TARGET_ITEMS = 4096
# Columns summed side by side by a block (the rest of the threads take other rows).
_MAX_COLUMN_TILE = 32


# --------------------------------------------------------------------------- kernels


def _cupy() -> Any:
    import cupy

    return cupy


def _ctype(dtype: Any) -> str:
    return _CTYPES[np.dtype(dtype).name]


def kernel_source(filename: str) -> str:
    """The text of ``kernels/<filename>``, shipped as package data."""
    return (
        importlib.resources.files(__package__).joinpath("kernels").joinpath(filename)
        .read_text(encoding="utf-8")
    )


def distance_program(dtype: Any) -> tuple[str, tuple[str, ...]]:
    """Source file and template instantiations of the row norms, GEMM-path and pairwise kernels."""
    c = _ctype(dtype)
    return "distance.cu", (
        f"row_sqnorms<{c}>", f"nearest_from_scores<{c}>", f"pairwise_from_scores<{c}>"
    )


def fused_program(dtype: Any, n_features: int) -> tuple[str, tuple[str, ...]]:
    """Source file and instantiation of the fused small-d nearest kernel for ``n_features``."""
    return "distance.cu", (f"nearest_fused<{_ctype(dtype)}, {n_features}>",)


def segment_program(dtype: Any) -> tuple[str, tuple[str, ...]]:
    """Source file and template instantiations of the segment-sum kernels."""
    c = _ctype(dtype)
    return "segment_sum.cu", (f"segment_partials<{c}>", f"segment_merge<{c}>")


def precision_program() -> tuple[str, tuple[str, ...]]:
    """Source file and kernels of the reduced-precision path (float32 only)."""
    return "precision.cu", ("round_rows", "nearest_two_from_scores", "sqdist_to_labels")


def kernel_programs() -> list[tuple[str, tuple[str, ...]]]:
    """Every (source file, instantiations) that this backend may compile."""
    programs = []
    for dtype in _CTYPES:
        programs.append(distance_program(dtype))
        programs.extend(fused_program(dtype, d) for d in range(1, _FUSED_KERNEL_MAX_FEATURES + 1))
        programs.append(segment_program(dtype))
    programs.append(precision_program())
    return programs


@functools.lru_cache(maxsize=None)
def _module(filename: str, name_expressions: tuple[str, ...]) -> Any:
    # RawModule compiles on first use and caches the binary per device (and on disk).
    return _cupy().RawModule(
        code=kernel_source(filename), options=_OPTIONS, name_expressions=name_expressions
    )


@functools.lru_cache(maxsize=None)
def _kernel(program: tuple[str, tuple[str, ...]], name: str) -> Any:
    """The kernel ``name`` (a template's name, such as ``"row_sqnorms"``) of ``program``."""
    filename, expressions = program
    (expression,) = [e for e in expressions if e.partition("<")[0] == name]
    return _module(filename, expressions).get_function(expression)


@functools.lru_cache(maxsize=None)
def _multiprocessors(device_id: int) -> int:
    return int(_cupy().cuda.Device(device_id).attributes["MultiProcessorCount"])


def _blocks(n: int, per_block: int) -> int:
    return -(-n // per_block)


def _rows_and_centers(X: Any, centers: Any, shift: Any) -> tuple[Any, Any]:
    """The rows ``X - shift`` and the centers, C-contiguous in X's dtype."""
    return _as_dtype(shifted(X, shift), X.dtype), _as_dtype(centers, X.dtype)


def _supported(*arrays: Any) -> bool:
    return all(np.dtype(a.dtype).name in _CTYPES for a in arrays)


def _as_dtype(array: Any, dtype: Any) -> Any:
    """C-contiguous, of ``dtype`` (the kernels index rows as ``row * d``)."""
    return _cupy().ascontiguousarray(array.astype(dtype, copy=False))


def row_sqnorms(X: Any, /) -> Any:
    """‖x‖² of each row: one warp per row, a fixed butterfly sum."""
    cp = _cupy()
    n, d = X.shape
    out = cp.empty(n, dtype=X.dtype)
    if n:
        _kernel(distance_program(X.dtype), "row_sqnorms")(
            (_blocks(n, _WARPS),), (_THREADS,), (X, np.int64(n), np.int32(d), out)
        )
    return out


def _fused_shared_bytes(n_features: int, n_clusters: int, itemsize: int) -> int:
    padded = -(-n_features // 4) * 4
    return n_clusters * (padded + 1) * itemsize


def fused_path_fits(n_features: int, n_clusters: int, itemsize: int) -> bool:
    """Whether the fused kernel can run these shapes (instantiated, shared memory suffices)."""
    return (
        n_features <= _FUSED_KERNEL_MAX_FEATURES
        and _fused_shared_bytes(n_features, n_clusters, itemsize) <= _FUSED_MAX_SHARED_BYTES
    )


def uses_fused_path(n_features: int, n_clusters: int, itemsize: int) -> bool:
    """Whether ``nearest`` takes the fused small-d path for these shapes."""
    return n_features <= FUSED_MAX_FEATURES and fused_path_fits(n_features, n_clusters, itemsize)


def nearest_fused(X: Any, centers: Any, c_sqnorm: Any, labels: Any, min_sqdist: Any) -> None:
    """The fused small-d path: writes ``labels`` and ``min_sqdist`` of the rows X (C-contiguous,
    float32 or float64) for ``centers`` and their squared norms ``c_sqnorm``."""
    n, d = X.shape
    k = centers.shape[0]
    grid = min(_blocks(n, _THREADS), _FUSED_BLOCKS_PER_SM * _multiprocessors(X.device.id))
    _kernel(fused_program(X.dtype, d), "nearest_fused")(
        (grid,), (_THREADS,),
        (X, centers, c_sqnorm, np.int64(n), np.int32(k), labels, min_sqdist),
        shared_mem=_fused_shared_bytes(d, k, X.itemsize),
    )


_streams = threading.local()


def _thread_stream(device_id: int) -> Any:
    """A non-blocking stream of this thread's own on the device, made once: CuPy's pool keeps
    freed memory per stream, so blocks streamed by one thread reuse the same memory."""
    streams = getattr(_streams, "by_device", None)
    if streams is None:
        streams = _streams.by_device = {}
    if device_id not in streams:
        with _cupy().cuda.Device(device_id):
            streams[device_id] = _cupy().cuda.Stream(non_blocking=True)
    return streams[device_id]


def free_bytes(device_id: int) -> int:
    """Free memory of a device: the driver's count plus the blocks CuPy's pool holds unused,
    within the pool's limit when one is set (``MemoryPool.set_limit``)."""
    cp = _cupy()
    with cp.cuda.Device(device_id):
        pool = cp.get_default_memory_pool()
        free, _ = cp.cuda.runtime.memGetInfo()
        free = int(free) + int(pool.free_bytes())
        limit = int(pool.get_limit())
        return free if limit == 0 else max(0, min(free, limit - int(pool.used_bytes())))


def auto_budget(device_id: int) -> int | None:
    """``working_memory="auto"`` on a CUDA device: ``AUTO_SHARE_OF_FREE`` of its free memory
    (at least ``SCORES_TILE_BYTES``), rounded down to a power of two; ``None`` when the
    device cannot be asked (a Dask client without a GPU)."""
    try:
        return power_of_two_at_most(max(SCORES_TILE_BYTES, int(AUTO_SHARE_OF_FREE * free_bytes(device_id))))
    except Exception:  # noqa: BLE001 - no CuPy, no driver, no such device
        return None


def host_to_device(x: np.ndarray) -> Any:
    """A host array on the current device, copied on the current stream through a pinned
    staging buffer (CuPy's pinned pool): the copy runs at the link's full rate, and other
    streams' kernels run meanwhile."""
    cp = _cupy()
    x = np.ascontiguousarray(x)
    out = cp.empty(x.shape, dtype=x.dtype)
    if x.size:
        import cupyx

        staged = cupyx.empty_pinned(x.shape, dtype=x.dtype)
        staged[...] = x
        stream = cp.cuda.get_current_stream()
        out.set(staged, stream=stream)
        stream.synchronize()  # the staging buffer goes back to the pool below
    return out


def tile_rows(n_samples: int, n_clusters: int, itemsize: int, budget: int = SCORES_TILE_BYTES) -> int:
    """Rows per GEMM tile: the score block stays within ``budget`` bytes."""
    rows = max(budget, SCORES_TILE_BYTES) // (n_clusters * itemsize)
    if rows >= _TILE_ROW_MULTIPLE:
        rows -= rows % _TILE_ROW_MULTIPLE
    return max(1, min(n_samples, rows))


# cuBLAS's compute type is a process-wide CuPy setting read when a GEMM is launched: every
# GEMM here sets the one it needs under this lock ("highest" asks for IEEE float32 even when
# CUPY_TF32=1 is set; "high" for TF32 tensor cores). The lock orders anykmeans' own GEMMs
# only: another thread's float32 cupy.matmul during a "high" GEMM would run in TF32 too.
_COMPUTE_TYPE_LOCK = threading.Lock()


def _compute_type(precision: str) -> int:
    from cupy._core import _routines_linalg as linalg

    return {"highest": linalg.COMPUTE_TYPE_DEFAULT, "high": linalg.COMPUTE_TYPE_TF32}[precision]


def _matmul(a: Any, b: Any, out: Any, precision: str = "highest") -> None:
    """``out = a @ b`` with cuBLAS at ``precision`` (float32: IEEE for ``"highest"``)."""
    cp = _cupy()
    if a.dtype != np.float32:
        cp.matmul(a, b, out=out)
        return
    from cupy._core import _routines_linalg as linalg

    with _COMPUTE_TYPE_LOCK:
        before = linalg.get_compute_type(np.float32)
        linalg.set_compute_type(np.float32, _compute_type(precision))
        try:
            cp.matmul(a, b, out=out)
        finally:
            linalg.set_compute_type(np.float32, before)


def nearest_gemm(X: Any, centers: Any, c_sqnorm: Any, labels: Any, min_sqdist: Any) -> None:
    """The GEMM path: cuBLAS scores per tile of rows, then the fused argmin kernel (same
    arguments as :func:`nearest_fused`)."""
    cp = _cupy()
    n, d = X.shape
    k = centers.shape[0]
    tile = _tile(X, k)
    scores = cp.empty((tile, k), dtype=X.dtype)
    finish = _kernel(distance_program(X.dtype), "nearest_from_scores")
    centers_t = centers.T
    for start in range(0, n, tile):
        stop = min(start + tile, n)
        rows = stop - start
        block, X_tile = scores[:rows], X[start:stop]
        _matmul(X_tile, centers_t, block)
        finish(
            (_blocks(rows, _WARPS),), (_THREADS,),
            (block, X_tile, c_sqnorm, np.int64(rows), np.int32(k), np.int32(d),
             labels[start:stop], min_sqdist[start:stop]),
        )


def _tile(X: Any, n_clusters: int) -> int:
    """Rows per GEMM tile of X for ``n_clusters`` score columns (see ``SCORES_SHARE_OF_FREE``)."""
    budget = power_of_two_at_most(int(SCORES_SHARE_OF_FREE * free_bytes(X.device.id)))
    return tile_rows(X.shape[0], n_clusters, X.itemsize, budget)


def round_rows(X: Any, bits: int, *, write: bool = True) -> tuple[Any, Any, Any, Any]:
    """float32 rows rounded to ``bits`` significant bits (``None`` unless ``write``), and the
    norms ``‖x‖``, ``‖x̃‖`` and ``‖x − x̃‖``: ``(rounded, norm, rounded_norm, residual_norm)``."""
    cp = _cupy()
    n, d = X.shape
    rounded = cp.empty_like(X) if write else None
    norms = cp.empty((3, n), dtype=X.dtype)
    if n:
        _kernel(precision_program(), "round_rows")(
            (_blocks(n, _WARPS),), (_THREADS,),
            (X, np.int64(n), np.int32(d), np.int32(24 - bits), np.int32(write),
             X if rounded is None else rounded, norms[0], norms[1], norms[2]),
        )
    return rounded, norms[0], norms[1], norms[2]


def sqdist_to_labels(X: Any, centers: Any, labels: Any) -> Any:
    """``‖x_i − centers[labels[i]]‖²`` (direct form) of float32 rows, for int64 labels."""
    cp = _cupy()
    n, d = X.shape
    out = cp.empty(n, dtype=X.dtype)
    if n:
        _kernel(precision_program(), "sqdist_to_labels")(
            (_blocks(n, _WARPS),), (_THREADS,), (X, centers, labels, np.int64(n), np.int32(d), out)
        )
    return out


def _gemm_nearest_two(X_rounded: Any, c_rounded: Any, c_sqnorm: Any, margin: Any, precision: str) -> tuple[Any, Any]:
    """Labels (int64) and near-tie flags (uint8) from cuBLAS tensor-core scores per tile of
    rows and the ``nearest_two_from_scores`` kernel."""
    cp = _cupy()
    n, k = X_rounded.shape[0], c_rounded.shape[0]
    labels = cp.empty(n, dtype=cp.int64)
    uncertain = cp.empty(n, dtype=cp.uint8)
    tile = _tile(X_rounded, k)
    scores = cp.empty((tile, k), dtype=X_rounded.dtype)
    finish = _kernel(precision_program(), "nearest_two_from_scores")
    c_rounded_t = c_rounded.T
    for start in range(0, n, tile):
        stop = min(start + tile, n)
        rows = stop - start
        block = scores[:rows]
        _matmul(X_rounded[start:stop], c_rounded_t, block, precision)
        finish(
            (_blocks(rows, _WARPS),), (_THREADS,),
            (block, c_sqnorm, margin[start:stop], np.int64(rows), np.int32(k),
             labels[start:stop], uncertain[start:stop]),
        )
    return labels, uncertain


def _fused_nearest_two(X: Any, centers: Any, c_sqnorm: Any, margin: Any, precision: str) -> tuple[Any, Any]:
    """The same from the fused Triton kernel, which rounds the rows and centers as it reads
    them (no rounded copy, no score block in memory), on PyTorch views of the arrays and on
    CuPy's current stream."""
    import torch

    cp = _cupy()
    device = torch.device("cuda", X.device.id)
    stream = cp.cuda.get_current_stream()
    # CuPy's default stream is the legacy default stream, which is PyTorch's default too.
    torch_stream = torch.cuda.ExternalStream(stream.ptr, device=device) if stream.ptr else torch.cuda.default_stream(device)
    with torch.cuda.device(device), torch.cuda.stream(torch_stream):
        views = [torch.from_dlpack(a) for a in (X, centers, c_sqnorm, margin)]
        labels, uncertain = _triton_nearest.nearest_two(*views, precision=precision, rounded=False)
    return cp.from_dlpack(labels), cp.from_dlpack(uncertain)


def nearest_reduced(X: Any, centers: Any, precision: str) -> Any:
    """Labels (int64) of the float32 rows X from tensor-core scores at ``precision``, the near
    ties rechecked in float32 by the GEMM path (see :mod:`anykmeans.backends.precision`)."""
    import array_api_compat.cupy as cupy_xp

    cp = _cupy()
    d = X.shape[1]
    fused = USE_TRITON and _triton_nearest.available()
    if not fused:
        # CuPy's GEMMs have a TF32 mode but no BF16 one for float32 data; "medium" allows
        # TF32 (as PyTorch's does), which rounds less and so rechecks fewer rows.
        precision = "high"
    bits = reduced.SIGNIFICANT_BITS[precision]
    X_rounded, norm, rounded_norm, residual_norm = round_rows(X, bits, write=not fused)
    c_rounded, c_norm, c_rounded_norm, c_residual_norm = round_rows(centers, bits, write=not fused)
    c_sqnorm = row_sqnorms(centers)
    stats = reduced.CenterStats(c_norm.max(), c_rounded_norm.max(), c_residual_norm.max(), c_sqnorm.max())
    margin = reduced.margins(norm, rounded_norm, residual_norm, stats, n_features=d, xp=cupy_xp)
    del norm, rounded_norm, residual_norm
    if fused:
        labels, uncertain = _fused_nearest_two(X, centers, c_sqnorm, margin, precision)
    else:
        labels, uncertain = _gemm_nearest_two(X_rounded, c_rounded, c_sqnorm, margin, precision)
    del X_rounded
    (checked,) = cp.nonzero(uncertain)
    if checked.size:
        exact = cp.empty(checked.size, dtype=cp.int64)
        nearest_gemm(cp.ascontiguousarray(X[checked]), centers, c_sqnorm, exact, cp.empty(checked.size, dtype=X.dtype))
        labels[checked] = exact
    return labels


def _assign(X: Any, centers: Any, precision: str = "highest") -> tuple[Any, Any]:
    """Labels (int32) and squared distances of the nearest centers, on X's device."""
    cp = _cupy()
    n, d = X.shape
    k = centers.shape[0]
    labels = cp.empty(n, dtype=cp.int64)
    min_sqdist = cp.empty(n, dtype=X.dtype)
    if not n:
        return labels.astype(cp.int32), min_sqdist
    if uses_reduced_path(precision, X.dtype, d, k, X.device.id):
        labels = nearest_reduced(X, centers, precision)
        return labels.astype(cp.int32), sqdist_to_labels(X, centers, labels)
    nearest = nearest_fused if uses_fused_path(d, k, X.itemsize) else nearest_gemm
    nearest(X, centers, row_sqnorms(centers), labels, min_sqdist)
    return labels.astype(cp.int32), min_sqdist


def uses_reduced_path(
    precision: str, dtype: Any, n_features: int, n_clusters: int, device_id: int | None = None
) -> bool:
    """Whether ``assign`` uses tensor-core scores: a reduced ``precision``, float32 data,
    shapes for the GEMM path (the fused small-d path is bound by memory, not arithmetic) and,
    given a device, one with TF32 / BF16 tensor cores (compute capability 8.0 or later)."""
    return (
        precision in reduced.SIGNIFICANT_BITS and np.dtype(dtype) == np.float32
        and not uses_fused_path(n_features, n_clusters, 4)
        and (device_id is None or has_tf32(device_id))
    )


@functools.lru_cache(maxsize=None)
def has_tf32(device_id: int) -> bool:
    """Whether the device has TF32 and BF16 tensor cores (compute capability 8.0 or later)."""
    return int(_cupy().cuda.Device(device_id).compute_capability) >= 80


def _pairwise(X: Any, centers: Any) -> Any:
    """All squared distances: one cuBLAS GEMM, then norms added and clamped in place."""
    cp = _cupy()
    n, k = X.shape[0], centers.shape[0]
    scores = cp.empty((n, k), dtype=X.dtype)
    if n:
        _matmul(X, centers.T, scores)
        _kernel(distance_program(X.dtype), "pairwise_from_scores")(
            (min(_blocks(n * k, _THREADS), _MAX_ELEMENTWISE_BLOCKS),), (_THREADS,),
            (scores, row_sqnorms(X), row_sqnorms(centers), np.int64(n), np.int32(k)),
        )
    return scores


# --------------------------------------------------------------------------- segment sums


def rows_per_item(n_samples: int) -> int:
    """Rows of one cluster that one block sums (the last piece of a cluster may be shorter)."""
    return max(_MIN_ROWS_PER_ITEM, -(-n_samples // TARGET_ITEMS))


def max_items(n_samples: int, n_clusters: int, per_item: int) -> int:
    """An upper bound of Σ_c ceil(count_c / per_item) over clusters that share n_samples rows.

    Σ floor(count_c / per_item) <= n_samples // per_item, and at most min(k, n) clusters
    have a remainder, each adding one item.
    """
    return n_samples // per_item + min(n_clusters, n_samples)


def column_tile(n_columns: int) -> int:
    """Columns a block sums side by side: tiles of at most _MAX_COLUMN_TILE, equal widths."""
    n_tiles = -(-n_columns // _MAX_COLUMN_TILE)
    return -(-n_columns // n_tiles)


def _segment_sum_into(out: Any, X: Any, labels: Any, weights: Any) -> None:
    """Column d of ``out`` gets the weight sums, columns 0…d-1 the weighted row sums."""
    cp = _cupy()
    n, d = X.shape
    k, cols = out.shape
    # A stable sort: each cluster's rows become one run, in increasing row order.
    labels = labels.astype(cp.int32)
    order = cp.argsort(labels)
    row_offsets = cp.searchsorted(
        cp.take(labels, order), cp.arange(k + 1, dtype=cp.int32)
    ).astype(cp.int64, copy=False)
    per_item = rows_per_item(n)
    items = (row_offsets[1:] - row_offsets[:-1] + (per_item - 1)) // per_item
    item_offsets = cp.concatenate([cp.zeros(1, dtype=cp.int64), cp.cumsum(items)])
    grid = max_items(n, k, per_item)
    width = column_tile(cols)
    partials = cp.empty((grid, cols), dtype=cp.float64)
    program = segment_program(X.dtype)
    scratch = _THREADS * 8
    _kernel(program, "segment_partials")(
        (grid,), (_THREADS,),
        (X, weights, order, row_offsets, item_offsets, np.int32(k), np.int32(d),
         np.int64(per_item), np.int32(width), partials),
        shared_mem=scratch,
    )
    _kernel(program, "segment_merge")(
        (k,), (_THREADS,),
        (partials, item_offsets, np.int32(cols), np.int32(width), out),
        shared_mem=scratch,
    )


class CupyKernels(Kernels):
    """cuBLAS and fused CUDA kernels for ``assign``, ``pairwise`` and ``segment_sum`` (float32
    and float64; other dtypes take the reference); the passes are the reference's
    compositions of them."""

    name = "cupy"
    priority = 20

    def supports(self, xp: Namespace, device: Device) -> bool:
        return array_api_compat.is_cupy_namespace(xp)

    def free_memory(self, device: Device) -> int | None:
        return free_bytes(device.id)

    @contextlib.contextmanager
    def streaming(self, device: Device) -> Iterator[None]:
        cp = _cupy()
        with cp.cuda.Device(device.id), _thread_stream(device.id) as stream:
            yield
            stream.synchronize()

    def to_device(self, x, placement, /):
        if isinstance(x, np.ndarray) and array_api_compat.is_cupy_namespace(placement[0]):
            with placement[1]:
                return host_to_device(x)
        return super().to_device(x, placement)

    def auto_working_memory(self, device: Device) -> int:
        """Half of the device's free memory (CuPy's pool included): one chunk holds every row
        unless the data is a large part of the device."""
        budget = auto_budget(device.id)
        return super().auto_working_memory(device) if budget is None else budget

    def assign(self, X, centers, /, *, shift, xp, precision="highest"):
        if not _supported(X):
            return reference.assign(X, centers, shift=shift, xp=xp, precision=precision)
        with X.device:
            return _assign(*_rows_and_centers(X, centers, shift), precision)

    def pairwise(self, X, centers, /, *, shift, xp):
        if not _supported(X):
            return reference.pairwise(X, centers, shift=shift, xp=xp)
        with X.device:
            return _pairwise(*_rows_and_centers(X, centers, shift))

    def segment_sum(self, X, weights, labels, /, *, n_clusters, shift, xp):
        """Sort by label, then a two-level segmented sum in a fixed order (no atomics)."""
        if not _supported(X):
            return reference.segment_sum(X, weights, labels, n_clusters=n_clusters, shift=shift, xp=xp)
        cp = _cupy()
        with X.device:
            X, weights = _as_dtype(shifted(X, shift), X.dtype), _as_dtype(weights, X.dtype)
            n, d = X.shape
            k, cols = int(n_clusters), d + 1
            # Column d holds the weight sums; the merge kernel writes every entry.
            out = cp.empty((k, cols), dtype=X.dtype) if n else cp.zeros((k, cols), dtype=X.dtype)
            if n:
                _segment_sum_into(out, X, labels, weights)
            return cp.ascontiguousarray(out[:, :d]), cp.ascontiguousarray(out[:, d])


kernels = CupyKernels()
