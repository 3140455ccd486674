"""Elkan's bounds against Lloyd's passes: anykmeans ``algorithm="elkan"`` and ``"lloyd"``, and
scikit-learn's two, fitted to convergence from the same k-means++ centers.

Data: ``k`` Gaussian blobs (centers uniform in [-10, 10]^d, standard deviation ``std``), and
structureless Gaussian noise, where bounds rarely rule a center out. Each fit runs from the
same initial centers (``sklearn.cluster.kmeans_plusplus``, seed 0) with the default ``tol``;
the implementations are timed interleaved in one process, best of ``--repeat``, after one
untimed warm-up fit each (Numba compilation). Reported: fit times, the ratios, iterations, and
whether the labels equal anykmeans' Lloyd labels.

    python benchmarks/elkan.py [--repeat 3] [--dtype float64] [--quick] [--out benchmarks/results]

Writes ``elkan.json`` and ``elkan.md`` under ``--out``. Read the ratios, not the times.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans as SklearnKMeans
from sklearn.cluster import kmeans_plusplus

import anykmeans

# (name, n, d, k, std): std None is Gaussian noise.
CASES = [
    ("blobs", 200_000, 16, 64, 1.0),
    ("blobs", 200_000, 16, 64, 4.0),
    ("blobs", 100_000, 64, 256, 2.0),
    ("blobs", 100_000, 64, 256, 6.0),
    ("blobs", 50_000, 256, 256, 3.0),
    ("blobs", 50_000, 256, 256, 10.0),
    ("blobs", 50_000, 128, 512, 8.0),
    ("blobs", 20_000, 784, 100, 20.0),
    ("noise", 200_000, 16, 64, None),
    ("noise", 50_000, 256, 64, None),
]
QUICK_FACTOR = 20


def make_data(n: int, d: int, k: int, std: float | None, dtype: str) -> np.ndarray:
    rng = np.random.default_rng(0)
    if std is None:
        return rng.standard_normal((n, d)).astype(dtype)
    centers = rng.uniform(-10.0, 10.0, size=(k, d))
    return (centers[rng.integers(0, k, size=n)] + std * rng.standard_normal((n, d))).astype(dtype)


def implementations(k: int, init: np.ndarray) -> dict:
    def ours(algorithm: str):
        return lambda X: anykmeans.KMeans(k, init=init, algorithm=algorithm, max_iter=300).fit(X)

    def theirs(algorithm: str):
        return lambda X: SklearnKMeans(k, init=init, n_init=1, algorithm=algorithm, max_iter=300).fit(X)

    return {
        "anykmeans lloyd": ours("lloyd"),
        "anykmeans elkan": ours("elkan"),
        "scikit-learn lloyd": theirs("lloyd"),
        "scikit-learn elkan": theirs("elkan"),
    }


def run_case(name: str, n: int, d: int, k: int, std: float | None, *, dtype: str, repeat: int) -> dict:
    X = make_data(n, d, k, std, dtype)
    init, _ = kmeans_plusplus(X, k, random_state=0)
    impls = implementations(k, init)
    for fit in impls.values():  # warm-up: compilation, thread pools
        fit(X[: min(n, 5000)])
    best = {label: float("inf") for label in impls}
    models = {}
    for _ in range(repeat):
        for label, fit in impls.items():
            start = time.perf_counter()
            models[label] = fit(X)
            best[label] = min(best[label], time.perf_counter() - start)
    reference = models["anykmeans lloyd"].labels_
    return {
        "data": name, "n": n, "d": d, "k": k, "std": std, "dtype": dtype,
        "seconds": best,
        "n_iter": {label: int(m.n_iter_) for label, m in models.items()},
        "same_labels_as_lloyd": {label: bool(np.array_equal(m.labels_, reference)) for label, m in models.items()},
        "elkan_over_lloyd": best["anykmeans elkan"] / best["anykmeans lloyd"],
        "elkan_over_sklearn_elkan": best["anykmeans elkan"] / best["scikit-learn elkan"],
        "elkan_over_best_sklearn": best["anykmeans elkan"] / min(best["scikit-learn elkan"], best["scikit-learn lloyd"]),
    }


def markdown(results: list[dict], command: str, machine: dict) -> str:
    lines = [
        "# Elkan's bounds against Lloyd's passes",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine['processor']}, {machine['cores']} cores, Python {machine['python']}, "
        f"NumPy {machine['numpy']}, scikit-learn {machine['sklearn']}, anykmeans {machine['anykmeans']}.",
        "",
        "Whole fits to convergence from the same k-means++ centers, best of the rounds. "
        "`elkan/lloyd` is anykmeans' Elkan time over its Lloyd time; `elkan/sk-elkan` over "
        "scikit-learn's Elkan; `elkan/sk-best` over the faster of scikit-learn's two. "
        "`same` says whether every implementation's labels equal anykmeans' Lloyd labels.",
        "",
        "| data | n | d | k | std | lloyd s | elkan s | sk lloyd s | sk elkan s | elkan/lloyd "
        "| elkan/sk-elkan | elkan/sk-best | iterations (ours, sklearn) | same |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s, it = r["seconds"], r["n_iter"]
        lines.append(
            f"| {r['data']} | {r['n']:,} | {r['d']} | {r['k']} | {r['std'] if r['std'] is not None else '–'} "
            f"| {s['anykmeans lloyd']:.3f} | {s['anykmeans elkan']:.3f} | {s['scikit-learn lloyd']:.3f} "
            f"| {s['scikit-learn elkan']:.3f} | **{r['elkan_over_lloyd']:.2f}** "
            f"| {r['elkan_over_sklearn_elkan']:.2f} | {r['elkan_over_best_sklearn']:.2f} "
            f"| {it['anykmeans lloyd']}/{it['anykmeans elkan']}, {it['scikit-learn lloyd']}/{it['scikit-learn elkan']} "
            f"| {'yes' if all(r['same_labels_as_lloyd'].values()) else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds; the best counts (default: 3)")
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"], help="default: float64")
    parser.add_argument("--quick", action="store_true", help=f"divide every n by {QUICK_FACTOR}")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="default: benchmarks/results")
    args = parser.parse_args(argv)
    results = []
    for name, n, d, k, std in CASES:
        n = n // QUICK_FACTOR if args.quick else n
        result = run_case(name, n, d, k, std, dtype=args.dtype, repeat=args.repeat)
        print(json.dumps(result), flush=True)
        results.append(result)
    import os
    import sklearn

    machine = {
        "processor": platform.processor() or platform.machine(), "cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(), "numpy": np.__version__, "sklearn": sklearn.__version__,
        "anykmeans": anykmeans.__version__,
    }
    command = shlex.join(["python", "benchmarks/elkan.py", *(argv if argv is not None else sys.argv[1:])])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "elkan.json").write_text(json.dumps({"command": command, "machine": machine, "results": results}, indent=1))
    (args.out / "elkan.md").write_text(markdown(results, command, machine))
    print(markdown(results, command, machine))


if __name__ == "__main__":
    main()
