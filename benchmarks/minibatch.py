"""MiniBatchKMeans: time per step against scikit-learn's, from the same initial centers.

The cost of one step is the slope between fits of one and two epochs (``max_iter`` 1 and 2,
``n_samples / batch_size`` steps each, ``compute_labels=False``, no early stop), so that the
validation and setup a fit pays once are left out; the implementations alternate, best of
``--repeat``. Float32 data from ``np.random.default_rng(0).standard_normal``.

    python benchmarks/minibatch.py [--repeat 2] [--n 1000000] [--out benchmarks/results]

Writes ``minibatch.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

import anykmeans

D, K = 32, 256
BATCHES = (1024, 4096)


def fit_time(cls, X, init, batch_size, epochs):
    model = cls(
        K, init=init, n_init=1, batch_size=batch_size, max_iter=epochs, compute_labels=False,
        max_no_improvement=None, tol=0.0, reassignment_ratio=0.0, random_state=0,
    )
    start = time.perf_counter()
    model.fit(X)
    return time.perf_counter() - start, model.n_steps_


def main(argv: list[str] | None = None) -> None:
    from sklearn.cluster import MiniBatchKMeans as SklearnMiniBatchKMeans

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=2, help="timed rounds; the best counts (default: 2)")
    parser.add_argument("--n", type=int, default=1_000_000, help="rows (default: 1,000,000)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="default: benchmarks/results")
    args = parser.parse_args(argv)
    X = np.random.default_rng(0).standard_normal((args.n, D), dtype=np.float32)
    init = X[:K].copy()
    implementations = {"anykmeans": anykmeans.MiniBatchKMeans, "scikit-learn": SklearnMiniBatchKMeans}
    rows = []
    for batch_size in BATCHES:
        for cls in implementations.values():  # warm-up: compilation
            fit_time(cls, X[: 20 * batch_size], init, batch_size, 1)
        per_step = {}
        for name, cls in implementations.items():
            best = {1: float("inf"), 2: float("inf")}
            steps = {}
            for _ in range(args.repeat):
                for epochs in (1, 2):
                    seconds, steps[epochs] = fit_time(cls, X, init, batch_size, epochs)
                    best[epochs] = min(best[epochs], seconds)
            per_step[name] = (best[2] - best[1]) / (steps[2] - steps[1])
        rows.append((batch_size, per_step["anykmeans"], per_step["scikit-learn"]))
        print(rows[-1], flush=True)
    command = shlex.join(["python", "benchmarks/minibatch.py", *(argv if argv is not None else sys.argv[1:])])
    lines = [
        "# MiniBatchKMeans: time per step",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}, "
        f"anykmeans {anykmeans.__version__}. ({args.n:,}, {D}) float32, k = {K}, best of {args.repeat}.",
        "",
        "| batch | anykmeans ms / step | scikit-learn ms / step | ratio |",
        "|---|---|---|---|",
    ]
    for batch_size, ours, theirs in rows:
        lines.append(f"| {batch_size} | {ours * 1e3:.3f} | {theirs * 1e3:.3f} | **{ours / theirs:.2f}** |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "minibatch.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
