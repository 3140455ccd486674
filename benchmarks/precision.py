"""How many rows ``matmul_precision="high"`` / ``"medium"`` recheck, measured on the CPU.

    python benchmarks/precision.py [--shapes 1000000x128x1024,...] [--flops 2e10]
                                   [--iterations 2] [--rows-per-center 8] [--out benchmarks/results]

The share of near ties (rows whose fast scores cannot certify their label, and which a fit
rechecks in float32) depends on the data, the number of features and the centers, not on
the GPU: it is measured here with the reference kernels' emulation of the TF32 and BF16
products (``anykmeans.backends.precision.near_ties``), on fewer rows than the GPU
benchmark's shapes (as many as ``--flops`` allows for one n × k × d product, at least 2,000).

Data, float32, for each shape (n, d, k):

- ``clustered``: k Gaussian clusters, centers drawn from N(0, 1) in d dimensions, each
  cluster's rows spread by N(0, 0.5²) per feature (``numpy.random.default_rng(0)``);
- ``unstructured``: N(0, 1) rows, no clusters (``default_rng(1)``).

Centers: k rows of ``--rows-per-center × k`` training rows (``default_rng(2)``), then
``--iterations`` Lloyd iterations on them (anykmeans at ``"highest"``); the share is measured
on other rows of the same data (held out), mean-centered as a fit's passes see them. Writes ``precision.json`` and ``precision.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

SHAPES = [(1_000_000, 128, 1024), (200_000, 256, 16_384), (1_000_000, 768, 8192), (1_000_000, 1024, 16_384)]
MIN_ROWS = 4000


def _parse_shapes(text: str) -> list[tuple[int, int, int]]:
    return [tuple(int(float(v)) for v in item.lower().split("x")) for item in text.split(",")]


def make_data(kind: str, n: int, d: int, k: int) -> np.ndarray:
    if kind == "unstructured":
        return np.random.default_rng(1).standard_normal((n, d), dtype=np.float32)
    rng = np.random.default_rng(0)
    means = rng.standard_normal((k, d), dtype=np.float32)
    members = rng.integers(0, k, n)
    return means[members] + 0.5 * rng.standard_normal((n, d), dtype=np.float32)


def measure(kind: str, n: int, d: int, k: int, iterations: int, rows_per_center: int) -> dict:
    """The shares of near ties among ``n`` held-out rows, for centers fitted on
    ``rows_per_center × k`` other rows of the same data."""
    import array_api_compat.numpy as xp

    import anykmeans
    from anykmeans.backends import precision

    n_fit = rows_per_center * k
    data = make_data(kind, n_fit + n, d, k)
    X, held_out = data[:n_fit], data[n_fit:]
    init = X[np.random.default_rng(2).choice(n_fit, k, replace=False)]
    centers = init
    if iterations:
        centers = anykmeans.KMeans(k, init=init, n_init=1, max_iter=iterations, tol=0).fit(X).cluster_centers_
    mean = X.mean(axis=0)
    rows, centers = held_out - mean, (centers - mean).astype(np.float32)
    shares = {}
    for name in ("high", "medium"):
        start = time.perf_counter()
        uncertain = precision.near_ties(rows, centers, precision=name, shift=None, xp=xp)
        shares[name] = {"share": float(uncertain.mean()), "seconds": time.perf_counter() - start}
    return {"kind": kind, "rows": n, "d": d, "k": k, **shares}


def write(results: list[dict], args, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    meta = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "python": platform.python_version(),
            "command": " ".join(["python benchmarks/precision.py", *args.argv])}
    (out / "precision.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    lines = [
        "# Near ties: the rows that `matmul_precision` \"high\" / \"medium\" recheck",
        "",
        f"`{meta['command']}` on {meta['machine']}, Python {meta['python']}. The emulated TF32 / BF16 "
        "products of the reference kernels (the share depends on the data and the centers, not on "
        f"the GPU); centers after {args.iterations} Lloyd iterations from k rows of "
        f"{args.rows_per_center}·k training rows, shares measured on held-out rows. "
        "Rows: as many as one product of about "
        f"{args.flops:g} flops allows (the GPU shapes' n is larger; the share is a per-row figure).",
        "",
        "| shape (n, d, k) | data | rows measured | rechecked, high (TF32) | rechecked, medium (BF16) |",
        "|---|---|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| ({r['shape'][0]:,}, {r['d']}, {r['k']:,}) | {r['kind']} | {r['rows']:,} | "
            f"{100 * r['high']['share']:.2f} % | {100 * r['medium']['share']:.2f} % |"
        )
    (out / "precision.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    import sys

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", type=_parse_shapes, default=SHAPES)
    parser.add_argument("--flops", type=float, default=2e10, help="size of one n × k × d product (rows measured)")
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--rows-per-center", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    results = []
    for n, d, k in args.shapes:
        rows = int(min(n, max(MIN_ROWS, args.flops // (d * k))))
        for kind in ("clustered", "unstructured"):
            result = measure(kind, rows, d, k, args.iterations, args.rows_per_center)
            result["shape"] = (n, d, k)
            results.append(result)
            print(f"({n}, {d}, {k}) {kind:12s} rows {rows:7d}  high {100 * result['high']['share']:6.2f} %"
                  f"  medium {100 * result['medium']['share']:6.2f} %", flush=True)
    write(results, args, args.out)


if __name__ == "__main__":
    main()
