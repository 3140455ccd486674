"""Command line: ``anykmeans demo`` clusters a built-in data set of generated blobs;
``anykmeans info`` prints versions, the visible CUDA devices, the settings and the backends."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np

from . import __version__, backends
from ._arrays import namespace_and_device, namespace_name
from ._config import check_device, config_context, get_config
from ._info import show_config
from ._kmeans import KMeans
from ._placement import resolve_compute_placement
from ._transfers import to_host_numpy


def make_blobs(
    n_samples: int, n_features: int, n_blobs: int, *, seed: int, dtype: str
) -> tuple[np.ndarray, np.ndarray]:
    """The demo data: overlapping isotropic Gaussian blobs (σ = 4) around centers drawn in a [-10, 10] box."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-10.0, 10.0, size=(n_blobs, n_features))
    truth = rng.integers(n_blobs, size=n_samples)
    X = centers[truth] + rng.normal(scale=4.0, size=(n_samples, n_features))
    return X.astype(dtype), truth


def _demo(args: argparse.Namespace) -> int:
    X, truth = make_blobs(
        args.n_samples, args.n_features, args.n_clusters, seed=args.seed, dtype=args.dtype
    )
    with config_context(device=args.device):
        # Resolved without warning: the fit below warns (or raises) itself if it falls back.
        config = get_config()
        (xp, device), fallback_reason = resolve_compute_placement(*namespace_and_device(X), asked=config["device"])
        kernels = backends.select_kernels(config["kernels"], xp, device)
        model = KMeans(n_clusters=args.n_clusters, random_state=args.seed)
        start = time.perf_counter()
        try:
            model.fit(X)
        except RuntimeError as exc:
            print(f"anykmeans demo: error: {exc}", file=sys.stderr)
            return 1
        seconds = time.perf_counter() - start

    labels = to_host_numpy(model.labels_)
    sizes = np.bincount(labels, minlength=args.n_clusters)
    # Each found cluster's majority true blob: how well the blobs were recovered.
    agreement = sum(
        np.bincount(truth[labels == j], minlength=args.n_clusters).max()
        for j in range(args.n_clusters)
    ) / args.n_samples

    print(f"anykmeans {__version__} demo")
    print(
        f"data       {args.n_samples:,} generated points × {args.n_features} features "
        f"({args.dtype}), {args.n_clusters} true blobs, seed {args.seed}"
    )
    fallback = f" (device {args.device!r} unavailable: {fallback_reason})" if fallback_reason else ""
    print(f"placement  namespace {namespace_name(xp)}, device {device}{fallback}")
    print(f"kernels    {kernels.name!r}")
    print(f"fit        {model!r}")
    print(f"time       {seconds:.3f} s")
    print(f"iterations {model.n_iter_}")
    print(f"inertia    {model.inertia_:.6g}")
    print(f"recovered  {agreement:.2%} of points in their true blob's cluster")
    print("cluster sizes")
    for j, size in enumerate(sizes):
        print(f"  {j:>3}  {size:>9,}  {'#' * int(round(40 * size / sizes.max()))}")
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _device(text: str) -> str:
    try:
        return check_device(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="anykmeans", description="k-means on any array library")
    parser.add_argument("--version", action="version", version=f"anykmeans {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="cluster a built-in data set of generated blobs")
    demo.add_argument("--n-samples", type=_positive_int, default=200_000)
    demo.add_argument("--n-features", type=_positive_int, default=16)
    demo.add_argument("--n-clusters", type=_positive_int, default=12)
    demo.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    demo.add_argument(
        "--device", type=_device, default="auto", metavar="{auto,cpu,cuda,cuda:N}",
        help="where the work runs (default: auto, where the data lives: the CPU)",
    )
    demo.add_argument("--seed", type=int, default=0)
    commands.add_parser(
        "info", help="print versions, the visible CUDA devices, the settings and the backends"
    )
    args = parser.parse_args(argv)
    if args.command == "info":
        show_config()
        return 0
    if args.n_samples < args.n_clusters:
        parser.error("--n-samples must be at least --n-clusters")
    return _demo(args)


if __name__ == "__main__":
    sys.exit(main())
