"""CPU benchmark: anykmeans against scikit-learn and FAISS, on float32 data.

Every measurement uses ``np.random.default_rng(0).standard_normal((n, d), dtype=np.float32)``.

1. Per-iteration Lloyd time for each (n, d, k) shape: anykmeans with the backends ``auto``
   selects, anykmeans with the NumPy backends only, scikit-learn (``algorithm="lloyd"``) and
   FAISS (``faiss.Kmeans``, no subsampling), from the same initial centers with ``tol=0`` and a
   fixed number of iterations. The implementations are timed interleaved in one process, best
   of ``--repeat`` rounds, so that the machine's load affects them alike; one untimed warm-up
   fit each (Numba compilation, thread pools) comes first. Achieved GFLOP/s count the distance
   GEMM only (2·n·k·d per iteration) and are compared with the machine's measured SGEMM rate.
2. k-means++ seeding at (100k, 32, 256): ``anykmeans.kmeans_plusplus`` against
   ``sklearn.cluster.kmeans_plusplus``, with the potential of the seeds as a sanity check.
3. The full default fit (k-means++, ``n_init="auto"``, ``tol=1e-4``, to convergence).
4. Extra peak memory of one fit at (2M, 32, 64), as a multiple of the input's size, for each
   implementation in its own fresh process (resident set size, since Numba, BLAS and FAISS
   allocate outside Python's allocator).
5. MiniBatchKMeans at (1M, 32, 256), batch 1024 and 4096: time per step against scikit-learn's
   MiniBatchKMeans, from the same initial centers. A step's cost is the slope between fits of
   one and two epochs (``compute_labels=False``, no early stop, no reassignment), so that what a
   fit pays once is left out.
6. Spherical k-means (``metric="cosine"``) per iteration against FAISS's ``spherical=True``
   on the same unit rows and initial centers (FAISS is given the rows normalised; anykmeans
   normalises them in its fit, which is timed).

    python benchmarks/cpu.py [--repeat 3] [--max-iter 10] [--large] [--quick]
                             [--only lloyd kmeanspp fit memory minibatch spherical]
                             [--skip-fit] [--skip-memory]
                             [--fit-all] [--memory-shape N D K] [--out benchmarks/results]

Writes ``cpu.json`` (everything) and ``cpu.md`` (tables and the goals) under ``--out``.
Absolute times on a shared machine mean little: read the ratios.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import anykmeans

SHAPES = [(100_000, 32, 64), (200_000, 128, 256), (1_000_000, 8, 16)]
LARGE_SHAPE = (1_000_000, 128, 1000)
KMEANSPP_SHAPE = (100_000, 32, 256)
FIT_SHAPE = (100_000, 32, 64)
MEMORY_SHAPE = (2_000_000, 32, 64)
MEMORY_MAX_ITER = 20
MINIBATCH_SHAPE = (1_000_000, 32, 256)
MINIBATCH_BATCHES = (1024, 4096)
SPHERICAL_SHAPE = (200_000, 64, 256)
QUICK_FACTOR = 100  # --quick divides every n by this
WARMUP_ROWS = 20_000
SGEMM_SIZE = 4096

# The goals of the issue this benchmark tracks.
GOAL_LLOYD_RATIO = 0.8  # anykmeans (auto) / scikit-learn and / FAISS, every shape
GOAL_NUMPY_RATIO = 1.0  # anykmeans with NumPy alone / scikit-learn, shapes with d >= 32
GOAL_KMEANSPP_RATIO = 0.2  # anykmeans / scikit-learn, k-means++ at KMEANSPP_SHAPE
GOAL_MEMORY_RATIO = 0.3  # extra peak memory of a fit / X.nbytes at MEMORY_SHAPE
GOAL_MINIBATCH_RATIO = 0.7  # anykmeans / scikit-learn, time per mini-batch step


def _optional(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


faiss = _optional("faiss")
numba = _optional("numba")
OPTIONAL = {"faiss-cpu": faiss, "numba": numba}


def make_data(n: int, d: int) -> np.ndarray:
    # Drawn in float32 directly: no float64 temporary inflates the memory workers' baseline.
    return np.random.default_rng(0).standard_normal((n, d), dtype=np.float32)


def initial_rows(X: np.ndarray, k: int) -> np.ndarray:
    return X[np.random.default_rng(1).choice(X.shape[0], size=k, replace=False)]


def numpy_backends() -> Any:
    return anykmeans.config_context(kernels="numpy")


def timed(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    gc.collect()  # a collection of an earlier run's garbage is not this run's time
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def warmup_slice(X: np.ndarray, k: int) -> np.ndarray:
    return X[: min(X.shape[0], max(WARMUP_ROWS, 4 * k))]


# --------------------------------------------------------------------------- Lloyd iterations
# Each runs a fixed-iteration Lloyd fit from ``init`` and returns the iterations actually run.


def lloyd_anykmeans(X: np.ndarray, init: np.ndarray, max_iter: int) -> int:
    model = anykmeans.KMeans(init.shape[0], init=init, n_init=1, max_iter=max_iter, tol=0)
    return model.fit(X).n_iter_


def lloyd_anykmeans_numpy(X: np.ndarray, init: np.ndarray, max_iter: int) -> int:
    with numpy_backends():
        return lloyd_anykmeans(X, init, max_iter)


def lloyd_sklearn(X: np.ndarray, init: np.ndarray, max_iter: int) -> int:
    from sklearn.cluster import KMeans

    model = KMeans(
        init.shape[0], init=init, n_init=1, max_iter=max_iter, tol=0, algorithm="lloyd"
    )
    return model.fit(X).n_iter_


def faiss_kmeans(n: int, d: int, k: int, niter: int) -> Any:
    # FAISS subsamples to k * max_points_per_centroid points unless that is at least n.
    return faiss.Kmeans(
        d, k, niter=niter, max_points_per_centroid=n, min_points_per_centroid=1,
        seed=0, verbose=False,
    )


def lloyd_faiss(X: np.ndarray, init: np.ndarray, max_iter: int) -> int:
    model = faiss_kmeans(X.shape[0], X.shape[1], init.shape[0], max_iter)
    model.train(X, init_centroids=init)
    return len(model.iteration_stats)  # FAISS always runs niter iterations


def lloyd_implementations() -> dict[str, Callable[[np.ndarray, np.ndarray, int], int]]:
    impls = {
        "anykmeans": lloyd_anykmeans,
        "anykmeans-numpy": lloyd_anykmeans_numpy,
        "sklearn": lloyd_sklearn,
    }
    if faiss is not None:
        impls["faiss"] = lloyd_faiss
    return impls


LLOYD_DESCRIPTIONS = {
    "anykmeans": "the backends `auto` selects",
    "anykmeans-numpy": '`config_context(kernels="numpy")`',
    "sklearn": '`algorithm="lloyd"`',
    "faiss": "`faiss.Kmeans` with no subsampling",
}

RATIOS = [
    ("anykmeans", "sklearn"),
    ("anykmeans", "faiss"),
    ("anykmeans-numpy", "sklearn"),
]


def run_lloyd(
    shapes: list[tuple[int, int, int]], repeat: int, max_iter: int, sgemm: float
) -> list[dict]:
    impls = lloyd_implementations()
    rows = []
    for n, d, k in shapes:
        X = make_data(n, d)
        init = initial_rows(X, k)
        warm = warmup_slice(X, k)
        for fn in impls.values():
            fn(warm, init, min(2, max_iter))
        rounds: dict[str, list[float]] = {name: [] for name in impls}
        iterations = dict.fromkeys(impls, max_iter)
        for _ in range(repeat):
            for name, fn in impls.items():  # interleaved
                seconds, n_iter = timed(fn, X, init, max_iter)
                rounds[name].append(seconds / n_iter)
                iterations[name] = min(iterations[name], n_iter)
        best = {name: min(times) for name, times in rounds.items()}
        gflops = {name: 2 * n * k * d / s / 1e9 for name, s in best.items()}
        row = {
            "n": n, "d": d, "k": k, "max_iter": max_iter,
            "seconds_per_iteration": best,
            "rounds": rounds,
            "iterations": iterations,
            "converged_early": {name: it for name, it in iterations.items() if it < max_iter},
            "ratios": {f"{a}/{b}": best[a] / best[b]
                       for a, b in RATIOS if a in best and b in best},
            "gflops": gflops,
            "fraction_of_sgemm": {name: g / sgemm for name, g in gflops.items()},
        }
        rows.append(row)
        print(f"lloyd {shape_name(n, d, k)}: "
              + ", ".join(f"{m} {fmt_ms(s)} ms" for m, s in best.items()) + "; "
              + ", ".join(f"{r} = {v:.2f}" for r, v in row["ratios"].items()), flush=True)
        for name, it in row["converged_early"].items():
            print(f"  warning: {name} stopped after {it} < {max_iter} iterations", flush=True)
    return rows


# --------------------------------------------------------------------------- SGEMM rate


def measure_sgemm(size: int, repeat: int) -> dict:
    rng = np.random.default_rng(0)
    A = rng.standard_normal((size, size), dtype=np.float32)
    B = rng.standard_normal((size, size), dtype=np.float32)
    C = np.empty((size, size), dtype=np.float32)
    np.matmul(A, B, out=C)  # warm-up: thread pool and page faults
    best = min(timed(np.matmul, A, B, C)[0] for _ in range(max(3, repeat)))
    gflops = 2 * size**3 / best / 1e9
    print(f"sgemm {size}x{size}: {gflops:.1f} GFLOP/s", flush=True)
    return {"size": size, "seconds": best, "gflops": gflops}


# --------------------------------------------------------------------------- k-means++


def potential(X: np.ndarray, centers: np.ndarray) -> float:
    """Sum of squared distances to the nearest center, in float64, chunk by chunk."""
    C = np.asarray(centers, dtype=np.float64)
    C_sqnorm = np.einsum("ij,ij->i", C, C)
    total = 0.0
    for start in range(0, X.shape[0], 8192):
        chunk = X[start : start + 8192].astype(np.float64)
        d2 = np.einsum("ij,ij->i", chunk, chunk)[:, None] - 2 * chunk @ C.T + C_sqnorm
        total += float(np.maximum(d2.min(axis=1), 0).sum())
    return total


def kmeanspp_anykmeans(X: np.ndarray, k: int, seed: int) -> np.ndarray:
    return np.asarray(anykmeans.kmeans_plusplus(X, k, random_state=seed)[0])


def kmeanspp_sklearn(X: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import kmeans_plusplus

    return kmeans_plusplus(X, k, random_state=seed)[0]


def run_kmeanspp(shape: tuple[int, int, int], repeat: int) -> dict:
    n, d, k = shape
    impls = {"anykmeans": kmeanspp_anykmeans, "sklearn": kmeanspp_sklearn}
    X = make_data(n, d)
    for fn in impls.values():
        fn(warmup_slice(X, k), k, 0)
    rounds: dict[str, list[float]] = {name: [] for name in impls}
    potentials: dict[str, list[float]] = {name: [] for name in impls}
    for seed in range(repeat):
        for name, fn in impls.items():  # interleaved; both draw with the same seed
            seconds, centers = timed(fn, X, k, seed)
            rounds[name].append(seconds)
            potentials[name].append(potential(X, centers))
    best = {name: min(times) for name, times in rounds.items()}
    mean_potential = {name: float(np.mean(p)) for name, p in potentials.items()}
    result = {
        "n": n, "d": d, "k": k, "seeds": list(range(repeat)),
        "seconds": best,
        "rounds": rounds,
        "ratio": best["anykmeans"] / best["sklearn"],
        "potentials": potentials,
        "mean_potential": mean_potential,
        "potential_ratio": mean_potential["anykmeans"] / mean_potential["sklearn"],
    }
    print(f"k-means++ {shape_name(n, d, k)}: "
          + ", ".join(f"{m} {fmt_ms(s)} ms" for m, s in best.items())
          + f"; anykmeans/sklearn = {result['ratio']:.2f}, "
          f"potential ratio {result['potential_ratio']:.3f}", flush=True)
    return result


# --------------------------------------------------------------------------- full default fit


def fit_anykmeans(X: np.ndarray, k: int, seed: int) -> Any:
    return anykmeans.KMeans(k, random_state=seed).fit(X)


def fit_sklearn(X: np.ndarray, k: int, seed: int) -> Any:
    from sklearn.cluster import KMeans

    return KMeans(k, random_state=seed).fit(X)


def run_fit(shapes: list[tuple[int, int, int]], repeat: int, seed: int = 0) -> list[dict]:
    impls = {"anykmeans": fit_anykmeans, "sklearn": fit_sklearn}
    rows = []
    for n, d, k in shapes:
        X = make_data(n, d)
        for fn in impls.values():
            fn(warmup_slice(X, k), k, seed)
        rounds: dict[str, list[float]] = {name: [] for name in impls}
        n_iter, inertia = {}, {}
        for _ in range(repeat):
            for name, fn in impls.items():  # interleaved; same seed every round, same result
                seconds, model = timed(fn, X, k, seed)
                rounds[name].append(seconds)
                n_iter[name], inertia[name] = int(model.n_iter_), float(model.inertia_)
        best = {name: min(times) for name, times in rounds.items()}
        row = {
            "n": n, "d": d, "k": k, "random_state": seed,
            "seconds": best,
            "rounds": rounds,
            "n_iter": n_iter,
            "inertia": inertia,
            "ratio": best["anykmeans"] / best["sklearn"],
            "inertia_ratio": inertia["anykmeans"] / inertia["sklearn"],
        }
        rows.append(row)
        print(f"fit {shape_name(n, d, k)}: "
              + ", ".join(f"{m} {s:.3f} s ({n_iter[m]} it)" for m, s in best.items())
              + f"; anykmeans/sklearn = {row['ratio']:.2f}", flush=True)
    return rows


# --------------------------------------------------------------------------- mini-batch steps


def minibatch_fit(cls: Any, X: np.ndarray, init: np.ndarray, batch_size: int, epochs: int) -> int:
    model = cls(
        init.shape[0], init=init, n_init=1, batch_size=batch_size, max_iter=epochs,
        compute_labels=False, max_no_improvement=None, tol=0.0, reassignment_ratio=0.0,
        random_state=0,
    )
    return model.fit(X).n_steps_


def run_minibatch(shape: tuple[int, int, int], repeat: int) -> list[dict]:
    from sklearn.cluster import MiniBatchKMeans

    n, d, k = shape
    impls = {"anykmeans": anykmeans.MiniBatchKMeans, "sklearn": MiniBatchKMeans}
    X = make_data(n, d)
    init = initial_rows(X, k)
    rows = []
    for batch_size in MINIBATCH_BATCHES:
        for cls in impls.values():  # warm-up: compilation, thread pools
            minibatch_fit(cls, X[: 20 * batch_size], init, batch_size, 1)
        best = {name: {1: float("inf"), 2: float("inf")} for name in impls}
        steps: dict[str, dict[int, int]] = {name: {} for name in impls}
        for _ in range(repeat):
            for epochs in (1, 2):
                for name, cls in impls.items():  # interleaved
                    seconds, steps[name][epochs] = timed(minibatch_fit, cls, X, init, batch_size, epochs)
                    best[name][epochs] = min(best[name][epochs], seconds)
        per_step = {name: (best[name][2] - best[name][1]) / (steps[name][2] - steps[name][1])
                    for name in impls}
        row = {"n": n, "d": d, "k": k, "batch_size": batch_size, "seconds_per_step": per_step,
               "ratio": per_step["anykmeans"] / per_step["sklearn"]}
        rows.append(row)
        print(f"mini-batch {shape_name(n, d, k)} batch {batch_size}: "
              + ", ".join(f"{m} {fmt_ms(s)} ms/step" for m, s in per_step.items())
              + f"; anykmeans/sklearn = {row['ratio']:.2f}", flush=True)
    return rows


# --------------------------------------------------------------------------- spherical k-means


def spherical_anykmeans(X: np.ndarray, unit: np.ndarray, init: np.ndarray, max_iter: int) -> int:
    model = anykmeans.KMeans(init.shape[0], init=init, n_init=1, max_iter=max_iter, tol=0, metric="cosine")
    return model.fit(X).n_iter_


def spherical_faiss(X: np.ndarray, unit: np.ndarray, init: np.ndarray, max_iter: int) -> int:
    model = faiss.Kmeans(
        unit.shape[1], init.shape[0], niter=max_iter, spherical=True,
        max_points_per_centroid=unit.shape[0], min_points_per_centroid=1, seed=0, verbose=False,
    )
    model.train(unit, init_centroids=init)
    return len(model.iteration_stats)


def run_spherical(shape: tuple[int, int, int], repeat: int, max_iter: int) -> dict:
    n, d, k = shape
    X = make_data(n, d)
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    init = initial_rows(unit, k)
    impls = {"anykmeans": spherical_anykmeans}
    if faiss is not None:
        impls["faiss"] = spherical_faiss
    for fn in impls.values():
        warm = warmup_slice(X, k)
        fn(warm, warmup_slice(unit, k), init, min(2, max_iter))
    rounds: dict[str, list[float]] = {name: [] for name in impls}
    for _ in range(repeat):
        for name, fn in impls.items():  # interleaved
            seconds, n_iter = timed(fn, X, unit, init, max_iter)
            rounds[name].append(seconds / n_iter)
    best = {name: min(times) for name, times in rounds.items()}
    result = {"n": n, "d": d, "k": k, "max_iter": max_iter, "seconds_per_iteration": best, "rounds": rounds,
              "ratio": best["anykmeans"] / best["faiss"] if "faiss" in best else None}
    print(f"spherical {shape_name(n, d, k)}: "
          + ", ".join(f"{m} {fmt_ms(s)} ms/iter" for m, s in best.items())
          + ("" if result["ratio"] is None else f"; anykmeans/faiss = {result['ratio']:.2f}"), flush=True)
    return result


# --------------------------------------------------------------------------- peak memory
# Each implementation runs in a fresh process: ``cpu.py --memory-worker IMPL``.


def memory_fit_anykmeans(X: np.ndarray, k: int, max_iter: int) -> int:
    model = anykmeans.KMeans(k, n_init=1, max_iter=max_iter, tol=0, random_state=0)
    return model.fit(X).n_iter_


def memory_fit_anykmeans_numpy(X: np.ndarray, k: int, max_iter: int) -> int:
    with numpy_backends():
        return memory_fit_anykmeans(X, k, max_iter)


def memory_fit_sklearn(X: np.ndarray, k: int, max_iter: int) -> int:
    from sklearn.cluster import KMeans

    model = KMeans(k, n_init=1, max_iter=max_iter, tol=0, algorithm="lloyd", random_state=0)
    return model.fit(X).n_iter_


def memory_fit_faiss(X: np.ndarray, k: int, max_iter: int) -> int:
    model = faiss_kmeans(X.shape[0], X.shape[1], k, max_iter)
    model.train(X)  # its own (random) initialisation
    return len(model.iteration_stats)


MEMORY_FITS = {
    "anykmeans": memory_fit_anykmeans,
    "anykmeans-numpy": memory_fit_anykmeans_numpy,
    "sklearn": memory_fit_sklearn,
    "faiss": memory_fit_faiss,
}


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _release_free_heap() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc only
    except (OSError, AttributeError):
        pass


def _reset_peak_rss() -> bool:
    """Reset VmHWM, the process's peak RSS, to its current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def memory_worker(impl: str, n: int, d: int, k: int, max_iter: int) -> dict:
    fit = MEMORY_FITS[impl]
    X = make_data(n, d)
    # Imports, Numba compilation and thread pools, with the same d and k, before the baseline;
    # on a small slice, and with the freed heap returned to the system, so that the fit
    # cannot reuse the warm-up's freed memory without it showing in the RSS.
    fit(X[: max(4 * k, min(WARMUP_ROWS, n // 10))], k, 2)
    gc.collect()
    _release_free_heap()
    baseline = _status_kib("VmRSS")
    # Peaks are lifetime high-water marks: without the reset, a warm-up transient above the
    # baseline would count as the fit's. ru_maxrss is no use here: it also keeps the peak
    # of the parent process that forked this one, and the reset does not clear that.
    reset = _reset_peak_rss()
    hwm_before = _status_kib("VmHWM")
    seconds, n_iter = timed(fit, X, k, max_iter)
    peak = _status_kib("VmHWM")
    ru_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "implementation": impl, "n": n, "d": d, "k": k, "max_iter": max_iter,
        "n_iter": n_iter, "seconds": seconds,
        "x_bytes": X.nbytes,
        "baseline_rss_kib": baseline,
        "peak_rss_kib": peak,
        "hwm_before_fit_kib": hwm_before,
        "ru_maxrss_kib": ru_maxrss,
        "peak_reset": reset,
        # Without a reset the peak is the fit's only if the fit raised the high-water mark.
        "peak_is_the_fits": reset or peak > hwm_before,
        "extra_bytes": (peak - baseline) * 1024,
        "extra_ratio": (peak - baseline) * 1024 / X.nbytes,
    }


def run_memory(shape: tuple[int, int, int], max_iter: int) -> dict:
    n, d, k = shape
    impls = [name for name in MEMORY_FITS if name != "faiss" or faiss is not None]
    results = {}
    for impl in impls:
        command = [sys.executable, __file__, "--memory-worker", impl,
                   "--memory-shape", str(n), str(d), str(k), "--memory-max-iter", str(max_iter)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            results[impl] = {"implementation": impl, "error": done.stderr.strip()[-2000:]}
            print(f"memory {impl}: failed (exit {done.returncode})\n{done.stderr[-2000:]}",
                  file=sys.stderr, flush=True)
            continue
        results[impl] = json.loads(lines[-1])  # the worker's last line is its JSON
        r = results[impl]
        print(f"memory {shape_name(n, d, k)} {impl}: extra peak "
              f"{r['extra_bytes'] / 2**20:.1f} MiB = {r['extra_ratio']:.3f} x X", flush=True)
    return {"n": n, "d": d, "k": k, "max_iter": max_iter,
            "x_bytes": n * d * 4, "implementations": results}


# --------------------------------------------------------------------------- machine


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def auto_backends() -> dict[str, str]:
    """The kernels ``auto`` selects for NumPy input on this machine."""
    try:
        import array_api_compat.numpy

        return {"kernels": anykmeans.backends.select_kernels("auto", array_api_compat.numpy, "cpu").name}
    except Exception as exc:  # noqa: BLE001 - informational only
        return {"error": repr(exc)}


def thread_settings() -> dict:
    settings: dict[str, Any] = {
        "environment": {key: value for key, value in sorted(os.environ.items())
                        if key.startswith(("OMP_", "OPENBLAS_", "MKL_", "NUMBA_", "BLIS_"))},
    }
    threadpoolctl = _optional("threadpoolctl")
    if threadpoolctl is not None:
        keys = ("user_api", "internal_api", "prefix", "version", "num_threads", "threading_layer")
        settings["threadpools"] = [{key: pool.get(key) for key in keys}
                                   for pool in threadpoolctl.threadpool_info()]
    if faiss is not None:
        settings["faiss_omp_threads"] = faiss.omp_get_max_threads()
    if numba is not None:
        settings["numba_threads"] = numba.get_num_threads()
        try:
            settings["numba_threading_layer"] = numba.threading_layer()
        except ValueError:  # no parallel Numba function has run
            settings["numba_threading_layer"] = None
    return settings


def machine() -> dict:
    import sklearn

    versions = {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "faiss-cpu": getattr(faiss, "__version__", None),
        "numba": getattr(numba, "__version__", None),
        "anykmeans": anykmeans.__version__,
    }
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": affinity,
        "platform": platform.platform(),
        "versions": versions,
        "missing": [name for name, module in OPTIONAL.items() if module is None],
        "auto_backends": auto_backends(),
        "threads": thread_settings(),
    }


# --------------------------------------------------------------------------- goals


def goals(results: dict) -> list[dict]:
    rows = []

    def add(goal: str, target: float, measured: float | None) -> None:
        rows.append({"goal": goal, "target": target, "measured": measured,
                     "met": None if measured is None else measured <= target})

    for r in results.get("lloyd", []):
        shape = shape_name(r["n"], r["d"], r["k"])
        ratios = r["ratios"]
        add(f"Lloyd s/iter {shape}: anykmeans / scikit-learn", GOAL_LLOYD_RATIO,
            ratios.get("anykmeans/sklearn"))
        add(f"Lloyd s/iter {shape}: anykmeans / FAISS", GOAL_LLOYD_RATIO,
            ratios.get("anykmeans/faiss"))
        if r["d"] >= 32:
            add(f"Lloyd s/iter {shape}: anykmeans-numpy / scikit-learn", GOAL_NUMPY_RATIO,
                ratios.get("anykmeans-numpy/sklearn"))
    if "kmeanspp" in results:
        r = results["kmeanspp"]
        add(f"k-means++ time {shape_name(r['n'], r['d'], r['k'])}: anykmeans / scikit-learn",
            GOAL_KMEANSPP_RATIO, r["ratio"])
    if "memory" in results:
        r = results["memory"]
        auto = r["implementations"].get("anykmeans", {})
        add(f"extra peak memory of a fit {shape_name(r['n'], r['d'], r['k'])}: anykmeans / X",
            GOAL_MEMORY_RATIO, auto.get("extra_ratio"))
    for r in results.get("minibatch", []):
        add(f"mini-batch s/step {shape_name(r['n'], r['d'], r['k'])}, batch {r['batch_size']}: "
            "anykmeans / scikit-learn", GOAL_MINIBATCH_RATIO, r["ratio"])
    return rows


# --------------------------------------------------------------------------- output


def shape_name(n: int, d: int, k: int) -> str:
    return f"({count(n)}, {d}, {k})"


def count(n: int) -> str:
    for unit, suffix in ((1_000_000, "M"), (1_000, "k")):
        if n >= unit and n % unit == 0:
            return f"{n // unit}{suffix}"
    return f"{n:,}"


def fmt_ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}" if ms >= 1 else f"{ms:.3f}"


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "–" if value is None else format(value, spec)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table: the first column left-aligned, the others right-aligned."""
    rule = "|---|" + "---:|" * (len(header) - 1)
    return ["| " + " | ".join(header) + " |", rule, *("| " + " | ".join(r) + " |" for r in rows)]


def _settings(results: dict, part: str) -> dict:
    return results.get("part_settings", {}).get(part, results["settings"])


def _parts_by_command(results: dict) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for part, command in results.get("part_commands", {}).items():
        grouped.setdefault(command, []).append(part)
    return grouped


def markdown(results: dict) -> str:
    info, sgemm = results["machine"], results.get("sgemm")
    versions = ", ".join(f"{name} {v}" for name, v in info["versions"].items() if v)
    threads = info["threads"]
    pools = "; ".join(
        f"{p['internal_api']}{' ' + p['version'] if p['version'] else ''} "
        f"({p['prefix']}, {p['num_threads']} threads)"
        for p in threads.get("threadpools", [])
    )
    backends = info["auto_backends"]
    lines = [
        "# CPU benchmark: anykmeans, scikit-learn, FAISS",
        "",
        f"Command: `{results['command']}`  ",
        *(f"Kept from an earlier run of `{command}`: {', '.join(parts)}  "
          for command, parts in _parts_by_command(results).items() if command != results["command"]),
        f"Machine: {info['cpu']}, {info['cpu_count']} cores "
        f"({info['usable_cores']} usable), {info['platform']}  ",
        f"Versions: {versions}  ",
        f"anykmeans `auto` kernels: `{backends.get('kernels')}`  ",
        f"Threads (defaults): {pools or 'threadpoolctl not installed'}"
        + (f"; FAISS OpenMP {threads['faiss_omp_threads']}"
           if "faiss_omp_threads" in threads else "")
        + (f"; Numba {threads['numba_threads']}" if "numba_threads" in threads else "")
        + "  ",
    ]
    if sgemm:
        lines.append(f"SGEMM (NumPy float32 {sgemm['size']}²): {sgemm['gflops']:.1f} GFLOP/s  ")
    if info["missing"]:
        lines.append(f"Not installed (skipped): {', '.join(info['missing'])}  ")
    if results["quick"]:
        lines += ["", f"**Quick run**: every n divided by {QUICK_FACTOR}; the numbers only show "
                  "that the benchmark works and are not comparable with the goals."]
    lines.append("")

    if "lloyd" in results:
        rows = results["lloyd"]
        names = list(rows[0]["seconds_per_iteration"])
        ratio_names = [f"{a}/{b}" for a, b in RATIOS if f"{a}/{b}" in rows[0]["ratios"]]
        lines += [
            "## Lloyd iterations",
            "",
            f"float32, the same data and initial centers for all, `tol=0`, "
            f"`max_iter={_settings(results, 'lloyd')['max_iter']}`; seconds per iteration = fit time / "
            f"iterations run, best of {_settings(results, 'lloyd')['repeat']} interleaved rounds after a "
            "warm-up fit. "
            + "; ".join(f"`{m}`: {LLOYD_DESCRIPTIONS[m]}" for m in names) + ".",
            "",
            *table(["shape (n, d, k)", *(f"{m} ms/iter" for m in names), *ratio_names],
                   [[shape_name(r["n"], r["d"], r["k"]),
                     *(fmt_ms(r["seconds_per_iteration"][m]) for m in names),
                     *(fmt(r["ratios"][q]) for q in ratio_names)] for r in rows]),
            "",
            "Achieved rate of the distance GEMM (2·n·k·d flop per iteration), GFLOP/s and "
            "percentage of the measured SGEMM rate:",
            "",
            *table(["shape (n, d, k)", *names],
                   [[shape_name(r["n"], r["d"], r["k"]),
                     *(f"{r['gflops'][m]:.1f} ({r['fraction_of_sgemm'][m]:.0%})" for m in names)]
                    for r in rows]),
            "",
        ]
        early = [f"{m} at {shape_name(r['n'], r['d'], r['k'])} ran {it} iterations"
                 for r in rows for m, it in r["converged_early"].items()]
        if early:
            lines += [f"**Warning**: converged before `max_iter`: {'; '.join(early)}.", ""]

    if "kmeanspp" in results:
        r = results["kmeanspp"]
        first, last = r["seeds"][0], r["seeds"][-1]
        seeds = f"seed {first}" if first == last else f"seeds s = {first}–{last}"
        lines += [
            "## k-means++ initialisation",
            "",
            f"`anykmeans.kmeans_plusplus(X, {r['k']}, random_state=s)` against "
            f"`sklearn.cluster.kmeans_plusplus`, {seeds}, "
            "interleaved, best time; potential = sum of squared distances to the nearest seed, "
            "mean over the seeds.",
            "",
            *table(["shape (n, d, k)", "anykmeans ms", "sklearn ms", "anykmeans / sklearn",
                    "potential anykmeans / sklearn"],
                   [[shape_name(r["n"], r["d"], r["k"]), fmt_ms(r["seconds"]["anykmeans"]),
                     fmt_ms(r["seconds"]["sklearn"]), fmt(r["ratio"]),
                     fmt(r["potential_ratio"], ".3f")]]),
            "",
        ]

    if "fit" in results:
        rows = results["fit"]
        lines += [
            "## Full default fit",
            "",
            "`KMeans(k, random_state=0).fit(X)` with the defaults of both (k-means++, "
            "`n_init=\"auto\"`, `tol=1e-4`, to convergence); best of the interleaved rounds.",
            "",
            *table(["shape (n, d, k)", "anykmeans s", "iters", "sklearn s", "iters",
                    "anykmeans / sklearn", "inertia anykmeans / sklearn"],
                   [[shape_name(r["n"], r["d"], r["k"]),
                     f"{r['seconds']['anykmeans']:.3f}", str(r["n_iter"]["anykmeans"]),
                     f"{r['seconds']['sklearn']:.3f}", str(r["n_iter"]["sklearn"]),
                     fmt(r["ratio"]), fmt(r["inertia_ratio"], ".4f")] for r in rows]),
            "",
        ]

    if "memory" in results:
        r = results["memory"]
        impls = r["implementations"]
        body = []
        for name, m in impls.items():
            if "error" in m:
                body.append([name, "failed", "", "", "", ""])
                continue
            bound = "" if m["peak_is_the_fits"] else " (upper bound)"
            body.append([name, f"{m['baseline_rss_kib'] / 1024:.0f}",
                         f"{m['peak_rss_kib'] / 1024:.0f}", f"{m['extra_bytes'] / 2**20:.1f}",
                         f"{m['extra_ratio']:.3f}{bound}", str(m["n_iter"])])
        lines += [
            "## Extra peak memory of a fit",
            "",
            f"{shape_name(r['n'], r['d'], r['k'])}, X = {r['x_bytes'] / 2**20:.3g} MiB float32; "
            f"one fit with `max_iter={r['max_iter']}`, `tol=0`, `n_init=1` (FAISS: `niter="
            f"{r['max_iter']}`, its own initialisation), each in a fresh process. Baseline = "
            "resident set size after the data, the imports and a small warm-up fit; peak = "
            "the high-water mark `VmHWM` after the fit, reset to the baseline just before it.",
            "",
            *table(["implementation", "baseline MiB", "peak MiB", "extra MiB",
                    "extra / X", "iters"], body),
            "",
        ]

    if "minibatch" in results:
        rows = results["minibatch"]
        lines += [
            "## Mini-batch steps",
            "",
            "`MiniBatchKMeans` against scikit-learn's from the same initial centers, float32; the "
            "time of a step is the slope between fits of one and two epochs (`compute_labels="
            "False`, `max_no_improvement=None`, `reassignment_ratio=0`), best of "
            f"{_settings(results, 'minibatch')['repeat']} interleaved rounds.",
            "",
            *table(["shape (n, d, k)", "batch", "anykmeans ms/step", "sklearn ms/step",
                    "anykmeans / sklearn"],
                   [[shape_name(r["n"], r["d"], r["k"]), str(r["batch_size"]),
                     fmt_ms(r["seconds_per_step"]["anykmeans"]), fmt_ms(r["seconds_per_step"]["sklearn"]),
                     fmt(r["ratio"])] for r in rows]),
            "",
        ]

    if "spherical" in results:
        r = results["spherical"]
        names = list(r["seconds_per_iteration"])
        lines += [
            "## Spherical k-means",
            "",
            "`KMeans(metric=\"cosine\")` against `faiss.Kmeans(spherical=True)` (no subsampling) "
            f"from the same unit initial centers, `tol=0`, `max_iter={r['max_iter']}`; FAISS is "
            "given unit rows, anykmeans the raw rows (its normalisation is in its time). Seconds "
            f"per iteration = fit time / iterations, best of {_settings(results, 'spherical')['repeat']} "
            "interleaved rounds.",
            "",
            *table(["shape (n, d, k)", *(f"{m} ms/iter" for m in names), "anykmeans / faiss"],
                   [[shape_name(r["n"], r["d"], r["k"]),
                     *(fmt_ms(r["seconds_per_iteration"][m]) for m in names), fmt(r["ratio"])]]),
            "",
        ]

    if results.get("goals"):
        lines += [
            "## Goals",
            "",
            *table(["goal", "target", "measured", "met"],
                   [[g["goal"], f"≤ {g['target']:.2f}", fmt(g["measured"]),
                     "–" if g["met"] is None else "yes" if g["met"] else "**no**"]
                    for g in results["goals"]]),
            "",
        ]
    return "\n".join(lines)


def merge_earlier(results: dict, out: Path) -> dict:
    """With ``--only``, the parts not run now are kept from the earlier ``cpu.json`` (each part
    remembers the command that measured it), so that one part can be rerun on its own."""
    commands = {part: results["command"] for part in results["settings"]["parts"]}
    settings = dict.fromkeys(commands, results["settings"])
    earlier_file = out / "cpu.json"
    if earlier_file.exists() and not results["quick"]:
        earlier = json.loads(earlier_file.read_text())
        if not earlier.get("quick"):
            for part in PARTS:
                if part not in commands and part in earlier:
                    results[part] = earlier[part]
                    commands[part] = earlier.get("part_commands", {}).get(part, earlier["command"])
                    settings[part] = earlier.get("part_settings", {}).get(part, earlier["settings"])
            if "sgemm" not in results and "sgemm" in earlier:
                results["sgemm"] = earlier["sgemm"]
    results["part_commands"], results["part_settings"] = commands, settings
    results["goals"] = goals(results)
    return results


def write(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "cpu.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "cpu.md").write_text(markdown(results))
    print(f"wrote {out / 'cpu.json'} and {out / 'cpu.md'}", flush=True)


# --------------------------------------------------------------------------- main

PARTS = ("lloyd", "kmeanspp", "fit", "memory", "minibatch", "spherical")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3,
                        help="interleaved rounds; the best is kept (default 3)")
    parser.add_argument("--max-iter", type=int, default=None,
                        help="Lloyd iterations per timed fit (default 10; 2 with --quick)")
    parser.add_argument("--large", action="store_true",
                        help=f"add the shape {shape_name(*LARGE_SHAPE)} to the Lloyd shapes")
    parser.add_argument("--quick", action="store_true",
                        help=f"divide every n by {QUICK_FACTOR}, 2 iterations, small SGEMM")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS),
                        help="run only these parts (default: all)")
    parser.add_argument("--skip-fit", action="store_true", help="skip the full default fit")
    parser.add_argument("--skip-memory", action="store_true", help="skip the memory workers")
    parser.add_argument("--fit-all", action="store_true",
                        help="full default fit on every Lloyd shape, not only "
                        f"{shape_name(*FIT_SHAPE)} (several minutes more)")
    parser.add_argument("--memory-shape", nargs=3, type=int, metavar=("N", "D", "K"),
                        default=None, help=f"shape of the memory test (default "
                        f"{shape_name(*MEMORY_SHAPE)})")
    parser.add_argument("--memory-max-iter", type=int, default=MEMORY_MAX_ITER,
                        help=f"Lloyd iterations of the memory test (default {MEMORY_MAX_ITER})")
    parser.add_argument("--sgemm-size", type=int, default=None,
                        help=f"side of the SGEMM matrices (default {SGEMM_SIZE}; "
                        "1024 with --quick)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results",
                        help="folder for cpu.json and cpu.md (default benchmarks/results)")
    parser.add_argument("--memory-worker", choices=list(MEMORY_FITS), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def shrink(shape: tuple[int, int, int], quick: bool) -> tuple[int, int, int]:
    n, d, k = shape
    return (max(n // QUICK_FACTOR, 2 * k), d, k) if quick else shape


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.memory_worker:
        n, d, k = args.memory_shape
        print(json.dumps(memory_worker(args.memory_worker, n, d, k, args.memory_max_iter)))
        return

    quick = args.quick
    max_iter = args.max_iter if args.max_iter is not None else 2 if quick else 10
    parts = [p for p in args.only
             if not (p == "fit" and args.skip_fit) and not (p == "memory" and args.skip_memory)]
    shapes = [shrink(s, quick) for s in SHAPES + ([LARGE_SHAPE] if args.large else [])]
    missing = [name for name, module in OPTIONAL.items() if module is None]
    if missing:
        print(f"not installed, skipped: {', '.join(missing)}", flush=True)

    results: dict[str, Any] = {
        "command": shlex.join(["python", "benchmarks/cpu.py", *sys.argv[1:]]),
        "quick": quick,
        "settings": {"repeat": args.repeat, "max_iter": max_iter, "parts": parts},
    }
    if "lloyd" in parts:
        sgemm = measure_sgemm(args.sgemm_size or (1024 if quick else SGEMM_SIZE), args.repeat)
        results["sgemm"] = sgemm
        results["lloyd"] = run_lloyd(shapes, args.repeat, max_iter, sgemm["gflops"])
    if "kmeanspp" in parts:
        results["kmeanspp"] = run_kmeanspp(shrink(KMEANSPP_SHAPE, quick), args.repeat)
    if "fit" in parts:
        fit_shapes = shapes if args.fit_all else [shrink(FIT_SHAPE, quick)]
        results["fit"] = run_fit(fit_shapes, args.repeat)
    if "memory" in parts:
        shape = tuple(args.memory_shape) if args.memory_shape else shrink(MEMORY_SHAPE, quick)
        results["memory"] = run_memory(shape, args.memory_max_iter)
    if "minibatch" in parts:
        results["minibatch"] = run_minibatch(shrink(MINIBATCH_SHAPE, quick), args.repeat)
    if "spherical" in parts:
        results["spherical"] = run_spherical(shrink(SPHERICAL_SHAPE, quick), args.repeat, max_iter)
    results = merge_earlier(results, args.out)
    # Read last, once every library has loaded its thread pools; listed first in the JSON.
    results = {"command": results.pop("command"), "machine": machine(), **results}
    write(results, args.out)


if __name__ == "__main__":
    main()
