"""Per-iteration Lloyd time on the CPU: anykmeans against scikit-learn, side by side.

Same float32 data, same initial centers, ``tol=0`` and a fixed number of iterations; the
implementations are timed interleaved in one process (best of ``--repeat`` rounds), so that
the machine's load affects them alike. Reports ratios: absolute times on a shared machine
mean little.

    python benchmarks/cpu.py [--repeat 3] [--max-iter 10] [--out benchmarks/results]

Writes ``cpu.json`` and ``cpu.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

import anykmeans

SHAPES = [(100_000, 32, 64), (200_000, 128, 256), (1_000_000, 8, 16)]


def _anykmeans(k, init, max_iter):
    return anykmeans.KMeans(k, init=init, max_iter=max_iter, tol=0)


def _sklearn(k, init, max_iter):
    from sklearn.cluster import KMeans

    return KMeans(k, init=init, n_init=1, max_iter=max_iter, tol=0, algorithm="lloyd")


IMPLEMENTATIONS = {"anykmeans": _anykmeans, "sklearn": _sklearn}


def seconds_per_iteration(make, X, k, init, max_iter):
    start = time.perf_counter()
    model = make(k, init, max_iter).fit(X)
    return (time.perf_counter() - start) / model.n_iter_


def run(repeat: int, max_iter: int) -> list[dict]:
    rows = []
    for n, d, k in SHAPES:
        X = np.random.default_rng(0).standard_normal((n, d), dtype=np.float32)
        init = X[np.random.default_rng(1).choice(n, size=k, replace=False)]
        best = {name: float("inf") for name in IMPLEMENTATIONS}
        for _ in range(repeat):
            for name, make in IMPLEMENTATIONS.items():  # interleaved
                best[name] = min(best[name], seconds_per_iteration(make, X, k, init, max_iter))
        rows.append({
            "n": n, "d": d, "k": k,
            "seconds_per_iteration": best,
            "ratio_to_sklearn": best["anykmeans"] / best["sklearn"],
        })
        print(f"({n}, {d}, {k}): " + ", ".join(f"{m} {s * 1e3:.1f} ms" for m, s in best.items())
              + f"; anykmeans / sklearn = {rows[-1]['ratio_to_sklearn']:.2f}", flush=True)
    return rows


def machine() -> dict:
    import sklearn

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "sklearn": sklearn.__version__,
        "anykmeans": anykmeans.__version__,
    }


def write(rows: list[dict], info: dict, command: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "cpu.json").write_text(json.dumps({"command": command, "machine": info, "rows": rows}, indent=2) + "\n")
    lines = [
        "# CPU: per-iteration Lloyd time, anykmeans vs scikit-learn",
        "",
        f"Command: `{command}`  ",
        f"Machine: {info['cpu_count']} cores, {info['processor']}, {info['platform']}; "
        f"numpy {info['numpy']}, scikit-learn {info['sklearn']}, anykmeans {info['anykmeans']}",
        "",
        "float32, same data and initial centers, tol=0; best of the interleaved rounds.",
        "",
        "| n | d | k | anykmeans ms/iter | sklearn ms/iter | anykmeans / sklearn |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        s = r["seconds_per_iteration"]
        lines.append(
            f"| {r['n']:,} | {r['d']} | {r['k']} | {s['anykmeans'] * 1e3:.1f} | "
            f"{s['sklearn'] * 1e3:.1f} | {r['ratio_to_sklearn']:.2f} |"
        )
    (out / "cpu.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-iter", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    command = "python benchmarks/cpu.py " + " ".join(sys.argv[1:])
    write(run(args.repeat, args.max_iter), machine(), command.strip(), args.out)


if __name__ == "__main__":
    main()
