"""The cost of progress reporting: the same fits with ``progress=False`` and ``progress=True``
(a tqdm bar, written to ``os.devnull``), per iteration, as a ratio.

Fixed work: the same initial centers and ``tol=0``, so both settings run the same passes; they
alternate, best of ``--repeat`` rounds. The cost per iteration is the slope between fits of
``SHORT`` and ``LONG`` iterations, which leaves out what a fit pays once (making and closing
the bar). Small, fast iterations are where a per-iteration cost would show.

    python benchmarks/progress.py [--repeat 7] [--out benchmarks/results]

Writes ``progress.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

import anykmeans

SHAPES = [(20_000, 2, 8), (200_000, 16, 16), (200_000, 64, 128)]
SHORT, LONG = 20, 120


def time_fit(X: np.ndarray, init: np.ndarray, progress: bool, max_iter: int) -> float:
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        with anykmeans.config_context(progress=progress):
            start = time.perf_counter()
            anykmeans.KMeans(init.shape[0], init=init, max_iter=max_iter, tol=0).fit(X)
            return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed rounds; the best counts (default: 7)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="default: benchmarks/results")
    args = parser.parse_args(argv)
    rows = []
    for n, d, k in SHAPES:
        X = np.random.default_rng(0).standard_normal((n, d), dtype=np.float32)
        init = X[:k].copy()
        time_fit(X, init, True, SHORT)  # warm-up: compilation, tqdm import
        best = {(p, m): float("inf") for p in (False, True) for m in (SHORT, LONG)}
        for _ in range(args.repeat):
            for key in best:
                best[key] = min(best[key], time_fit(X, init, *key))
        per_iteration = {p: (best[p, LONG] - best[p, SHORT]) / (LONG - SHORT) for p in (False, True)}
        once = best[True, SHORT] - best[False, SHORT] - SHORT * (per_iteration[True] - per_iteration[False])
        rows.append((n, d, k, per_iteration[False], per_iteration[True], once))
        print(rows[-1], flush=True)
    command = shlex.join(["python", "benchmarks/progress.py", *(argv if argv is not None else sys.argv[1:])])
    lines = [
        "# Progress reporting: its cost per iteration",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}, "
        f"anykmeans {anykmeans.__version__}. Float32 data, fits of {SHORT} and {LONG} iterations from the "
        f"same centers, best of {args.repeat} alternating rounds.",
        "",
        "| n | d | k | ms / iteration, progress off | on (tqdm bar) | on / off | once per fit, ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for n, d, k, off, on, once in rows:
        lines.append(
            f"| {n:,} | {d} | {k} | {off * 1e3:.3f} | {on * 1e3:.3f} | **{on / off:.3f}** | {once * 1e3:.2f} |"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "progress.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
