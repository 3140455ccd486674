"""Dask benchmark: anykmeans against dask-ml's KMeans on a ``distributed.LocalCluster``.

Two worker processes with one thread each; the data is made on the workers
(``dask.array.random.default_rng(0).standard_normal``, float32, in row blocks) and persisted
there before anything is timed. Both fit from the same NumPy initial centers (rows of X, drawn
with ``numpy.random.default_rng(1)``): dask-ml ``KMeans(k, init=array, max_iter=10, tol=0)``,
anykmeans ``KMeans(k, init=array, n_init=1, max_iter=10, tol=0)``. Measured:

- the time of a fit, best of ``--repeat`` interleaved rounds after one untimed warm-up fit
  each (worker imports, Numba's compiled kernels loaded in each worker), and per iteration
  (fit time / iterations run);
- the bytes the client sends to and receives from the scheduler per Lloyd iteration: the
  difference between a fit of ``max_iter`` and one of 2 iterations, over the iterations
  between (the frames of every message on the client's connections to the scheduler);
- the centers' relative difference to anykmeans' in-memory NumPy fit of the same data from
  the same centers (max |difference| / max |center|), and that fit's time.

    python benchmarks/dask.py [--n 4000000] [--d 16] [--k 32] [--blocks 8] [--max-iter 10]
                              [--repeat 3] [--out benchmarks/results]

Writes ``dask.md`` under ``--out``. Absolute times on a shared machine mean little: read the
ratios.
"""

from __future__ import annotations

import os
import sys

# This file is named like the library it measures: its folder must not shadow ``dask``; the
# checkout it sits in is what is measured (the worker processes inherit this path).
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import argparse  # noqa: E402
import contextvars  # noqa: E402
import gc  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

import anykmeans  # noqa: E402
from benchmarks.cpu import cpu_model  # noqa: E402

GOAL_TIME_RATIO = 0.3  # anykmeans / dask-ml, fit time at (4M, 16, 32) with 10 iterations
GOAL_CENTERS = 1e-4  # relative difference of the centers to the in-memory NumPy fit


class ClientBytes:
    """Bytes the client sends to and receives from the scheduler: every frame of every message
    on this process's TCP connections to the scheduler's address. (A LocalCluster's scheduler
    runs in the client's process; its own connections, to the workers, are not counted.)"""

    def __init__(self, scheduler_address: str) -> None:
        import distributed.comm.tcp as tcp

        self.sent = self.received = 0
        to_scheduler = contextvars.ContextVar("to_scheduler", default=False)
        read, write, to_frames, from_frames = tcp.TCP.read, tcp.TCP.write, tcp.to_frames, tcp.from_frames

        async def counting_read(comm, *args, **kwargs):
            to_scheduler.set(comm.peer_address == scheduler_address)
            return await read(comm, *args, **kwargs)

        async def counting_write(comm, *args, **kwargs):
            to_scheduler.set(comm.peer_address == scheduler_address)
            return await write(comm, *args, **kwargs)

        async def counting_to_frames(*args, **kwargs):
            frames = await to_frames(*args, **kwargs)
            if to_scheduler.get():
                self.sent += sum(memoryview(f).nbytes for f in frames)
            return frames

        async def counting_from_frames(frames, *args, **kwargs):
            if to_scheduler.get():
                self.received += sum(memoryview(f).nbytes for f in frames)
            return await from_frames(frames, *args, **kwargs)

        tcp.TCP.read, tcp.TCP.write = counting_read, counting_write
        tcp.to_frames, tcp.from_frames = counting_to_frames, counting_from_frames

    def during(self, fn: Any) -> tuple[Any, int, int]:
        sent, received = self.sent, self.received
        result = fn()
        return result, self.sent - sent, self.received - received


# --------------------------------------------------------------------------- the fits


def fit_anykmeans(X: Any, init: np.ndarray, max_iter: int) -> tuple[np.ndarray, int]:
    model = anykmeans.KMeans(init.shape[0], init=init, n_init=1, max_iter=max_iter, tol=0).fit(X)
    centers = model.cluster_centers_
    return np.asarray(centers.compute() if hasattr(centers, "compute") else centers), model.n_iter_


def fit_dask_ml(X: Any, init: np.ndarray, max_iter: int) -> tuple[np.ndarray, int]:
    from dask_ml.cluster import KMeans

    model = KMeans(n_clusters=init.shape[0], init=init, max_iter=max_iter, tol=0).fit(X)
    return np.asarray(model.cluster_centers_), int(model.n_iter_)


IMPLEMENTATIONS = {"anykmeans": fit_anykmeans, "dask-ml": fit_dask_ml}


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    gc.collect()
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def relative_difference(centers: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(centers.astype(np.float64) - reference).max() / np.abs(reference).max())


# --------------------------------------------------------------------------- machine, output


def memory_gib() -> float:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


def versions() -> str:
    import dask
    import distributed

    names = {"numpy": np, "dask": dask, "distributed": distributed, "anykmeans": anykmeans}
    try:
        import dask_ml

        names["dask-ml"] = dask_ml
    except ImportError:
        pass
    try:
        import numba

        names["numba"] = numba
    except ImportError:
        pass
    return ", ".join(f"{name} {module.__version__}" for name, module in names.items())


def write(results: dict, out: Path) -> None:
    r, n, d, k = results, results["n"], results["d"], results["k"]
    any_, ml = r["fits"]["anykmeans"], r["fits"].get("dask-ml")
    lines = [
        "# Dask benchmark: anykmeans against dask-ml on a LocalCluster",
        "",
        f"Command: `{r['command']}`  ",
        f"Machine: {r['machine']}  ",
        f"Versions: {r['versions']}  ",
        "Cluster: `distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`; "
        "the scheduler and the client in the benchmark's process  ",
        f"Data: X = {n:,} × {d} float32 in {r['blocks']} row blocks of {n // r['blocks']:,}, made on the workers "
        f"(`dask.array.random.default_rng(0).standard_normal`) and persisted; k = {k}; the same NumPy "
        f"initial centers (rows of X) for every fit; `tol=0`, `max_iter={r['max_iter']}`.",
        "",
        "## Time",
        "",
        f"Best of {r['repeat']} interleaved rounds after a warm-up fit each; per iteration = fit time / iterations run.",
        "",
        "| implementation | fit s | iterations | s / iteration |",
        "|---|---:|---:|---:|",
    ]
    for name, fit in r["fits"].items():
        lines.append(f"| {name} | {fit['seconds']:.2f} | {fit['n_iter']} | {fit['seconds'] / fit['n_iter']:.3f} |")
    lines.append(f"| anykmeans, NumPy in memory (same process) | {r['numpy']['seconds']:.2f} | "
                 f"{r['numpy']['n_iter']} | {r['numpy']['seconds'] / r['numpy']['n_iter']:.3f} |")
    lines += ["", "| ratio | value | goal |", "|---|---:|---:|"]
    if ml is not None:
        ratio = any_["seconds"] / ml["seconds"]
        lines.append(f"| anykmeans / dask-ml, fit time | {ratio:.2f} | ≤ {GOAL_TIME_RATIO} "
                     f"({'met' if ratio <= GOAL_TIME_RATIO else 'not met'}) |")
        lines.append(f"| anykmeans / dask-ml, time per iteration | "
                     f"{(any_['seconds'] / any_['n_iter']) / (ml['seconds'] / ml['n_iter']):.2f} | |")
    lines.append(f"| anykmeans on the cluster / anykmeans NumPy in memory, fit time | "
                 f"{any_['seconds'] / r['numpy']['seconds']:.2f} | |")
    lines += [
        "",
        "## Bytes between the client and the scheduler, per Lloyd iteration",
        "",
        f"(fit of {r['max_iter']} iterations − fit of 2) / {r['max_iter'] - 2}, and for scale: X is "
        f"{n * d * 4 / 2**20:.0f} MiB, its labels {n * 4 / 2**20:.1f} MiB, k × (d + 1) float32 sums "
        f"{k * (d + 1) * 4} bytes.",
        "",
        "| implementation | sent per iteration | received per iteration |",
        "|---|---:|---:|",
    ]
    for name, fit in r["fits"].items():
        lines.append(f"| {name} | {fit['sent_per_iteration'] / 1024:.1f} KiB | {fit['received_per_iteration'] / 1024:.1f} KiB |")
    lines += [
        "",
        "## Centers against the in-memory NumPy fit",
        "",
        "max |centers − NumPy fit's centers| / max |NumPy fit's centers| (anykmeans on NumPy, same data and initial centers).",
        "",
        "| implementation | relative difference | goal |",
        "|---|---:|---:|",
    ]
    for name, fit in r["fits"].items():
        goal = f"≤ {GOAL_CENTERS:g} ({'met' if fit['relative_difference'] <= GOAL_CENTERS else 'not met'})" \
            if name == "anykmeans" else ""
        lines.append(f"| {name} | {fit['relative_difference']:.2e} | {goal} |")
    lines.append("")
    out.mkdir(parents=True, exist_ok=True)
    (out / "dask.md").write_text("\n".join(lines))
    print("\n".join(lines))


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=4_000_000)
    parser.add_argument("--d", type=int, default=16)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--max-iter", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-dask-ml", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    import dask
    import dask.array as da
    import distributed

    args = parse_args(argv)
    n, d, k, max_iter = args.n, args.d, args.k, args.max_iter
    implementations = {name: fn for name, fn in IMPLEMENTATIONS.items() if not (args.skip_dask_ml and name == "dask-ml")}
    results: dict[str, Any] = {
        "command": shlex.join(["python", "benchmarks/dask.py", *sys.argv[1:]]),
        "machine": f"{cpu_model()}, {platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores, "
                   f"{memory_gib():.0f} GiB, no GPU",
        "versions": versions(), "n": n, "d": d, "k": k, "blocks": args.blocks, "max_iter": max_iter,
        "repeat": args.repeat, "fits": {},
    }
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR,
    ) as cluster, distributed.Client(cluster) as client:
        comm = ClientBytes(client.scheduler.address)
        X = da.random.default_rng(0).standard_normal((n, d), chunks=(-(-n // args.blocks), d), dtype=np.float32)
        (X,) = dask.persist(X)
        distributed.wait(X)
        rows = np.sort(np.random.default_rng(1).choice(n, size=k, replace=False))
        init = X[rows].compute()

        print("warm-up fits", flush=True)
        for fn in implementations.values():
            fn(X, init, 2)

        best: dict[str, dict] = {}
        for round_ in range(args.repeat):
            for name, fn in implementations.items():
                seconds, (centers, n_iter) = timed(fn, X, init, max_iter)
                print(f"round {round_}: {name} {seconds:.2f} s, {n_iter} iterations", flush=True)
                if name not in best or seconds < best[name]["seconds"]:
                    best[name] = {"seconds": seconds, "n_iter": n_iter, "centers": centers}

        for name, fn in implementations.items():
            (_, two), sent_two, received_two = comm.during(lambda fn=fn, X=X: fn(X, init, 2))
            (_, many), sent_many, received_many = comm.during(lambda fn=fn, X=X: fn(X, init, max_iter))
            iterations = many - two
            best[name]["sent_per_iteration"] = (sent_many - sent_two) / iterations
            best[name]["received_per_iteration"] = (received_many - received_two) / iterations
            print(f"{name}: {best[name]['sent_per_iteration']:.0f} B sent, "
                  f"{best[name]['received_per_iteration']:.0f} B received per iteration", flush=True)

        X_host = X.compute()
    del X
    numpy_seconds, (numpy_centers, numpy_iter) = timed(fit_anykmeans, X_host, init, max_iter)
    numpy_seconds = min(numpy_seconds, timed(fit_anykmeans, X_host, init, max_iter)[0])
    results["numpy"] = {"seconds": numpy_seconds, "n_iter": numpy_iter}
    for name, fit in best.items():
        fit["relative_difference"] = relative_difference(fit.pop("centers"), numpy_centers.astype(np.float64))
        results["fits"][name] = fit
    write(results, args.out)


if __name__ == "__main__":
    main()
