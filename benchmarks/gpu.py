"""Per-iteration Lloyd time on a CUDA GPU: anykmeans (CuPy input) against a plain PyTorch
Lloyd step, flash-kmeans and fast-pytorch-kmeans, each figure also as a fraction of the
device's measured FP32 GEMM rate and memory bandwidth.

    python benchmarks/gpu.py [--shapes 1000000x128x1024,1000000x8x16] [--quick]
                             [--max-iter 20] [--repeat 3] [--working-memory 4096]
                             [--out benchmarks/results]

float32, the same data and initial centers for every implementation, ``tol=0``. anykmeans'
time per iteration is the difference between fits of ``2 × max-iter`` and ``max-iter``
iterations divided by the difference in iterations, so that the set-up and the final
assignment of a fit are not counted; the others run their Lloyd loops for ``max-iter``
iterations. Best of ``--repeat`` rounds, timed with the device synchronised.

Needs CuPy and a CUDA device. PyTorch (with CUDA), flash-kmeans and fast-pytorch-kmeans are
compared when they import; a missing one is reported as skipped. Writes ``gpu.json`` and
``gpu.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

SHAPES = [(1_000_000, 128, 1024), (10_000_000, 32, 256), (1_000_000, 8, 16), (200_000, 256, 16_384)]
QUICK_SHAPES = [(50_000, 128, 256), (200_000, 32, 64), (100_000, 8, 16), (20_000, 256, 2048)]


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


# --------------------------------------------------------------------------- implementations


def _sync(cp) -> None:
    cp.cuda.Device().synchronize()


def time_anykmeans(cp, X, init, max_iter: int, repeat: int, working_memory: float) -> dict:
    import anykmeans

    k = init.shape[0]

    def fit(iterations):
        _sync(cp)
        start = time.perf_counter()
        model = anykmeans.KMeans(k, init=init, max_iter=iterations, tol=0).fit(X)
        _sync(cp)
        return time.perf_counter() - start, model.n_iter_

    with anykmeans.config_context(working_memory=working_memory):
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


def _torch_cuda():
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def time_torch_plain(cp, X, init, max_iter: int, repeat: int, budget_bytes: int) -> dict:
    """A plain PyTorch Lloyd step: GEMM (addmm) + argmin, index_add_ sums, no host syncs."""
    torch = _torch_cuda()
    if torch is None:
        return {"skipped": "PyTorch with CUDA is not installed"}
    torch.backends.cuda.matmul.allow_tf32 = False  # FP32, as cuBLAS SGEMM in anykmeans
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
        return {"skipped": f"flash-kmeans does not import: {exc}"}
    Xt, C0 = torch.from_dlpack(X)[None], torch.from_dlpack(init)[None]
    try:
        batch_kmeans_Euclid(Xt, C0.shape[1], max_iters=2, tol=0.0, init_centroids=C0.clone())
        ms = _elapsed_ms(cp, lambda: batch_kmeans_Euclid(
            Xt, C0.shape[1], max_iters=max_iter, tol=0.0, init_centroids=C0.clone()), repeat)
    except Exception as exc:  # noqa: BLE001 - report, do not abort the other measurements
        return {"skipped": f"flash-kmeans failed: {type(exc).__name__}: {exc}"}
    return {"seconds_per_iteration": ms * 1e-3 / max_iter}


def time_fast_pytorch_kmeans(cp, X, init, max_iter: int, repeat: int) -> dict:
    torch = _torch_cuda()
    if torch is None:
        return {"skipped": "PyTorch with CUDA is not installed"}
    try:
        from fast_pytorch_kmeans import KMeans
    except Exception as exc:  # noqa: BLE001
        return {"skipped": f"fast-pytorch-kmeans does not import: {exc}"}
    Xt, C0 = torch.from_dlpack(X), torch.from_dlpack(init)

    def run(iterations):
        # tol < 0: never converges, runs exactly `iterations` iterations.
        KMeans(C0.shape[0], max_iter=iterations, tol=-1, mode="euclidean").fit_predict(
            Xt, centroids=C0.clone()
        )

    try:
        run(1)
        ms = _elapsed_ms(cp, lambda: run(max_iter), repeat)
    except Exception as exc:  # noqa: BLE001
        return {"skipped": f"fast-pytorch-kmeans failed: {type(exc).__name__}: {exc}"}
    return {"seconds_per_iteration": ms * 1e-3 / max_iter}


OTHERS = ("torch_plain", "flash_kmeans", "fast_pytorch_kmeans")


def run_shape(cp, n, d, k, args, gemm_tflops, bandwidth_gbs) -> dict:
    X = cp.random.default_rng(0).standard_normal((n, d), dtype=cp.float32)
    import numpy as np

    picked = np.random.default_rng(1).choice(n, size=k, replace=False)
    init = X[cp.asarray(picked)]
    budget = int(args.working_memory * 2**20)
    results = {}
    for name, timer in [
        ("anykmeans", lambda: time_anykmeans(cp, X, init, args.max_iter, args.repeat, args.working_memory)),
        ("anykmeans_kernels", lambda: time_anykmeans_kernels(cp, X, init, args.repeat)),
        ("kernels_gemm", lambda: time_anykmeans_kernels(cp, X, init, args.repeat, "gemm")),
        ("kernels_fused", lambda: time_anykmeans_kernels(cp, X, init, args.repeat, "fused")),
        ("torch_plain", lambda: time_torch_plain(cp, X, init, args.max_iter, args.repeat, budget)),
        ("flash_kmeans", lambda: time_flash_kmeans(cp, X, init, args.max_iter, args.repeat)),
        ("fast_pytorch_kmeans", lambda: time_fast_pytorch_kmeans(cp, X, init, args.max_iter, args.repeat)),
    ]:
        try:
            results[name] = timer()
        except Exception as exc:  # noqa: BLE001 - keep measuring the others
            traceback.print_exc()
            results[name] = {"skipped": f"failed: {type(exc).__name__}: {exc}"}
        cp.get_default_memory_pool().free_all_blocks()
        torch = _torch_cuda()
        if torch is not None:
            torch.cuda.empty_cache()

    ours = results["anykmeans"].get("seconds_per_iteration")
    others = {m: results[m]["seconds_per_iteration"] for m in OTHERS if "seconds_per_iteration" in results[m]}
    fastest = min(others, key=others.get) if others else None
    row = {"n": n, "d": d, "k": k, "implementations": results, "fastest_other": fastest}
    if ours:
        tflops = 2 * n * k * d / ours / 1e12
        gbs = n * d * 4 / ours / 1e9
        row.update({
            "ratio_to_fastest_other": ours / others[fastest] if fastest else None,
            "tflops": tflops, "fraction_of_gemm": tflops / gemm_tflops,
            "gbs_reading_X": gbs, "fraction_of_bandwidth": gbs / bandwidth_gbs,
        })
    _print_row(row)
    return row


def _ms(result: dict) -> str:
    if "seconds_per_iteration" in result:
        return f"{result['seconds_per_iteration'] * 1e3:.3g}"
    return "skipped"


def _print_row(row: dict) -> None:
    times = ", ".join(f"{m} {_ms(r)}" for m, r in row["implementations"].items())
    extra = ""
    if row.get("tflops") is not None:
        ratio = row.get("ratio_to_fastest_other")
        extra = (f"; ratio to fastest other {ratio:.2f}" if ratio else "") + (
            f"; {row['tflops']:.3g} TFLOP/s ({row['fraction_of_gemm']:.0%} of GEMM), "
            f"{row['gbs_reading_X']:.0f} GB/s ({row['fraction_of_bandwidth']:.0%} of bandwidth)"
        )
    print(f"({row['n']}, {row['d']}, {row['k']}) ms/iter: {times}{extra}", flush=True)


def write(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu.json").write_text(json.dumps(result, indent=2) + "\n")
    dev = result["device"]
    lines = [
        "# GPU: per-iteration Lloyd time, anykmeans (CuPy) and other implementations",
        "",
        f"Command: `{result['command']}`  ",
        f"Device: {dev['name']} (compute capability {dev['compute_capability']}, "
        f"{dev['multiprocessors']} SMs, {dev['memory_gib']} GiB); measured FP32 GEMM "
        f"{dev['gemm_tflops']:.1f} TFLOP/s (cupy.matmul, {dev['gemm_size']}²), memory bandwidth "
        f"{dev['bandwidth_gbs']:.0f} GB/s (device-to-device copy, read + write)  ",
        f"Software: {result['software']}",
        "",
        f"float32, same data and initial centers, tol=0, {result['max_iter']} iterations, "
        f"best of {result['repeat']}; anykmeans with working_memory={result['working_memory']:g} MiB"
        + (f" and GEMM score tiles of {result['tile_mib']:g} MiB" if result.get("tile_mib") else "")
        + ". "
        "ms per iteration; *kernels*: anykmeans' nearest + segment_sum alone on the whole data, "
        "with the path `nearest` picks, then with the GEMM and the fused path forced. "
        "TFLOP/s counts the distance GEMM (2·n·k·d per iteration); GB/s counts X read once per "
        "iteration; both for anykmeans, as fractions of the measured rates. Ratio: anykmeans / "
        "fastest other.",
        "",
        "| n | d | k | anykmeans | kernels (gemm / fused) | torch plain | flash-kmeans "
        "| fast-pytorch-kmeans | ratio | TFLOP/s (of GEMM) | GB/s (of bandwidth) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    notes = []
    for r in result["rows"]:
        impl = r["implementations"]
        for name, res in impl.items():
            if "skipped" in res or "note" in res:
                notes.append(f"({r['n']:,}, {r['d']}, {r['k']}) {name}: {res.get('skipped') or res.get('note')}")
        ratio = r.get("ratio_to_fastest_other")
        lines.append(
            f"| {r['n']:,} | {r['d']} | {r['k']:,} | {_ms(impl['anykmeans'])} | "
            f"{_ms(impl['anykmeans_kernels'])} ({_ms(impl['kernels_gemm'])} / "
            f"{_ms(impl['kernels_fused'])}) | {_ms(impl['torch_plain'])} | "
            f"{_ms(impl['flash_kmeans'])} | {_ms(impl['fast_pytorch_kmeans'])} | "
            + (f"{ratio:.2f}" if ratio else "–") + " | "
            + (f"{r['tflops']:.3g} ({r['fraction_of_gemm']:.0%})" if r.get("tflops") else "–") + " | "
            + (f"{r['gbs_reading_X']:.0f} ({r['fraction_of_bandwidth']:.0%})" if r.get("tflops") else "–")
            + " |"
        )
    if notes:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in notes]
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shapes", type=_parse_shapes, default=None,
                        help="comma-separated NxDxK (default: the four reference shapes)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: small shapes, 3 iterations, 1 round, small GEMM/copy")
    parser.add_argument("--max-iter", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--working-memory", type=float, default=4096.0,
                        help="anykmeans' working_memory (MiB) and the PyTorch step's score budget")
    parser.add_argument("--tile-mib", type=float, default=None,
                        help="override the CuPy backend's GEMM score-tile budget (MiB), "
                        "to measure other tile sizes")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    if args.quick:
        args.max_iter, args.repeat = min(args.max_iter, 3), 1
    shapes = args.shapes or (QUICK_SHAPES if args.quick else SHAPES)

    cp = _require_gpu()
    if args.tile_mib is not None:
        from anykmeans.backends import cupy as backend

        backend.SCORES_TILE_BYTES = int(args.tile_mib * 2**20)
    # Triton's default FP32 dot may use TF32; ask for IEEE FP32 like the others (flash-kmeans).
    os.environ.setdefault("TRITON_F32_DEFAULT", "ieee")
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
        "max_iter": args.max_iter, "repeat": args.repeat, "working_memory": args.working_memory,
        "tile_mib": args.tile_mib,
        "rows": rows,
    }, args.out)
    print(f"Wrote {args.out / 'gpu.json'} and {args.out / 'gpu.md'}")


if __name__ == "__main__":
    main()
