"""GPU benchmark on a CUDA device: anykmeans (CuPy input) per Lloyd iteration in each of its
``matmul_precision`` modes (and "high" through cuBLAS instead of its fused Triton kernel)
against a plain PyTorch Lloyd step, flash-kmeans and fast-pytorch-kmeans, each in its default
mode and in IEEE FP32; the labels of one assignment in each mode against the exact FP32
labels; then a full default anykmeans fit per shape. Each shape runs once per ``--data`` kind.

    python benchmarks/gpu.py [--shapes 1000000x128x1024,1000000x768x8192] [--quick]
                             [--data normal,clustered] [--precisions highest,high,medium]
                             [--max-iter 20] [--repeat 3] [--torch-score-mib 4096]
                             [--timeout 300] [--full-fit-large] [--out benchmarks/results]

Data (``--data``, a comma list; default ``normal``, with ``--quick`` both kinds), float32,
generated on the device from ``cp.random.default_rng(0)`` in blocks of 10M rows into one
allocation (no second copy of X):

- ``normal``: standard normals. Unstructured: many rows are near ties between centers, so
  the reduced-precision modes recheck many of them in FP32 (10–56 % in TF32 on the reference
  shapes).
- ``clustered``: k Gaussian clusters: k means drawn from N(0, 1) in d dimensions, then per
  block each row's cluster (uniformly) and the row = its cluster's mean + N(0, 0.5²) noise
  per feature. Few near ties (1–2 % rechecked in TF32).

The k initial centers are rows of X picked by
``numpy.random.default_rng(1).choice(n, k, replace=False)``; the same for every
implementation. Every row of the results carries its data kind. The device's FP32 GEMM rate
(cupy.matmul) and memory bandwidth (device copy) are measured first. Shapes: the reference
ones plus two embedding-like ones, (1M, 768, 8192) and (1M, 1024, 16384).

Per iteration (``tol=0``, best of ``--repeat`` rounds, device synchronised):

- anykmeans in each ``--precisions`` mode, inside
  ``anykmeans.config_context(matmul_precision=m)``: ``anykmeans`` (``"highest"``, the
  default: IEEE FP32), ``anykmeans_high`` (``"high"``: TF32 tensor cores, near-tie rows
  rechecked in FP32) and ``anykmeans_medium`` (``"medium"``: BF16 inputs, FP32 accumulation,
  the same recheck); with "high" also ``anykmeans_high_cublas``: ``"high"`` with
  ``anykmeans.backends.cupy.USE_TRITON`` set to False while it is timed (restored after, also
  on error), so that the TF32 scores come from cuBLAS GEMMs per tile of rows instead of the
  fused Triton kernel that "high" and "medium" use when Triton and PyTorch import (whether
  they do, ``anykmeans.backends._triton_nearest.available()``, is recorded as
  ``triton_available``; without Triton both keys time the cuBLAS path). Each anykmeans
  figure is the difference between fits of ``2 × max-iter`` and ``max-iter`` iterations over
  the difference in iterations, so that the set-up and the final assignment of a fit are not
  counted. Also anykmeans' backend kernels alone (assign + segment_sum) at the default
  settings, with the path it picks and with the GEMM and fused paths forced.
- the others run their Lloyd loops for ``max-iter`` iterations, in these modes:
  ``torch_plain`` and ``fast_pytorch_kmeans`` at PyTorch's default FP32 matmul (IEEE,
  ``allow_tf32=False``), ``torch_plain_tf32`` and ``fast_pytorch_kmeans_tf32`` under
  ``torch.set_float32_matmul_precision("high")`` (TF32); ``flash_kmeans`` at Triton's default
  (``TRITON_F32_DEFAULT`` unset: TF32 on tensor cores), ``flash_kmeans_ieee`` with
  ``TRITON_F32_DEFAULT=ieee`` and ``flash_kmeans_fp16`` with X and the initial centers cast
  to torch.float16. Triton reads that variable when it compiles, so each flash-kmeans mode
  runs in its own process (``--_one``, own Triton cache), which regenerates the data from the
  same seeds and is stopped after ``--timeout`` seconds.
- ratios: ``anykmeans`` (highest) over the fastest IEEE-FP32 implementation compared
  (torch_plain, flash_kmeans_ieee, fast_pytorch_kmeans; the project's goal is ≤ 1.0), and
  over the fastest in any mode; the speed-up of each reduced-precision anykmeans mode,
  ``anykmeans`` / ``anykmeans_<m>`` (goal for high: ≥ 3), ``anykmeans_high_cublas``
  included; ``anykmeans_high_cublas`` / ``anykmeans_high`` (cuBLAS over Triton); each
  anykmeans mode over ``flash_kmeans`` in its default mode (goal for ``anykmeans_high``:
  ≤ 1.0).

Labels, per implementation and mode: the fraction of the labels of ONE assignment from the
initial centers that differ from the exact FP32 labels (anykmeans'
``kernels.assign(X, init, precision="highest")``), computed in blocks of rows so that no
n × k array is made (``--torch-score-mib``): anykmeans by ``kernels.assign(...,
precision=m)`` (``anykmeans_high_cublas``: "high" with ``USE_TRITON`` off); plain PyTorch
by the argmin of its addmm scores (TF32 off / on); fast-pytorch-kmeans by ``predict`` with
the initial centers, flash-kmeans by
``batch_kmeans_Euclid(..., max_iters=1)`` (both: the labels a one-iteration fit returns, the
assignment to the initial centers), the flash-kmeans modes inside their own processes. For
the reduced-precision anykmeans modes also the recheck fraction: the share of the first
200,000 rows whose reduced-precision scores cannot certify the nearest center
(``anykmeans.backends.precision.near_ties``), the rows a fit rechecks in FP32 (measured once
for "high": it does not depend on the Triton or cuBLAS path).

Full fit: ``anykmeans.KMeans(k, random_state=0).fit(X)`` at the library defaults (k-means++,
``max_iter=300``, ``tol=1e-4``, one run, ``matmul_precision`` at its default), after a
warm-up fit on a slice of X; seconds and ``n_iter_``, and
``anykmeans.kmeans_plusplus(X, k, random_state=0)`` timed alone. Skipped for n ≥ 50M unless
``--full-fit-large``.

An implementation or mode that fails (out of memory at (100M, 64, 1024), not installed, not
supported, timed out) is reported as skipped with the reason. Needs CuPy and a CUDA device;
PyTorch (with CUDA), flash-kmeans and fast-pytorch-kmeans are compared when they import.
Writes ``gpu.json`` and ``gpu.md`` under ``--out``; the console, ``gpu.json`` and every table
of ``gpu.md`` name each row's data kind, and the header says whether anykmeans' Triton kernel
was importable.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

SHAPES = [(1_000_000, 128, 1024), (10_000_000, 32, 256), (1_000_000, 8, 16), (200_000, 256, 16_384),
          (100_000_000, 64, 1024), (1_000_000, 768, 8192), (1_000_000, 1024, 16_384)]
QUICK_SHAPES = [(50_000, 128, 256), (200_000, 32, 64), (100_000, 8, 16), (20_000, 256, 2048),
                (20_000, 768, 1024)]
# X is generated this many rows at a time: generating it whole needs a second copy.
GENERATE_ROWS = 10_000_000
# Full fits of larger data take minutes: only with --full-fit-large.
FULL_FIT_MAX_ROWS = 50_000_000
# The recheck fraction is measured on at most this many rows (the first ones of X).
RECHECK_ROWS = 200_000
# --data: "normal", standard normals; "clustered", k Gaussian clusters whose means are
# standard normals and whose rows scatter around their mean by CLUSTER_NOISE per feature.
DATA_KINDS = ("normal", "clustered")
CLUSTER_NOISE = 0.5

# anykmeans' matmul_precision modes and their result keys.
PRECISIONS = ("highest", "high", "medium")
PRECISION_KEYS = {"highest": "anykmeans", "high": "anykmeans_high", "medium": "anykmeans_medium"}
# "high" with anykmeans.backends.cupy.USE_TRITON off: cuBLAS TF32 GEMMs instead of the fused
# Triton kernel (timed when "high" is in --precisions).
HIGH_CUBLAS = "anykmeans_high_cublas"
# The anykmeans fits, in the order of the tables, and the name of each in the report.
ANYKMEANS_KEYS = {"anykmeans": "highest", "anykmeans_high": "high", HIGH_CUBLAS: "high cuBLAS",
                  "anykmeans_medium": "medium"}
# The result keys, in the order of the table, and the FP32 mode each runs in.
MODES = {
    "anykmeans": "ieee",
    "anykmeans_high": "tf32",
    HIGH_CUBLAS: "tf32",
    "anykmeans_medium": "bf16",
    "anykmeans_kernels": "default",
    "kernels_gemm": "default",
    "kernels_fused": "default",
    "torch_plain": "ieee",
    "torch_plain_tf32": "tf32",
    "flash_kmeans": "default",
    "flash_kmeans_ieee": "ieee",
    "flash_kmeans_fp16": "fp16",
    "fast_pytorch_kmeans": "ieee",
    "fast_pytorch_kmeans_tf32": "tf32",
}
# Triton reads TRITON_F32_DEFAULT when it compiles: these run in their own process, with the
# variable set to this value (None: unset). The float16 mode does not read it (FP16 dots).
ISOLATED = {"flash_kmeans": None, "flash_kmeans_ieee": "ieee", "flash_kmeans_fp16": None}
IEEE_OTHERS = ("torch_plain", "flash_kmeans_ieee", "fast_pytorch_kmeans")
ALL_OTHERS = ("torch_plain", "torch_plain_tf32", "flash_kmeans", "flash_kmeans_ieee",
              "flash_kmeans_fp16", "fast_pytorch_kmeans", "fast_pytorch_kmeans_tf32")
# The keys whose labels of one assignment are compared with the exact FP32 labels.
LABELLED = ("anykmeans", "anykmeans_high", HIGH_CUBLAS, "anykmeans_medium", "torch_plain",
            "torch_plain_tf32", "flash_kmeans", "flash_kmeans_ieee", "flash_kmeans_fp16",
            "fast_pytorch_kmeans", "fast_pytorch_kmeans_tf32")
# Variables that change the FP32 mode of cuBLAS, PyTorch, Triton or anykmeans; recorded when set.
PRECISION_ENV = ("CUPY_TF32", "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", "NVIDIA_TF32_OVERRIDE",
                 "TRITON_F32_DEFAULT", "ANYKMEANS_MATMUL_PRECISION")


def _parse_shapes(text: str) -> list[tuple[int, int, int]]:
    shapes = []
    for item in text.split(","):
        try:
            n, d, k = (int(float(v)) for v in item.lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"a shape is NxDxK, e.g. 1000000x128x1024; got {item!r}") from None
        shapes.append((n, d, k))
    return shapes


def _choices(option: str, allowed: tuple[str, ...]):
    """A parser of a comma list of ``allowed`` names (the option ``option``), in their order."""

    def parse(text: str) -> list[str]:
        picked = {item.strip().lower() for item in text.split(",") if item.strip()}
        if picked - set(allowed) or not picked:
            raise argparse.ArgumentTypeError(f"{option} is a comma list of {', '.join(allowed)}; got {text!r}")
        return [name for name in allowed if name in picked]

    return parse


_parse_precisions = _choices("--precisions", PRECISIONS)
_parse_data = _choices("--data", DATA_KINDS)


def _anykmeans_keys(precisions) -> list[str]:
    """The anykmeans fits timed for these --precisions modes, in ANYKMEANS_KEYS' order."""
    keys = {PRECISION_KEYS[m] for m in precisions}
    if "high" in precisions:
        keys.add(HIGH_CUBLAS)
    return [key for key in ANYKMEANS_KEYS if key in keys]


def _triton_available() -> bool | None:
    """Whether anykmeans' fused Triton kernel can run (Triton and PyTorch import); None when
    that cannot be asked."""
    try:
        from anykmeans.backends import _triton_nearest
    except Exception:  # noqa: BLE001 - an anykmeans without the Triton path
        return None
    return bool(_triton_nearest.available())


def _require_gpu():
    try:
        import cupy
    except ImportError:
        sys.exit("benchmarks/gpu.py needs CuPy and a CUDA device: pip install cupy-cuda12x "
                 "(or anykmeans[cuda]) on a machine with an NVIDIA GPU.")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - no driver, no device
        sys.exit(f"benchmarks/gpu.py needs a CUDA device; CuPy cannot use one here: {exc}")
    if count == 0:
        sys.exit("benchmarks/gpu.py needs a CUDA device; CuPy sees none.")
    return cupy


def _reason(exc: BaseException) -> str:
    """One line for the report (out-of-memory messages run to a paragraph)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300]


# --------------------------------------------------------------------------- the device


def _elapsed_ms(cp, run, repeat: int) -> float:
    """Best time of ``run()`` in ms over ``repeat`` rounds, measured with CUDA events."""
    best = float("inf")
    for _ in range(repeat):
        start, end = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        run()
        end.record()
        end.synchronize()
        best = min(best, cp.cuda.get_elapsed_time(start, end))
    return best


def measure_gemm_tflops(cp, size: int) -> float:
    """FP32 GEMM rate of cupy.matmul on size × size matrices (best of several), TFLOP/s."""
    rng = cp.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=cp.float32)
    b = rng.standard_normal((size, size), dtype=cp.float32)
    out = cp.empty((size, size), dtype=cp.float32)
    cp.matmul(a, b, out=out)  # warm-up
    ms = _elapsed_ms(cp, lambda: cp.matmul(a, b, out=out), repeat=10)
    return 2 * size**3 / (ms * 1e-3) / 1e12


def measure_bandwidth_gbs(cp, nbytes: int) -> float:
    """Device-to-device copy rate, counting the bytes read and written, GB/s."""
    a = cp.ones(nbytes // 4, dtype=cp.float32)
    b = cp.empty_like(a)

    def copy():
        b.data.copy_from_device_async(a.data, a.nbytes)

    copy()
    ms = _elapsed_ms(cp, copy, repeat=10)
    return 2 * a.nbytes / (ms * 1e-3) / 1e9


def device_info(cp) -> dict:
    device = cp.cuda.Device()
    props = cp.cuda.runtime.getDeviceProperties(device.id)
    name = props["name"]
    return {
        "name": name.decode() if isinstance(name, bytes) else str(name),
        "compute_capability": device.compute_capability,
        "memory_gib": round(props["totalGlobalMem"] / 2**30, 1),
        "multiprocessors": props["multiProcessorCount"],
    }


def make_data(cp, n: int, d: int, k: int, data: str = "normal"):
    """X of the kind ``data`` and the initial centers; every process gets the same from the
    same seeds.

    ``"normal"``: standard normals. ``"clustered"``: k cluster means drawn from N(0, 1) in d
    dimensions, then per block of GENERATE_ROWS rows each row's cluster, uniformly, and the
    row = its cluster's mean + N(0, CLUSTER_NOISE²) per feature. The noise is drawn into X
    itself and the means are added in pieces, so no second copy of X (nor of a block) is made.
    """
    import numpy as np

    rng = cp.random.default_rng(0)
    if data == "normal":
        if n <= GENERATE_ROWS:
            X = rng.standard_normal((n, d), dtype=cp.float32)
        else:
            X = cp.empty((n, d), dtype=cp.float32)
            for start in range(0, n, GENERATE_ROWS):
                stop = min(start + GENERATE_ROWS, n)
                X[start:stop] = rng.standard_normal((stop - start, d), dtype=cp.float32)
    elif data == "clustered":
        means = rng.standard_normal((k, d), dtype=cp.float32)
        X = cp.empty((n, d), dtype=cp.float32)
        # Rows per piece of the gathered means: at most 256 MiB of temporaries.
        piece = max(1, 2**28 // (4 * d))
        for start in range(0, n, GENERATE_ROWS):
            stop = min(start + GENERATE_ROWS, n)
            cluster = rng.integers(0, k, size=stop - start)
            block = X[start:stop]
            rng.standard_normal((stop - start, d), dtype=cp.float32, out=block)
            block *= cp.float32(CLUSTER_NOISE)
            for first in range(0, stop - start, piece):
                block[first:first + piece] += means[cluster[first:first + piece]]
            del cluster, block
    else:
        raise ValueError(f"unknown data kind {data!r}; one of {', '.join(DATA_KINDS)}")
    picked = np.random.default_rng(1).choice(n, size=k, replace=False)
    return X, X[cp.asarray(picked)]


# --------------------------------------------------------------------------- implementations


def _sync(cp) -> None:
    cp.cuda.Device().synchronize()


def _free(cp) -> None:
    """Returns the memory of the last measurement to the device (an out-of-memory traceback
    can hold its arrays in a reference cycle)."""
    gc.collect()
    cp.get_default_memory_pool().free_all_blocks()
    torch = _torch_cuda()
    if torch is not None:
        torch.cuda.empty_cache()


@contextlib.contextmanager
def _cublas_path():
    """anykmeans' CuPy backend without its fused Triton kernel for the block: "high" and
    "medium" scores come from cuBLAS tensor-core GEMMs. ``USE_TRITON`` is restored after, also
    on error."""
    from anykmeans.backends import cupy as backend

    before = backend.USE_TRITON
    backend.USE_TRITON = False
    try:
        yield
    finally:
        backend.USE_TRITON = before


def time_anykmeans(cp, X, init, max_iter: int, repeat: int, precision: str = "highest") -> dict:
    """Seconds per Lloyd iteration of anykmeans.KMeans with ``matmul_precision=precision``
    (inside ``_cublas_path()`` for the HIGH_CUBLAS key)."""
    import anykmeans

    k = init.shape[0]

    def fit(iterations):
        _sync(cp)
        start = time.perf_counter()
        model = anykmeans.KMeans(k, init=init, max_iter=iterations, tol=0).fit(X)
        _sync(cp)
        return time.perf_counter() - start, model.n_iter_

    # Set explicitly for "highest" too: ANYKMEANS_MATMUL_PRECISION may be set.
    with anykmeans.config_context(matmul_precision=precision):
        fit(2)  # compiles the kernels, warms the memory pool
        short = long = (float("inf"), 0)
        for _ in range(repeat):
            short = min(short, fit(max_iter))
            long = min(long, fit(2 * max_iter))
    (t_short, n_short), (t_long, n_long) = short, long
    if n_long > n_short:
        return {"seconds_per_iteration": (t_long - t_short) / (n_long - n_short)}
    return {"seconds_per_iteration": t_long / n_long,
            "note": f"converged in {n_long} iterations: whole fit / iterations"}


def time_anykmeans_kernels(cp, X, init, repeat: int, path: str = "auto") -> dict:
    """The backend kernels alone on the whole data: assign + segment_sum, one chunk.

    ``path``: ``"auto"`` (what ``assign`` picks), or ``"gemm"`` / ``"fused"`` forced, to
    measure where the fused small-d path should take over.
    """
    import array_api_compat.cupy as xp

    from anykmeans.backends import cupy as backend

    n, d = X.shape
    k = init.shape[0]
    if path == "fused" and not backend.fused_path_fits(d, k, X.itemsize):
        return {"skipped": "the fused kernel does not fit these shapes"}
    weights = cp.ones(n, dtype=X.dtype)
    labels = cp.empty(n, dtype=cp.int64)
    min_sqdist = cp.empty(n, dtype=X.dtype)

    def step():
        if path == "auto":
            labels_, _ = backend.kernels.assign(X, init, shift=None, xp=xp)
        else:
            nearest = backend.nearest_fused if path == "fused" else backend.nearest_gemm
            nearest(X, init, backend.row_sqnorms(init), labels, min_sqdist)
            labels_ = labels
        backend.kernels.segment_sum(X, weights, labels_, n_clusters=k, shift=None, xp=xp)

    step()
    return {"seconds_per_iteration": _elapsed_ms(cp, step, repeat) * 1e-3}


def time_full_fit(cp, X, k: int) -> dict:
    """A fit at the library defaults, and k-means++ alone, each after a warm-up on a slice."""
    import anykmeans

    warm = X[: min(X.shape[0], max(4 * k, 50_000))]
    anykmeans.KMeans(k, random_state=0).fit(warm)
    anykmeans.kmeans_plusplus(warm, k, random_state=0)
    _sync(cp)
    start = time.perf_counter()
    anykmeans.kmeans_plusplus(X, k, random_state=0)
    _sync(cp)
    seeding = time.perf_counter() - start
    start = time.perf_counter()
    model = anykmeans.KMeans(k, random_state=0).fit(X)
    _sync(cp)
    return {"seconds": time.perf_counter() - start, "n_iter": int(model.n_iter_),
            "kmeans_plusplus_seconds": seeding, "inertia": float(model.inertia_)}


def _torch_cuda():
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


@contextlib.contextmanager
def _matmul_precision(torch, tf32: bool):
    """PyTorch's FP32 matmul mode for the block ("highest", PyTorch's default: IEEE; "high":
    TF32), restored after. Only this API: mixing it with ``allow_tf32`` can raise."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def time_torch_plain(cp, X, init, max_iter: int, repeat: int, budget_bytes: int, tf32: bool) -> dict:
    """A plain PyTorch Lloyd step: GEMM (addmm) + argmin, index_add_ sums, no host syncs."""
    torch = _torch_cuda()
    if torch is None:
        return {"skipped": "PyTorch with CUDA is not installed"}
    Xt, C0 = torch.from_dlpack(X), torch.from_dlpack(init).clone()
    n, k = Xt.shape[0], C0.shape[0]
    rows = max(1, min(n, budget_bytes // (k * Xt.element_size())))
    ones = torch.ones(n, device=Xt.device, dtype=Xt.dtype)

    def lloyd(iterations):
        C = C0.clone()
        labels = torch.empty(n, device=Xt.device, dtype=torch.int64)
        for _ in range(iterations):
            c_sqnorm = (C * C).sum(dim=1)
            for start in range(0, n, rows):
                scores = torch.addmm(c_sqnorm, Xt[start:start + rows], C.T, alpha=-2.0)
                labels[start:start + rows] = scores.argmin(dim=1)
            sums = torch.zeros_like(C).index_add_(0, labels, Xt)
            counts = torch.zeros(k, device=Xt.device, dtype=Xt.dtype).index_add_(0, labels, ones)
            C = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], C)
        return C

    with _matmul_precision(torch, tf32):
        lloyd(1)
        ms = _elapsed_ms(cp, lambda: lloyd(max_iter), repeat)
    return {"seconds_per_iteration": ms * 1e-3 / max_iter}


def time_flash_kmeans(cp, X, init, max_iter: int, repeat: int, fp16: bool = False) -> dict:
    """flash-kmeans' Lloyd loop on X (``fp16``: X and the initial centers cast to float16)."""
    torch = _torch_cuda()
    if torch is None:
        return {"skipped": "PyTorch with CUDA is not installed"}
    try:
        from flash_kmeans import batch_kmeans_Euclid
    except Exception as exc:  # noqa: BLE001 - not installed, or its Triton kernels fail to import
        return {"skipped": f"flash-kmeans does not import: {_reason(exc)}"}
    dtype = torch.float16 if fp16 else torch.float32
    Xt, C0 = torch.from_dlpack(X).to(dtype)[None], torch.from_dlpack(init).to(dtype)[None]
    try:
        batch_kmeans_Euclid(Xt, C0.shape[1], max_iters=2, tol=0.0, init_centroids=C0.clone())
        ms = _elapsed_ms(cp, lambda: batch_kmeans_Euclid(
            Xt, C0.shape[1], max_iters=max_iter, tol=0.0, init_centroids=C0.clone()), repeat)
    except Exception as exc:  # noqa: BLE001 - report, do not abort the other measurements
        return {"skipped": f"flash-kmeans failed: {_reason(exc)}"}
    return {"seconds_per_iteration": ms * 1e-3 / max_iter}


def time_fast_pytorch_kmeans(cp, X, init, max_iter: int, repeat: int, tf32: bool) -> dict:
    torch = _torch_cuda()
    if torch is None:
        return {"skipped": "PyTorch with CUDA is not installed"}
    try:
        from fast_pytorch_kmeans import KMeans
    except Exception as exc:  # noqa: BLE001
        return {"skipped": f"fast-pytorch-kmeans does not import: {_reason(exc)}"}
    Xt, C0 = torch.from_dlpack(X), torch.from_dlpack(init)

    def run(iterations):
        # tol < 0: never converges, runs exactly `iterations` iterations.
        KMeans(C0.shape[0], max_iter=iterations, tol=-1, mode="euclidean").fit_predict(
            Xt, centroids=C0.clone()
        )

    try:
        with _matmul_precision(torch, tf32):
            run(1)
            ms = _elapsed_ms(cp, lambda: run(max_iter), repeat)
    except Exception as exc:  # noqa: BLE001
        return {"skipped": f"fast-pytorch-kmeans failed: {_reason(exc)}"}
    return {"seconds_per_iteration": ms * 1e-3 / max_iter}


def _timers(cp, X, init, args) -> dict:
    """Each implementation's measurement on (X, init), by result key."""
    it, rep = args.max_iter, args.repeat
    budget = int(args.torch_score_mib * 2**20)
    timers = {
        "anykmeans_kernels": lambda: time_anykmeans_kernels(cp, X, init, rep),
        "kernels_gemm": lambda: time_anykmeans_kernels(cp, X, init, rep, "gemm"),
        "kernels_fused": lambda: time_anykmeans_kernels(cp, X, init, rep, "fused"),
        "torch_plain": lambda: time_torch_plain(cp, X, init, it, rep, budget, tf32=False),
        "torch_plain_tf32": lambda: time_torch_plain(cp, X, init, it, rep, budget, tf32=True),
        # The flash-kmeans modes differ by the environment of their process (and fp16 by the
        # input dtype).
        "flash_kmeans": lambda: time_flash_kmeans(cp, X, init, it, rep),
        "flash_kmeans_ieee": lambda: time_flash_kmeans(cp, X, init, it, rep),
        "flash_kmeans_fp16": lambda: time_flash_kmeans(cp, X, init, it, rep, fp16=True),
        "fast_pytorch_kmeans": lambda: time_fast_pytorch_kmeans(cp, X, init, it, rep, tf32=False),
        "fast_pytorch_kmeans_tf32": lambda: time_fast_pytorch_kmeans(cp, X, init, it, rep, tf32=True),
    }
    for precision, key in PRECISION_KEYS.items():
        if precision in args.precisions:
            timers[key] = lambda m=precision: time_anykmeans(cp, X, init, it, rep, precision=m)
        else:
            timers[key] = lambda: {"skipped": "not in --precisions"}
    if "high" in args.precisions:
        timers[HIGH_CUBLAS] = lambda: _in_cublas_path(
            lambda: time_anykmeans(cp, X, init, it, rep, precision="high"))
    else:
        timers[HIGH_CUBLAS] = lambda: {"skipped": "not in --precisions"}
    return timers


def _in_cublas_path(function):
    """``function()`` with anykmeans' Triton kernel off (see ``_cublas_path``)."""
    with _cublas_path():
        return function()


# --------------------------------------------------------------------------- labels


def _label_rows(args, n: int, k: int) -> int:
    """Rows per block of a label computation: a block's n × k scores fit --torch-score-mib."""
    budget = int(args.torch_score_mib * 2**20)
    return max(1, min(n, budget // (k * 4)))


def anykmeans_labels(cp, X, init, rows: int, precision: str):
    """Labels of one assignment to ``init`` by anykmeans' CuPy kernels in ``precision``
    (``"highest"``: the exact FP32 labels every other implementation is compared with)."""
    import array_api_compat.cupy as xp

    from anykmeans.backends import cupy as backend

    n = X.shape[0]
    labels = cp.empty(n, dtype=cp.int32)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        block, _ = backend.kernels.assign(X[start:stop], init, shift=None, xp=xp, precision=precision)
        labels[start:stop] = block
    return labels


def recheck_fraction(cp, X, init, rows: int, precision: str) -> float:
    """Share of the first RECHECK_ROWS rows that a fit in ``precision`` rechecks in FP32: the
    rows whose reduced-precision scores cannot certify their nearest center."""
    import array_api_compat.cupy as xp

    from anykmeans.backends import precision as precision_mod

    m = min(X.shape[0], RECHECK_ROWS)
    ties = 0
    for start in range(0, m, rows):
        stop = min(start + rows, m)
        mask = precision_mod.near_ties(X[start:stop], init, precision=precision, shift=None, xp=xp)
        ties += int(cp.count_nonzero(mask))
    return ties / m


def torch_plain_labels(cp, X, init, rows: int, tf32: bool):
    """The plain PyTorch step's labels for ``init``: argmin of the addmm scores, per block."""
    torch = _torch_cuda()
    if torch is None:
        raise RuntimeError("PyTorch with CUDA is not installed")
    Xt, C = torch.from_dlpack(X), torch.from_dlpack(init)
    n = Xt.shape[0]
    labels = torch.empty(n, device=Xt.device, dtype=torch.int64)
    with _matmul_precision(torch, tf32):
        c_sqnorm = (C * C).sum(dim=1)
        for start in range(0, n, rows):
            scores = torch.addmm(c_sqnorm, Xt[start:start + rows], C.T, alpha=-2.0)
            labels[start:start + rows] = scores.argmin(dim=1)
    return labels


def fast_pytorch_kmeans_labels(cp, X, init, rows: int, tf32: bool):
    """fast-pytorch-kmeans' labels of one assignment to ``init``.

    In its source (fast_pytorch_kmeans/kmeans.py, 0.2.x), ``fit_predict(X, centroids=C)``
    computes ``closest = self.max_sim(a=X, b=self.centroids)[1]`` at the top of each
    iteration, then updates the centroids, and returns the last ``closest``: with
    ``max_iter=1`` the assignment to the initial centers. ``predict(X)`` runs the same
    ``max_sim`` with ``self.centroids``, so the centers are set to ``init`` and ``predict`` is
    called per block of rows: the same labels, without the k × n one-hot matrix that the
    update in ``fit_predict`` builds.
    """
    torch = _torch_cuda()
    if torch is None:
        raise RuntimeError("PyTorch with CUDA is not installed")
    from fast_pytorch_kmeans import KMeans

    Xt, C0 = torch.from_dlpack(X), torch.from_dlpack(init)
    n = Xt.shape[0]
    model = KMeans(C0.shape[0], mode="euclidean")
    model.centroids = C0.clone()
    labels = torch.empty(n, device=Xt.device, dtype=torch.int64)
    with _matmul_precision(torch, tf32):
        for start in range(0, n, rows):
            labels[start:start + rows] = model.predict(Xt[start:start + rows])
    return labels


def flash_kmeans_labels(cp, X, init, fp16: bool = False):
    """flash-kmeans' labels of one assignment to ``init`` (``fp16``: float16 X and centers).

    In its source (flash_kmeans/kmeans_triton_impl.py, 0.2 and 0.3), each iteration of
    ``batch_kmeans_Euclid`` first assigns with the current centers
    (``cluster_ids = euclid_assign_triton(x, centroids, ...)``), then computes the new
    centers; it returns ``(cluster_ids, centroids, n_iter)``. With ``max_iters=1`` the labels
    are those of the assignment to ``init_centroids``. Its assign kernel is fused (no n × k
    scores), so it runs on all rows at once.
    """
    torch = _torch_cuda()
    if torch is None:
        raise RuntimeError("PyTorch with CUDA is not installed")
    from flash_kmeans import batch_kmeans_Euclid

    dtype = torch.float16 if fp16 else torch.float32
    Xt = torch.from_dlpack(X).to(dtype)[None]
    # A copy: its fused path writes new centers into a buffer that can alias the input.
    C0 = torch.from_dlpack(init).to(dtype)[None].clone()
    out = batch_kmeans_Euclid(Xt, C0.shape[1], max_iters=1, tol=0.0, init_centroids=C0)
    return out[0][0]


def _label_functions(cp, X, init, rows: int) -> dict:
    """Each labelled key's labels of one assignment to ``init``, by result key."""
    functions = {
        "torch_plain": lambda: torch_plain_labels(cp, X, init, rows, tf32=False),
        "torch_plain_tf32": lambda: torch_plain_labels(cp, X, init, rows, tf32=True),
        "flash_kmeans": lambda: flash_kmeans_labels(cp, X, init),
        "flash_kmeans_ieee": lambda: flash_kmeans_labels(cp, X, init),
        "flash_kmeans_fp16": lambda: flash_kmeans_labels(cp, X, init, fp16=True),
        "fast_pytorch_kmeans": lambda: fast_pytorch_kmeans_labels(cp, X, init, rows, tf32=False),
        "fast_pytorch_kmeans_tf32": lambda: fast_pytorch_kmeans_labels(cp, X, init, rows, tf32=True),
    }
    for precision, key in PRECISION_KEYS.items():
        functions[key] = lambda m=precision: anykmeans_labels(cp, X, init, rows, m)
    functions[HIGH_CUBLAS] = lambda: _in_cublas_path(
        lambda: anykmeans_labels(cp, X, init, rows, "high"))
    return functions


def _fraction_differing(cp, labels, exact) -> float:
    """Share of rows whose label (a CuPy array or a CUDA tensor) differs from ``exact``."""
    if not isinstance(labels, cp.ndarray):
        labels = cp.from_dlpack(labels.contiguous())
    return int(cp.count_nonzero(labels.reshape(-1) != exact)) / exact.shape[0]


def measure_labels(cp, X, init, args, names) -> dict:
    """For each key of ``names``: ``label_difference``, the share of labels of one
    assignment to ``init`` that differ from the exact FP32 labels, and for the
    reduced-precision anykmeans modes ``recheck_fraction``; ``*_skipped`` with the reason
    where that failed."""
    n, k = X.shape[0], init.shape[0]
    rows = _label_rows(args, n, k)
    out = {name: {} for name in names}
    if not names:
        return out
    try:
        exact = anykmeans_labels(cp, X, init, rows, "highest")
    except Exception as exc:  # noqa: BLE001 - report, do not abort the other measurements
        traceback.print_exc()
        reason = f"the exact FP32 labels failed: {_reason(exc)}"
        return {name: {"label_difference_skipped": reason} for name in names}
    functions = _label_functions(cp, X, init, rows)
    precision_of = {key: m for m, key in PRECISION_KEYS.items()}
    for name in names:
        try:
            out[name]["label_difference"] = _fraction_differing(cp, functions[name](), exact)
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            out[name]["label_difference_skipped"] = _reason(exc)
        _free(cp)
        precision = precision_of.get(name)
        if precision is not None and precision != "highest":
            try:
                out[name]["recheck_fraction"] = recheck_fraction(cp, X, init, rows, precision)
            except Exception as exc:  # noqa: BLE001
                traceback.print_exc()
                out[name]["recheck_skipped"] = _reason(exc)
            _free(cp)
    return out


def _guarded(timer) -> dict:
    try:
        return timer()
    except Exception as exc:  # noqa: BLE001 - keep measuring the others
        traceback.print_exc()
        return {"skipped": f"failed: {_reason(exc)}"}


def run_isolated(name: str, n: int, d: int, k: int, data: str, args) -> dict:
    """``name`` timed by ``gpu.py --_one`` in a fresh process, with TRITON_F32_DEFAULT as
    ``ISOLATED`` says; the process regenerates the data (of kind ``data``) and prints one
    JSON line."""
    env = dict(os.environ)
    env.pop("TRITON_F32_DEFAULT", None)
    if ISOLATED[name] is not None:
        env["TRITON_F32_DEFAULT"] = ISOLATED[name]
    command = [sys.executable, str(Path(__file__).resolve()), "--_one", name,
               "--shapes", f"{n}x{d}x{k}", "--data", data, "--max-iter", str(args.max_iter),
               "--repeat", str(args.repeat), "--torch-score-mib", repr(args.torch_score_mib)]
    # An own Triton cache: a kernel compiled in the other mode must not be reused.
    with tempfile.TemporaryDirectory(prefix="gpu-bench-triton-") as cache:
        env["TRITON_CACHE_DIR"] = cache
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            return {"skipped": f"timed out after {args.timeout:g} s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                pass
    sys.stderr.write(done.stderr)
    tail = done.stderr.strip().splitlines() or ["no output"]
    return {"skipped": f"its process exited with status {done.returncode}: {tail[-1][:300]}"}


def _fastest(results: dict, names) -> str | None:
    times = {m: results[m]["seconds_per_iteration"] for m in names if "seconds_per_iteration" in results[m]}
    return min(times, key=times.get) if times else None


def run_shape(cp, n, d, k, data, args, gemm_tflops, bandwidth_gbs) -> dict:
    results = {}
    full_fit = skipped = None
    _free(cp)
    try:
        X, init = make_data(cp, n, d, k, data)
    except Exception as exc:  # noqa: BLE001 - the data alone does not fit: skip the shape
        X = init = None
        reason = f"the data does not fit: {_reason(exc)}"
        results = {name: {"skipped": reason} for name in MODES}
        full_fit = {"skipped": reason}
        skipped = reason
    if X is not None:
        timers = _timers(cp, X, init, args)
        for name in MODES:
            if name not in ISOLATED:
                results[name] = _guarded(timers[name])
                _free(cp)
        # The isolated ones compare their labels in their own process.
        selected = set(_anykmeans_keys(args.precisions))
        labelled = [name for name in LABELLED if name not in ISOLATED
                    and (name in selected or name not in ANYKMEANS_KEYS)]
        for name, found in measure_labels(cp, X, init, args, labelled).items():
            results[name].update(found)
        _free(cp)
        if n >= FULL_FIT_MAX_ROWS and not args.full_fit_large:
            full_fit = {"skipped": f"n ≥ {FULL_FIT_MAX_ROWS:,}: only with --full-fit-large"}
        else:
            full_fit = _guarded(lambda: time_full_fit(cp, X, k))
        # The isolated processes make their own copy of the data.
        del X, init, timers
        _free(cp)
        for name in ISOLATED:
            results[name] = run_isolated(name, n, d, k, data, args)
    results = {name: {**results[name], "mode": mode} for name, mode in MODES.items()}

    row = {"n": n, "d": d, "k": k, "data": data, "implementations": results, "full_fit": full_fit}
    if skipped:
        row["skipped"] = skipped
    ours = results["anykmeans"].get("seconds_per_iteration")
    for key, names in (("ieee", IEEE_OTHERS), ("any", ALL_OTHERS)):
        fastest = _fastest(results, names)
        row[f"fastest_{key}_other"] = fastest
        row[f"ratio_to_fastest_{key}"] = (
            ours / results[fastest]["seconds_per_iteration"] if ours and fastest else None)
    times = {name: res.get("seconds_per_iteration") for name, res in results.items()}
    # Speed-up of each reduced-precision mode over highest (goal for high: ≥ 3), and each
    # anykmeans mode over flash-kmeans at its default TF32 (goal for anykmeans_high: ≤ 1.0).
    row["speedup_over_highest"] = {
        key: ours / times[key] if ours and times[key] else None
        for key in ANYKMEANS_KEYS if key != "anykmeans"}
    flash = times["flash_kmeans"]
    row["ratio_to_flash_kmeans"] = {
        key: times[key] / flash if times[key] and flash else None for key in ANYKMEANS_KEYS}
    row["precision_tflops"] = {
        key: 2 * n * k * d / times[key] / 1e12 if times[key] else None for key in ANYKMEANS_KEYS}
    # "high" through cuBLAS over "high" through the fused Triton kernel (> 1: Triton is faster).
    high, cublas = times["anykmeans_high"], times[HIGH_CUBLAS]
    row["cublas_over_triton"] = cublas / high if cublas and high else None
    if ours:
        tflops = 2 * n * k * d / ours / 1e12
        gbs = n * d * 4 / ours / 1e9
        row.update({
            "tflops": tflops, "fraction_of_gemm": tflops / gemm_tflops,
            "gbs_reading_X": gbs, "fraction_of_bandwidth": gbs / bandwidth_gbs,
        })
    _print_row(row)
    return row


# --------------------------------------------------------------------------- the report


def _ms(result: dict) -> str:
    if "seconds_per_iteration" in result:
        return f"{result['seconds_per_iteration'] * 1e3:.3g}"
    return "skipped"


def _ratio(row: dict, key: str) -> str:
    ratio = row.get(f"ratio_to_fastest_{key}")
    return f"{ratio:.2f} ({row[f'fastest_{key}_other']})" if ratio else "–"


def _times(value) -> str:
    """A ratio for the report, or – where a side is missing."""
    return f"{value:.2f}" if value else "–"


def _share(result: dict, key: str) -> str:
    """``label_difference`` or ``recheck_fraction`` of a result as a percentage, or –."""
    value = result.get(key)
    if value is None:
        return "–"
    return "0" if value == 0 else f"{value * 100:.3g}%"


def _data(row: dict) -> str:
    """The data kind of a row (results written before --data existed: normal)."""
    return row.get("data", "normal")


def _print_row(row: dict) -> None:
    shape = f"({row['n']}, {row['d']}, {row['k']}) {_data(row)}"
    impl = row["implementations"]
    times = ", ".join(f"{m} {_ms(r)}" for m, r in impl.items())
    extra = f"; ratio to fastest IEEE {_ratio(row, 'ieee')}, to fastest any {_ratio(row, 'any')}"
    if row.get("tflops") is not None:
        extra += (f"; {row['tflops']:.3g} TFLOP/s ({row['fraction_of_gemm']:.0%} of GEMM), "
                  f"{row['gbs_reading_X']:.0f} GB/s ({row['fraction_of_bandwidth']:.0%} of bandwidth)")
    print(f"{shape} ms/iter: {times}{extra}", flush=True)
    speedups = ", ".join(f"{key} {_times(v)}" for key, v in row["speedup_over_highest"].items())
    over_flash = ", ".join(f"{key} {_times(v)}" for key, v in row["ratio_to_flash_kmeans"].items())
    print(f"{shape} anykmeans / anykmeans_<mode>: {speedups}; over flash_kmeans: {over_flash}; "
          f"{HIGH_CUBLAS} / anykmeans_high: {_times(row.get('cublas_over_triton'))}", flush=True)
    labels = ", ".join(f"{m} {_share(impl[m], 'label_difference')}" for m in LABELLED)
    recheck = ", ".join(f"{key} {_share(impl[key], 'recheck_fraction')}"
                        for m, key in PRECISION_KEYS.items() if m != "highest")
    print(f"{shape} labels differing from FP32: {labels}; recheck fraction: {recheck}", flush=True)
    fit = row["full_fit"]
    if "seconds" in fit:
        print(f"{shape} full fit {fit['seconds']:.3g} s, {fit['n_iter']} iterations; "
              f"k-means++ {fit['kmeans_plusplus_seconds']:.3g} s", flush=True)
    else:
        print(f"{shape} full fit skipped: {fit['skipped']}", flush=True)


def write(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu.json").write_text(json.dumps(result, indent=2) + "\n")
    dev = result["device"]
    env = result.get("environment") or {}
    triton = result.get("triton_available")
    triton_text = {True: "importable (Triton and PyTorch found)",
                   False: "not importable: *high* and *medium* use cuBLAS GEMMs, so *high* and "
                          "*high cuBLAS* time the same path",
                   None: "not recorded"}[triton]
    data = result.get("data") or ["normal"]
    lines = [
        "# GPU: anykmeans (CuPy) and other implementations, per Lloyd iteration and full fit",
        "",
        f"Command: `{result['command']}`  ",
        f"Device: {dev['name']} (compute capability {dev['compute_capability']}, "
        f"{dev['multiprocessors']} SMs, {dev['memory_gib']} GiB); measured FP32 GEMM "
        f"{dev['gemm_tflops']:.1f} TFLOP/s (cupy.matmul, {dev['gemm_size']}²), memory bandwidth "
        f"{dev['bandwidth_gbs']:.0f} GB/s (device-to-device copy, read + write)  ",
        f"Software: {result['software']}  ",
        "anykmeans' fused Triton kernel (`anykmeans.backends._triton_nearest.available()`): "
        f"{triton_text}  ",
        f"Data ({', '.join(data)}): *normal*: float32 standard normals; *clustered*: k Gaussian "
        "clusters, means drawn from N(0, 1), each row its cluster's mean (drawn uniformly) + "
        f"N(0, {CLUSTER_NOISE:g}²) noise per feature. Initial centers: k rows of X picked at random "
        "(the same for every implementation)."
        + ("  " if env else ""),
    ]
    if env:
        lines.append("Set in the environment: " + ", ".join(f"{k}={v}" for k, v in env.items()))
    lines += [
        "",
        "## Per iteration",
        "",
        f"float32, same data and initial centers, tol=0, {result['max_iter']} iterations, "
        f"best of {result['repeat']}. anykmeans: `matmul_precision=\"highest\"` (IEEE FP32, the "
        "default). ms per iteration; *kernels*: anykmeans' nearest + segment_sum alone on the whole "
        "data, with the path `nearest` picks, then with the GEMM and the fused path forced. "
        "Modes: *IEEE*: IEEE FP32 products; *TF32*: PyTorch with "
        "`torch.set_float32_matmul_precision(\"high\")`; flash-kmeans *default*: Triton's default "
        "FP32 dot (`TRITON_F32_DEFAULT` unset: TF32), *IEEE*: `TRITON_F32_DEFAULT=ieee`, *fp16*: X "
        "and the initial centers cast to float16, each in "
        f"its own process. The plain PyTorch step's score blocks: {result['torch_score_mib']:g} MiB. "
        "Ratio: anykmeans / the fastest other, among the IEEE-FP32 ones (torch plain, "
        "flash-kmeans IEEE, fast-pytorch-kmeans IEEE; the goal is ≤ 1.0) and in any mode. "
        "TFLOP/s counts the distance GEMM (2·n·k·d per iteration); GB/s counts X read once per "
        "iteration; both for anykmeans, as fractions of the measured rates.",
        "",
        "| n | d | k | data | anykmeans | kernels (gemm / fused) | torch plain IEEE | torch plain TF32 "
        "| flash-kmeans default | flash-kmeans IEEE | flash-kmeans fp16 | fast-pytorch-kmeans IEEE "
        "| fast-pytorch-kmeans TF32 | ratio to fastest IEEE | ratio to fastest, any mode "
        "| TFLOP/s (of GEMM) | GB/s (of bandwidth) |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|",
    ]
    notes = []
    for r in result["rows"]:
        shape = f"({r['n']:,}, {r['d']}, {r['k']:,}) {_data(r)}"
        impl = r["implementations"]
        if r.get("skipped"):
            notes.append(f"{shape}: {r['skipped']}")
        for name, res in ([] if r.get("skipped") else impl.items()):
            if res.get("skipped") == "not in --precisions":
                continue
            if "skipped" in res or "note" in res:
                notes.append(f"{shape} {name}: {res.get('skipped') or res.get('note')}")
            if "label_difference_skipped" in res:
                notes.append(f"{shape} {name} labels: {res['label_difference_skipped']}")
            if "recheck_skipped" in res:
                notes.append(f"{shape} {name} recheck fraction: {res['recheck_skipped']}")
        lines.append(
            f"| {r['n']:,} | {r['d']} | {r['k']:,} | {_data(r)} | {_ms(impl['anykmeans'])} | "
            f"{_ms(impl['anykmeans_kernels'])} ({_ms(impl['kernels_gemm'])} / "
            f"{_ms(impl['kernels_fused'])}) | "
            + " | ".join(_ms(impl[m]) for m in ALL_OTHERS)
            + f" | {_ratio(r, 'ieee')} | {_ratio(r, 'any')} | "
            + (f"{r['tflops']:.3g} ({r['fraction_of_gemm']:.0%})" if r.get("tflops") else "–") + " | "
            + (f"{r['gbs_reading_X']:.0f} ({r['fraction_of_bandwidth']:.0%})" if r.get("tflops") else "–")
            + " |"
        )
    if notes:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in notes]

    # Precision modes: anykmeans in each --precisions mode (and "high" through cuBLAS), against
    # flash-kmeans' defaults.
    precisions = result.get("precisions") or list(PRECISIONS)
    lower = [m for m in precisions if m != "highest"]
    keys = _anykmeans_keys(precisions)
    faster_keys = [key for key in keys if key != "anykmeans"]
    recheck_keys = [PRECISION_KEYS[m] for m in lower]
    cublas = HIGH_CUBLAS in keys
    lines += [
        "",
        "## Precision modes",
        "",
        "anykmeans per iteration (ms) inside `anykmeans.config_context(matmul_precision=m)` for "
        f"m in {', '.join(precisions)}: *highest* IEEE FP32, *high* TF32 tensor cores, *medium* "
        "BF16 inputs with FP32 accumulation; high and medium recheck the near-tie rows in FP32, "
        "so their labels are exact. "
        + ("*high cuBLAS*: high with `anykmeans.backends.cupy.USE_TRITON = False` (cuBLAS TF32 "
           "GEMMs per tile of rows instead of the fused Triton kernel); *cuBLAS / Triton*: its "
           "time over high's (> 1: the Triton kernel is faster). " if cublas else "")
        + "*highest / m*: the speed-up of mode m (goal for high: ≥ 3). "
        "*anykmeans m / flash-kmeans default*: over flash-kmeans at Triton's default TF32 "
        "(goal for high: ≤ 1.0). *recheck m*: the share of the first "
        f"{RECHECK_ROWS:,} rows whose mode-m scores cannot certify the nearest center (the rows "
        "a fit rechecks in FP32; the same rows for both paths of high). TFLOP/s: the distance "
        "GEMM, 2·n·k·d per iteration.",
        "",
        "| n | d | k | data | "
        + "".join(f"anykmeans {ANYKMEANS_KEYS[key]} | " for key in keys)
        + "".join(f"highest / {ANYKMEANS_KEYS[key]} | " for key in faster_keys)
        + ("high cuBLAS / Triton | " if cublas else "")
        + "flash-kmeans default | flash-kmeans fp16 | "
        + "".join(f"anykmeans {ANYKMEANS_KEYS[key]} / flash-kmeans default | " for key in keys)
        + "".join(f"recheck {m} | " for m in lower)
        + "TFLOP/s (" + " / ".join(ANYKMEANS_KEYS[key] for key in keys) + ") |",
        "|---:|---:|---:|---|"
        + "---:|" * (2 * len(keys) + len(faster_keys) + int(cublas) + len(recheck_keys) + 2 + 1),
    ]
    for r in result["rows"]:
        impl = r["implementations"]
        speedup, over_flash = r.get("speedup_over_highest") or {}, r.get("ratio_to_flash_kmeans") or {}
        tflops = r.get("precision_tflops") or {}
        lines.append(
            f"| {r['n']:,} | {r['d']} | {r['k']:,} | {_data(r)} | "
            + "".join(f"{_ms(impl.get(key, {}))} | " for key in keys)
            + "".join(f"{_times(speedup.get(key))} | " for key in faster_keys)
            + (f"{_times(r.get('cublas_over_triton'))} | " if cublas else "")
            + f"{_ms(impl['flash_kmeans'])} | {_ms(impl['flash_kmeans_fp16'])} | "
            + "".join(f"{_times(over_flash.get(key))} | " for key in keys)
            + "".join(f"{_share(impl[key], 'recheck_fraction')} | " for key in recheck_keys)
            + " / ".join(f"{tflops[key]:.3g}" if tflops.get(key) else "–" for key in keys) + " |"
        )

    # Labels of one assignment from the initial centers against the exact FP32 labels.
    labelled = [name for name in LABELLED if name not in ANYKMEANS_KEYS or name in keys]
    lines += [
        "",
        "## Labels against exact FP32",
        "",
        "The share of the labels of one assignment from the shared initial centers that differ "
        "from the exact FP32 labels (anykmeans' `kernels.assign(X, init, "
        "precision=\"highest\")`), computed in blocks of rows: anykmeans by "
        "`kernels.assign(..., precision=m)` (" + HIGH_CUBLAS + ": precision=\"high\" with "
        "`USE_TRITON = False`); plain PyTorch by the argmin of its addmm scores "
        "(TF32 off / on); fast-pytorch-kmeans by `predict` with the initial centers and "
        "flash-kmeans by `batch_kmeans_Euclid(..., max_iters=1)` (both the labels a "
        "one-iteration fit returns: the assignment to the initial centers), the flash-kmeans "
        "modes in their own processes. – : not measured (see the notes).",
        "",
        "| n | d | k | data | " + " | ".join(labelled) + " |",
        "|---:|---:|---:|---|" + "---:|" * len(labelled),
    ]
    for r in result["rows"]:
        impl = r["implementations"]
        lines.append(f"| {r['n']:,} | {r['d']} | {r['k']:,} | {_data(r)} | "
                     + " | ".join(_share(impl.get(name, {}), "label_difference") for name in labelled)
                     + " |")

    lines += [
        "",
        "## Full fit",
        "",
        "`anykmeans.KMeans(k, random_state=0).fit(X)` at the library defaults (k-means++, "
        "max_iter=300, tol=1e-4, one run), after a warm-up fit on a slice of X; k-means++: "
        "`anykmeans.kmeans_plusplus(X, k, random_state=0)` alone. The last column is "
        "(fit − k-means++) / n_iter, which still counts the fit's set-up and final assignment. "
        + (f"Shapes with n ≥ {FULL_FIT_MAX_ROWS:,} were fitted (--full-fit-large)."
           if result.get("full_fit_large")
           else f"Shapes with n ≥ {FULL_FIT_MAX_ROWS:,} are skipped (run with --full-fit-large to fit them)."),
        "",
        "| n | d | k | data | fit s | n_iter | k-means++ s | (fit − k-means++) / n_iter, ms |",
        "|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        fit = r["full_fit"]
        if "seconds" in fit:
            lloyd = (fit["seconds"] - fit["kmeans_plusplus_seconds"]) / max(fit["n_iter"], 1) * 1e3
            cells = (f"{fit['seconds']:.3g} | {fit['n_iter']} | {fit['kmeans_plusplus_seconds']:.3g} "
                     f"| {lloyd:.3g}")
        elif r.get("skipped"):
            cells = "skipped (see the notes) | | |"
        else:
            cells = f"skipped: {fit['skipped']} | | |"
        lines.append(f"| {r['n']:,} | {r['d']} | {r['k']:,} | {_data(r)} | {cells} |")
    (out / "gpu.md").write_text("\n".join(lines) + "\n")


def _software(cp) -> str:
    import anykmeans

    parts = [f"Python {platform.python_version()}", f"CuPy {cp.__version__}",
             f"CUDA runtime {cp.cuda.runtime.runtimeGetVersion()}", f"anykmeans {anykmeans.__version__}"]
    torch = _torch_cuda()
    if torch is not None:
        parts.append(f"PyTorch {torch.__version__}")
    for dist in ("flash-kmeans", "fast-pytorch-kmeans", "triton"):
        try:
            import importlib.metadata

            parts.append(f"{dist} {importlib.metadata.version(dist)}")
        except Exception:  # noqa: BLE001 - not installed
            pass
    return ", ".join(parts)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shapes", type=_parse_shapes, default=None,
                        help="comma-separated NxDxK (default: the seven reference shapes)")
    parser.add_argument("--precisions", type=_parse_precisions, default=list(PRECISIONS),
                        help="comma list of anykmeans matmul_precision modes to time, of "
                             "highest,high,medium (default: all three); with high also "
                             "high through cuBLAS (anykmeans_high_cublas)")
    parser.add_argument("--data", type=_parse_data, default=None,
                        help="comma list of data kinds, each shape runs once per kind: normal "
                             "(standard normals), clustered (k Gaussian clusters, noise sd "
                             f"{CLUSTER_NOISE:g}) (default: normal; with --quick: both)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: small shapes, 3 iterations, 1 round, small GEMM/copy, "
                             "both data kinds unless --data is given")
    parser.add_argument("--max-iter", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--torch-score-mib", type=float, default=4096.0,
                        help="the plain PyTorch step's score-block budget (MiB)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds before a flash-kmeans process is stopped (reported as skipped)")
    parser.add_argument("--full-fit-large", action="store_true",
                        help="also run the full fit for shapes with n >= 50M (minutes)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    # Internal: time one implementation on one shape in this process, print one JSON line.
    parser.add_argument("--_one", dest="one", choices=sorted(MODES), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.max_iter, args.repeat = min(args.max_iter, 3), 1
    if args.data is None:
        args.data = list(DATA_KINDS) if args.quick and args.one is None else ["normal"]
    if args.one is not None and (args.shapes is None or len(args.shapes) != 1):
        parser.error("--_one needs exactly one shape in --shapes")
    if args.one is not None and len(args.data) != 1:
        parser.error("--_one needs exactly one kind in --data")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    shapes = args.shapes or (QUICK_SHAPES if args.quick else SHAPES)
    cp = _require_gpu()
    if args.one is not None:
        (n, d, k), = shapes
        (data,) = args.data
        X, init = make_data(cp, n, d, k, data)
        result = _guarded(_timers(cp, X, init, args)[args.one])
        _free(cp)
        # The labels of one assignment, against anykmeans' exact FP32 labels made here.
        if args.one in LABELLED:
            result.update(measure_labels(cp, X, init, args, [args.one])[args.one])
        result["TRITON_F32_DEFAULT"] = os.environ.get("TRITON_F32_DEFAULT")
        print(json.dumps(result), flush=True)
        return

    info = device_info(cp)
    gemm_size = 2048 if args.quick else 8192
    info["gemm_size"] = gemm_size
    info["gemm_tflops"] = measure_gemm_tflops(cp, gemm_size)
    info["bandwidth_gbs"] = measure_bandwidth_gbs(cp, 2**28 if args.quick else 2**30)
    print(f"{info['name']}: FP32 GEMM {info['gemm_tflops']:.1f} TFLOP/s, "
          f"bandwidth {info['bandwidth_gbs']:.0f} GB/s", flush=True)
    cp.get_default_memory_pool().free_all_blocks()

    triton = _triton_available()
    print("anykmeans' fused Triton kernel: " + {
        True: "importable", False: "not importable (high and medium use cuBLAS)",
        None: "unknown"}[triton], flush=True)
    rows = [run_shape(cp, n, d, k, data, args, info["gemm_tflops"], info["bandwidth_gbs"])
            for n, d, k in shapes for data in args.data]
    command = " ".join(["python benchmarks/gpu.py", *(sys.argv[1:] if argv is None else argv)])
    write({
        "command": command, "device": info, "software": _software(cp),
        "environment": {v: os.environ[v] for v in PRECISION_ENV if v in os.environ},
        "max_iter": args.max_iter, "repeat": args.repeat, "torch_score_mib": args.torch_score_mib,
        "precisions": args.precisions, "data": args.data, "triton_available": triton,
        "timeout": args.timeout, "full_fit_large": args.full_fit_large,
        "rows": rows,
    }, args.out)
    print(f"Wrote {args.out / 'gpu.json'} and {args.out / 'gpu.md'}")


if __name__ == "__main__":
    main()
