"""Data larger than the GPU: a streamed fit against the same fit in GPU memory.

For each shape, float32 X of standard normals is made on the host (NumPy,
``default_rng(0)``) with k initial centers (rows of X). Measured, best of ``--repeat``:

- the host-to-device bandwidth, from pageable memory and from pinned memory (1 GiB copies);
- anykmeans' time per Lloyd iteration with X copied to the GPU whole
  (``config_context(device="cuda")``, X fits), and streamed: CuPy's memory pool capped at
  ``X / --oversubscription`` bytes, so that X does not fit and is streamed from host memory in
  row blocks. Time per iteration is the difference between fits of ``2 × max-iter`` and
  ``max-iter`` iterations over the difference in iterations (``tol=0``), device synchronised;
- the ratio in-memory time / streamed time (the goal: ≥ 0.7 where the bandwidth allows), and
  the bandwidth bound: the seconds a pass needs to copy X at the pinned rate.

    python benchmarks/stream.py [--shapes 20000000x64x1024,4000000x256x4096] [--quick]
                                [--oversubscription 2] [--max-iter 5] [--repeat 2]
                                [--out benchmarks/results]

Needs CuPy, Dask and a CUDA device. Writes ``stream.json`` and ``stream.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

SHAPES = [(20_000_000, 64, 1024), (4_000_000, 256, 4096)]
QUICK_SHAPES = [(2_000_000, 32, 256)]


def _shapes(text: str) -> list[tuple[int, int, int]]:
    return [tuple(int(float(v)) for v in item.lower().split("x")) for item in text.split(",")]


def bandwidth_gbs(cp, n_bytes: int, pinned: bool, repeat: int = 3) -> float:
    import cupyx

    host = cupyx.empty_pinned((n_bytes,), dtype=np.uint8) if pinned else np.empty(n_bytes, dtype=np.uint8)
    host[:] = 1
    device = cp.empty(n_bytes, dtype=cp.uint8)
    best = float("inf")
    for _ in range(repeat):
        cp.cuda.Device().synchronize()
        start = time.perf_counter()
        device.set(host)
        cp.cuda.Device().synchronize()
        best = min(best, time.perf_counter() - start)
    del device
    cp.get_default_memory_pool().free_all_blocks()
    return n_bytes / best / 1e9


def per_iteration(cp, X, init, max_iter: int, repeat: int, limit: int | None) -> tuple[float, str]:
    import anykmeans

    pool = cp.get_default_memory_pool()

    def fit(iterations):
        pool.free_all_blocks()
        pool.set_limit(size=limit or 0)
        try:
            cp.cuda.Device().synchronize()
            start = time.perf_counter()
            with anykmeans.config_context(device="cuda"):
                model = anykmeans.KMeans(init.shape[0], init=init, max_iter=iterations, tol=0).fit(X)
            cp.cuda.Device().synchronize()
            return time.perf_counter() - start, model
        finally:
            pool.set_limit(size=0)

    _, model = fit(1)  # compiles the kernels
    short = min(fit(max_iter)[0] for _ in range(repeat))
    long = min(fit(2 * max_iter)[0] for _ in range(repeat))
    return (long - short) / max_iter, model._fit_stats["namespace"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", type=_shapes, default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--oversubscription", type=float, default=2.0)
    parser.add_argument("--max-iter", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    try:
        import cupy as cp
        import dask  # noqa: F401

        if cp.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("no CUDA device")
    except Exception as exc:  # noqa: BLE001 - say what is missing
        sys.exit(f"benchmarks/stream.py needs CuPy, Dask and a CUDA device: {exc}")
    shapes = args.shapes or (QUICK_SHAPES if args.quick else SHAPES)
    if args.quick:
        args.max_iter, args.repeat = min(args.max_iter, 3), 1

    copy_bytes = 2**28 if args.quick else 2**30
    pageable, pinned = bandwidth_gbs(cp, copy_bytes, False), bandwidth_gbs(cp, copy_bytes, True)
    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    print(f"{name}: host to device {pageable:.1f} GB/s pageable, {pinned:.1f} GB/s pinned", flush=True)

    rows = []
    for n, d, k in shapes:
        X = np.random.default_rng(0).standard_normal((n, d), dtype=np.float32)
        init = X[np.random.default_rng(1).choice(n, size=k, replace=False)]
        in_memory, where_memory = per_iteration(cp, X, init, args.max_iter, args.repeat, None)
        limit = int(X.nbytes / args.oversubscription)
        streamed, where_streamed = per_iteration(cp, X, init, args.max_iter, args.repeat, limit)
        row = {
            "n": n, "d": d, "k": k, "x_gib": X.nbytes / 2**30, "pool_limit_gib": limit / 2**30,
            "in_memory_s": in_memory, "streamed_s": streamed, "speed_ratio": in_memory / streamed,
            "copy_bound_s": X.nbytes / (pinned * 1e9), "namespaces": [where_memory, where_streamed],
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        del X

    command = " ".join(["python benchmarks/stream.py", *(sys.argv[1:] if argv is None else argv)])
    result = {"command": command, "device": name, "python": platform.python_version(),
              "h2d_gbs": {"pageable": pageable, "pinned": pinned}, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "stream.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Data larger than the GPU: streamed against in memory", "",
        f"Command: `{command}`  ", f"Device: {name}  ",
        f"Host to device: {pageable:.1f} GB/s pageable, {pinned:.1f} GB/s pinned", "",
        "| (n, d, k) | X GiB | pool limit GiB | in memory s/iter | streamed s/iter | in memory / streamed "
        "| copy of X at pinned rate, s | ran as |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| ({r['n']}, {r['d']}, {r['k']}) | {r['x_gib']:.1f} | {r['pool_limit_gib']:.1f} | "
            f"{r['in_memory_s']:.4f} | {r['streamed_s']:.4f} | {r['speed_ratio']:.2f} | "
            f"{r['copy_bound_s']:.4f} | {' / '.join(r['namespaces'])} |"
        )
    (args.out / "stream.md").write_text("\n".join(lines) + "\n")
    print(f"Wrote {args.out / 'stream.json'} and {args.out / 'stream.md'}")


if __name__ == "__main__":
    main()
