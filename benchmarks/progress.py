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


def callback_cost(calls: int = 200_000) -> float:
    """Seconds per ``FitProgress.iteration`` call with a live bar (to ``os.devnull``): what a
    fit's iteration pays for its progress, measured alone, without the noise of fits."""
    from anykmeans._progress import FitProgress

    with open(os.devnull, "w") as sink:
        progress = FitProgress(True, n_init=1, max_iter=calls, name="KMeans", stream=sink)
        progress.iteration(0, 1.0)
        start = time.perf_counter()
        for index in range(1, calls):
            progress.iteration(index, 1.0 / index)
        seconds = (time.perf_counter() - start) / (calls - 1)
        progress.close()
    return seconds


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
    per_call = min(callback_cost() for _ in range(3))
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
        f"The progress call alone (`FitProgress.iteration` with a live bar, 200,000 calls, best of 3): "
        f"{per_call * 1e6:.2f} µs per iteration; the last column is that over the iteration's time.",
        "",
        "| n | d | k | ms / iteration, progress off | on (tqdm bar) | on / off (fits) | once per fit, ms | progress call / iteration |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, d, k, off, on, once in rows:
        lines.append(
            f"| {n:,} | {d} | {k} | {off * 1e3:.3f} | {on * 1e3:.3f} | {on / off:.3f} | {once * 1e3:.2f} "
            f"| **{per_call / off:.2%}** |"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "progress.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
