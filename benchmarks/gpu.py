"""GPU benchmark on a CUDA device: anykmeans (CuPy input) per Lloyd iteration against a plain
PyTorch Lloyd step, flash-kmeans and fast-pytorch-kmeans, each in its default FP32 mode and
in IEEE FP32; then a full default anykmeans fit per shape.

    python benchmarks/gpu.py [--shapes 1000000x128x1024,1000000x8x16] [--quick]
                             [--max-iter 20] [--repeat 3] [--torch-score-mib 4096]
                             [--timeout 300] [--full-fit-large] [--out benchmarks/results]

Data: float32 X of standard normals (``cp.random.default_rng(0)``, generated 10M rows at a
time into one allocation) and k initial centers, rows of X picked by
``numpy.random.default_rng(1).choice(n, k, replace=False)``; the same for every
implementation. The device's FP32 GEMM rate (cupy.matmul) and memory bandwidth (device copy)
are measured first.

Per iteration (``tol=0``, best of ``--repeat`` rounds, device synchronised):

- anykmeans at its default settings: the difference between fits of ``2 × max-iter`` and
  ``max-iter`` iterations over the difference in iterations, so that the set-up and the
  final assignment of a fit are not counted; also its backend kernels alone (assign +
  segment_sum), with the path it picks and with the GEMM and fused paths forced.
- the others run their Lloyd loops for ``max-iter`` iterations, in these modes:
  ``torch_plain`` and ``fast_pytorch_kmeans`` at PyTorch's default FP32 matmul (IEEE,
  ``allow_tf32=False``), ``torch_plain_tf32`` and ``fast_pytorch_kmeans_tf32`` under
  ``torch.set_float32_matmul_precision("high")`` (TF32); ``flash_kmeans`` at Triton's default
  (``TRITON_F32_DEFAULT`` unset: TF32 on tensor cores) and ``flash_kmeans_ieee`` with
  ``TRITON_F32_DEFAULT=ieee``. Triton reads that variable when it compiles, so each
  flash-kmeans mode runs in its own process (``--_one``, own Triton cache), which regenerates
  the data from the same seeds and is stopped after ``--timeout`` seconds.
- ratios: anykmeans over the fastest IEEE-FP32 implementation compared (torch_plain,
  flash_kmeans_ieee, fast_pytorch_kmeans; the project's goal is ≤ 1.0), and over the fastest
  in any mode.

Full fit: ``anykmeans.KMeans(k, random_state=0).fit(X)`` at the library defaults (k-means++,
``max_iter=300``, ``tol=1e-4``, one run), after a warm-up fit on a slice of X; seconds and
``n_iter_``, and ``anykmeans.kmeans_plusplus(X, k, random_state=0)`` timed alone. Skipped
for n ≥ 50M unless ``--full-fit-large``.

An implementation that fails (out of memory at (100M, 64, 1024), not installed, timed out)
is reported as skipped with the reason. Needs CuPy and a CUDA device; PyTorch (with CUDA),
flash-kmeans and fast-pytorch-kmeans are compared when they import. Writes ``gpu.json`` and
``gpu.md`` under ``--out``.
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
          (100_000_000, 64, 1024)]
QUICK_SHAPES = [(50_000, 128, 256), (200_000, 32, 64), (100_000, 8, 16), (20_000, 256, 2048)]
# X is generated this many rows at a time: generating it whole needs a second copy.
GENERATE_ROWS = 10_000_000
# Full fits of larger data take minutes: only with --full-fit-large.
FULL_FIT_MAX_ROWS = 50_000_000

# The result keys, in the order of the table, and the FP32 mode each runs in.
MODES = {
    "anykmeans": "default",
    "anykmeans_kernels": "default",
    "kernels_gemm": "default",
    "kernels_fused": "default",
    "torch_plain": "ieee",
    "torch_plain_tf32": "tf32",
    "flash_kmeans": "default",
    "flash_kmeans_ieee": "ieee",
    "fast_pytorch_kmeans": "ieee",
    "fast_pytorch_kmeans_tf32": "tf32",
}
# Triton reads TRITON_F32_DEFAULT when it compiles: these run in their own process, with the
# variable set to this value (None: unset).
ISOLATED = {"flash_kmeans": None, "flash_kmeans_ieee": "ieee"}
IEEE_OTHERS = ("torch_plain", "flash_kmeans_ieee", "fast_pytorch_kmeans")
ALL_OTHERS = ("torch_plain", "torch_plain_tf32", "flash_kmeans", "flash_kmeans_ieee",
              "fast_pytorch_kmeans", "fast_pytorch_kmeans_tf32")
# Variables that change the FP32 mode of cuBLAS, PyTorch or Triton; recorded when set.
PRECISION_ENV = ("CUPY_TF32", "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", "NVIDIA_TF32_OVERRIDE",
                 "TRITON_F32_DEFAULT")


def _parse_shapes(text: str) -> list[tuple[int, int, int]]:
    shapes = []
    for item in text.split(","):
        try:
            n, d, k = (int(float(v)) for v in item.lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"a shape is NxDxK, e.g. 1000000x128x1024; got {item!r}") from None
        shapes.append((n, d, k))
    return shapes


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


def make_data(cp, n: int, d: int, k: int):
    """X and the initial centers; every process gets the same from the same seeds."""
    import numpy as np

    rng = cp.random.default_rng(0)
    if n <= GENERATE_ROWS:
        X = rng.standard_normal((n, d), dtype=cp.float32)
    else:
        X = cp.empty((n, d), dtype=cp.float32)
        for start in range(0, n, GENERATE_ROWS):
            stop = min(start + GENERATE_ROWS, n)
            X[start:stop] = rng.standard_normal((stop - start, d), dtype=cp.float32)
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


def time_anykmeans(cp, X, init, max_iter: int, repeat: int) -> dict:
    import anykmeans

    k = init.shape[0]

    def fit(iterations):
        _sync(cp)
        start = time.perf_counter()
        model = anykmeans.KMeans(k, init=init, max_iter=iterations, tol=0).fit(X)
        _sync(cp)
        return time.perf_counter() - start, model.n_iter_

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


def time_flash_kmeans(cp, X, init, max_iter: int, repeat: int) -> dict:
    torch = _torch_cuda()
    if torch is None:
        return {"skipped": "PyTorch with CUDA is not installed"}
    try:
        from flash_kmeans import batch_kmeans_Euclid
    except Exception as exc:  # noqa: BLE001 - not installed, or its Triton kernels fail to import
        return {"skipped": f"flash-kmeans does not import: {_reason(exc)}"}
    Xt, C0 = torch.from_dlpack(X)[None], torch.from_dlpack(init)[None]
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
    return {
        "anykmeans": lambda: time_anykmeans(cp, X, init, it, rep),
        "anykmeans_kernels": lambda: time_anykmeans_kernels(cp, X, init, rep),
        "kernels_gemm": lambda: time_anykmeans_kernels(cp, X, init, rep, "gemm"),
        "kernels_fused": lambda: time_anykmeans_kernels(cp, X, init, rep, "fused"),
        "torch_plain": lambda: time_torch_plain(cp, X, init, it, rep, budget, tf32=False),
        "torch_plain_tf32": lambda: time_torch_plain(cp, X, init, it, rep, budget, tf32=True),
        # The two modes differ only by the environment of their process.
        "flash_kmeans": lambda: time_flash_kmeans(cp, X, init, it, rep),
        "flash_kmeans_ieee": lambda: time_flash_kmeans(cp, X, init, it, rep),
        "fast_pytorch_kmeans": lambda: time_fast_pytorch_kmeans(cp, X, init, it, rep, tf32=False),
        "fast_pytorch_kmeans_tf32": lambda: time_fast_pytorch_kmeans(cp, X, init, it, rep, tf32=True),
    }


def _guarded(timer) -> dict:
    try:
        return timer()
    except Exception as exc:  # noqa: BLE001 - keep measuring the others
        traceback.print_exc()
        return {"skipped": f"failed: {_reason(exc)}"}


def run_isolated(name: str, n: int, d: int, k: int, args) -> dict:
    """``name`` timed by ``gpu.py --_one`` in a fresh process, with TRITON_F32_DEFAULT as
    ``ISOLATED`` says; the process regenerates the data and prints one JSON line."""
    env = dict(os.environ)
    env.pop("TRITON_F32_DEFAULT", None)
    if ISOLATED[name] is not None:
        env["TRITON_F32_DEFAULT"] = ISOLATED[name]
    command = [sys.executable, str(Path(__file__).resolve()), "--_one", name,
               "--shapes", f"{n}x{d}x{k}", "--max-iter", str(args.max_iter),
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


def run_shape(cp, n, d, k, args, gemm_tflops, bandwidth_gbs) -> dict:
    results = {}
    full_fit = skipped = None
    _free(cp)
    try:
        X, init = make_data(cp, n, d, k)
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
        if n >= FULL_FIT_MAX_ROWS and not args.full_fit_large:
            full_fit = {"skipped": f"n ≥ {FULL_FIT_MAX_ROWS:,}: only with --full-fit-large"}
        else:
            full_fit = _guarded(lambda: time_full_fit(cp, X, k))
        # The isolated processes make their own copy of the data.
        del X, init, timers
        _free(cp)
        for name in ISOLATED:
            results[name] = run_isolated(name, n, d, k, args)
    results = {name: {**results[name], "mode": mode} for name, mode in MODES.items()}

    row = {"n": n, "d": d, "k": k, "implementations": results, "full_fit": full_fit}
    if skipped:
        row["skipped"] = skipped
    ours = results["anykmeans"].get("seconds_per_iteration")
    for key, names in (("ieee", IEEE_OTHERS), ("any", ALL_OTHERS)):
        fastest = _fastest(results, names)
        row[f"fastest_{key}_other"] = fastest
        row[f"ratio_to_fastest_{key}"] = (
            ours / results[fastest]["seconds_per_iteration"] if ours and fastest else None)
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


def _print_row(row: dict) -> None:
    shape = f"({row['n']}, {row['d']}, {row['k']})"
    times = ", ".join(f"{m} {_ms(r)}" for m, r in row["implementations"].items())
    extra = f"; ratio to fastest IEEE {_ratio(row, 'ieee')}, to fastest any {_ratio(row, 'any')}"
    if row.get("tflops") is not None:
        extra += (f"; {row['tflops']:.3g} TFLOP/s ({row['fraction_of_gemm']:.0%} of GEMM), "
                  f"{row['gbs_reading_X']:.0f} GB/s ({row['fraction_of_bandwidth']:.0%} of bandwidth)")
    print(f"{shape} ms/iter: {times}{extra}", flush=True)
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
    lines = [
        "# GPU: anykmeans (CuPy) and other implementations, per Lloyd iteration and full fit",
        "",
        f"Command: `{result['command']}`  ",
        f"Device: {dev['name']} (compute capability {dev['compute_capability']}, "
        f"{dev['multiprocessors']} SMs, {dev['memory_gib']} GiB); measured FP32 GEMM "
        f"{dev['gemm_tflops']:.1f} TFLOP/s (cupy.matmul, {dev['gemm_size']}²), memory bandwidth "
        f"{dev['bandwidth_gbs']:.0f} GB/s (device-to-device copy, read + write)  ",
        f"Software: {result['software']}"
        + ("  " if env else ""),
    ]
    if env:
        lines.append("Set in the environment: " + ", ".join(f"{k}={v}" for k, v in env.items()))
    lines += [
        "",
        "## Per iteration",
        "",
        f"float32, same data and initial centers, tol=0, {result['max_iter']} iterations, "
        f"best of {result['repeat']}. anykmeans ran at its default settings (cuBLAS SGEMM, IEEE "
        "FP32). ms per iteration; *kernels*: anykmeans' nearest + segment_sum alone on the whole "
        "data, with the path `nearest` picks, then with the GEMM and the fused path forced. "
        "Modes: *IEEE*: IEEE FP32 products; *TF32*: PyTorch with "
        "`torch.set_float32_matmul_precision(\"high\")`; flash-kmeans *default*: Triton's default "
        "FP32 dot (`TRITON_F32_DEFAULT` unset: TF32), *IEEE*: `TRITON_F32_DEFAULT=ieee`, each in "
        f"its own process. The plain PyTorch step's score blocks: {result['torch_score_mib']:g} MiB. "
        "Ratio: anykmeans / the fastest other, among the IEEE-FP32 ones (torch plain, "
        "flash-kmeans IEEE, fast-pytorch-kmeans IEEE; the goal is ≤ 1.0) and in any mode. "
        "TFLOP/s counts the distance GEMM (2·n·k·d per iteration); GB/s counts X read once per "
        "iteration; both for anykmeans, as fractions of the measured rates.",
        "",
        "| n | d | k | anykmeans | kernels (gemm / fused) | torch plain IEEE | torch plain TF32 "
        "| flash-kmeans default | flash-kmeans IEEE | fast-pytorch-kmeans IEEE "
        "| fast-pytorch-kmeans TF32 | ratio to fastest IEEE | ratio to fastest, any mode "
        "| TFLOP/s (of GEMM) | GB/s (of bandwidth) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|",
    ]
    notes = []
    for r in result["rows"]:
        shape = f"({r['n']:,}, {r['d']}, {r['k']:,})"
        impl = r["implementations"]
        if r.get("skipped"):
            notes.append(f"{shape}: {r['skipped']}")
        for name, res in ([] if r.get("skipped") else impl.items()):
            if "skipped" in res or "note" in res:
                notes.append(f"{shape} {name}: {res.get('skipped') or res.get('note')}")
        lines.append(
            f"| {r['n']:,} | {r['d']} | {r['k']:,} | {_ms(impl['anykmeans'])} | "
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
        "| n | d | k | fit s | n_iter | k-means++ s | (fit − k-means++) / n_iter, ms |",
        "|---:|---:|---:|---:|---:|---:|---:|",
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
        lines.append(f"| {r['n']:,} | {r['d']} | {r['k']:,} | {cells} |")
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
                        help="comma-separated NxDxK (default: the five reference shapes)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: small shapes, 3 iterations, 1 round, small GEMM/copy")
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
    if args.one is not None and (args.shapes is None or len(args.shapes) != 1):
        parser.error("--_one needs exactly one shape in --shapes")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    shapes = args.shapes or (QUICK_SHAPES if args.quick else SHAPES)
    cp = _require_gpu()
    if args.one is not None:
        (n, d, k), = shapes
        X, init = make_data(cp, n, d, k)
        result = _guarded(_timers(cp, X, init, args)[args.one])
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

    rows = [run_shape(cp, n, d, k, args, info["gemm_tflops"], info["bandwidth_gbs"])
            for n, d, k in shapes]
    command = " ".join(["python benchmarks/gpu.py", *(sys.argv[1:] if argv is None else argv)])
    write({
        "command": command, "device": info, "software": _software(cp),
        "environment": {v: os.environ[v] for v in PRECISION_ENV if v in os.environ},
        "max_iter": args.max_iter, "repeat": args.repeat, "torch_score_mib": args.torch_score_mib,
        "timeout": args.timeout, "full_fit_large": args.full_fit_large,
        "rows": rows,
    }, args.out)
    print(f"Wrote {args.out / 'gpu.json'} and {args.out / 'gpu.md'}")


if __name__ == "__main__":
    main()
