"""The ``anykmeans`` command line (argparse: no dependency beyond the library's own).

``anykmeans fit`` clusters a data file (``.csv``, ``.npy``, ``.parquet``) and saves the model;
``anykmeans predict`` labels a data file with a saved model; ``anykmeans bench`` times
anykmeans against scikit-learn (and on the GPU when there is one); ``anykmeans demo``
clusters a built-in data set of generated blobs; ``anykmeans info`` prints versions, the
visible CUDA devices, the settings and the backends.

A user's mistake (a bad file or model, a wrong number of features, a bad option value) ends
the command with status 2 and one message on stderr, after the subcommand's usage line,
never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from . import __version__, backends
from ._arrays import namespace_and_device, namespace_name
from ._config import check_device, config_context, get_config
from ._info import show_config
from ._exceptions import ConvergenceWarning, DeviceFallbackWarning
from ._io import SUPPORTED, DataFileError, read_data
from ._kmeans import KMeans
from ._persistence import load
from ._placement import cuda_devices, resolve_compute_placement
from ._transfers import to_host_numpy

#: The demo's defaults. On these overlapping blobs one k-means++ start stops in a local minimum
#: (blobs merged and split, 75-92 % of the points recovered) on about 4 seeds in 10, as
#: scikit-learn's does; the best of 10 starts recovered 99.0-99.9 % (what the overlap allows) on
#: each of the 70 seeds tried, the best of 5 fell short on 2 of them.
N_SAMPLES = 200_000
N_FEATURES = 16
N_CLUSTERS = 12
N_INIT = 10
SEED = 0
#: Rows of the warm-up fit that takes the one-off cost of the compiled kernels out of the timing.
WARM_UP_ROWS = 500


def make_blobs(
    n_samples: int, n_features: int, n_blobs: int, *, seed: int, dtype: str
) -> tuple[np.ndarray, np.ndarray]:
    """The demo data: overlapping isotropic Gaussian blobs (σ = 4) around centers drawn in a [-10, 10] box."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-10.0, 10.0, size=(n_blobs, n_features))
    truth = rng.integers(n_blobs, size=n_samples)
    X = centers[truth] + rng.normal(scale=4.0, size=(n_samples, n_features))
    return X.astype(dtype), truth


def recovered_fraction(labels: np.ndarray, truth: np.ndarray, n_clusters: int) -> float:
    """How well the blobs were recovered: the fraction of the points that belong to their
    cluster's majority true blob."""
    return sum(
        int(np.bincount(truth[labels == j], minlength=n_clusters).max())
        for j in range(n_clusters)
    ) / len(truth)


def _demo(args: argparse.Namespace) -> int:
    X, truth = make_blobs(
        args.n_samples, args.n_features, args.n_clusters, seed=args.seed, dtype=args.dtype
    )
    # The warm-up: the same dtype, features, placement and kernels on a few rows, so that the
    # first use of the kernels (compiling them, or loading them from the disk cache) is timed
    # apart from the fit.
    warm_rows = min(args.n_samples, WARM_UP_ROWS)
    warm_up = KMeans(n_clusters=min(args.n_clusters, warm_rows), random_state=args.seed)
    with config_context(device=args.device):
        # Resolved without warning: the fit below warns (or raises) itself if it falls back.
        config = get_config()
        (xp, device), fallback_reason = resolve_compute_placement(*namespace_and_device(X), asked=config["device"])
        kernels = backends.select_kernels(config["kernels"], xp, device)
        model = KMeans(n_clusters=args.n_clusters, n_init=args.n_init, random_state=args.seed)
        try:
            start = time.perf_counter()
            with warnings.catch_warnings():
                # Its results are thrown away: a few rows may hold fewer distinct clusters.
                warnings.simplefilter("ignore", ConvergenceWarning)
                warm_up.fit(X[:warm_rows])
            compile_seconds = time.perf_counter() - start
            start = time.perf_counter()
            model.fit(X)
            seconds = time.perf_counter() - start
        except RuntimeError as exc:
            print(f"anykmeans demo: error: {exc}", file=sys.stderr)
            return 1

    labels = to_host_numpy(model.labels_)
    sizes = np.bincount(labels, minlength=args.n_clusters)
    agreement = recovered_fraction(labels, truth, args.n_clusters)

    print(f"anykmeans {__version__} demo")
    print(
        f"data       {args.n_samples:,} generated points × {args.n_features} features "
        f"({args.dtype}), {args.n_clusters} true blobs, seed {args.seed}"
    )
    fallback = f" (device {args.device!r} unavailable: {fallback_reason})" if fallback_reason else ""
    print(f"placement  namespace {namespace_name(xp)}, device {device}{fallback}")
    print(f"kernels    {kernels.name!r}")
    print(f"fit        {model!r}")
    print(f"compile    {compile_seconds:.3f} s (warm-up fit on {warm_rows:,} rows: first use of the kernels)")
    starts = "1 k-means++ start" if args.n_init == 1 else f"{args.n_init} k-means++ starts, the best kept"
    print(f"time       {seconds:.3f} s ({starts}; compile excluded)")
    print(f"iterations {model.n_iter_}")
    print(f"inertia    {model.inertia_:.6g}")
    print(f"recovered  {agreement:.2%} of points in their true blob's cluster")
    print("cluster sizes")
    for j, size in enumerate(sizes):
        print(f"  {j:>3}  {size:>9,}  {'#' * int(round(40 * size / sizes.max()))}")
    return 0


# ------------------------------------------------------------------------- fit and predict

#: Clusters listed one per line in a summary; more are summed up as smallest, median, largest.
MAX_LISTED_CLUSTERS = 20


def _check_output_path(parser: argparse.ArgumentParser, option: str, path: str | None) -> None:
    """Refuse an output path that cannot be written before the (possibly long) fit runs."""
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        parser.error(f"argument {option}: the folder {folder} of {path} does not exist")
    if os.path.isdir(path):
        parser.error(f"argument {option}: {path} is a folder: expected a file name")


def _read(parser: argparse.ArgumentParser, path: str, dtype: str) -> tuple[np.ndarray, list[str] | None]:
    try:
        return read_data(path, dtype=dtype)
    except (DataFileError, ImportError) as exc:
        parser.error(str(exc))


def _data_line(path: str, X: np.ndarray, columns: list[str] | None) -> str:
    n, d = X.shape
    line = f"{path}: {n:,} samples × {d} feature{'s' * (d != 1)} ({X.dtype})"
    if columns is not None:
        shown = ", ".join(columns[:8]) + (", …" if len(columns) > 8 else "")
        line += f", column names from its header line: {shown}"
    return line


@contextlib.contextmanager
def _warnings_as_messages(command: str) -> Iterator[None]:
    """Warnings of the fit (fewer distinct clusters, a CUDA device fallen back from) as one
    line each on stderr, not Python's file-and-line form, which points into the library."""
    with warnings.catch_warnings(record=True) as caught:
        # Recorded each time, whatever the filters say (only anykmeans' own warnings).
        warnings.simplefilter("always", ConvergenceWarning)
        warnings.simplefilter("always", DeviceFallbackWarning)
        yield
    for warning in caught:
        print(f"anykmeans {command}: warning: {warning.message}", file=sys.stderr)


def _print_cluster_sizes(sizes: Sequence[int]) -> None:
    sizes = np.asarray(sizes)
    if len(sizes) > MAX_LISTED_CLUSTERS:
        print(
            f"cluster sizes  smallest {sizes.min():,}, median {int(np.median(sizes)):,}, "
            f"largest {sizes.max():,} ({np.count_nonzero(sizes == 0)} empty)"
        )
        return
    print("cluster sizes")
    largest = max(int(sizes.max()), 1)
    for j, size in enumerate(sizes):
        print(f"  {j:>3}  {size:>9,}  {'#' * int(round(40 * size / largest))}")


def _write_labels(parser: argparse.ArgumentParser, path: str, labels: np.ndarray) -> None:
    try:
        # Through a file object: numpy.save would add ".npy" to a name without it.
        with open(path, "wb") as file:
            np.save(file, labels)
    except OSError as exc:
        parser.error(f"cannot write the labels to {path}: {exc.strerror or exc}")


def _fit(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    for option, path in (("--out", args.out), ("--labels", args.labels)):
        _check_output_path(parser, option, path)
    X, columns = _read(parser, args.data, args.dtype)
    n_samples = X.shape[0]
    if args.n_clusters > n_samples:
        parser.error(f"-k {args.n_clusters} is more than the {n_samples} samples in {args.data}")
    model = KMeans(
        n_clusters=args.n_clusters, init=args.init, n_init=args.n_init, max_iter=args.max_iter,
        tol=args.tol, random_state=args.seed, metric=args.metric,
    )
    with config_context(device=args.device, progress=args.progress):
        try:
            with _warnings_as_messages("fit"):
                model.fit(X)
        # The CUDA device asked for is missing and fallback='raise'; or the data cannot be
        # clustered so (samples of zero length with --metric cosine).
        except (RuntimeError, ValueError) as exc:
            print(f"anykmeans fit: error: {exc}", file=sys.stderr)
            return 1
    stats = model._fit_stats
    n_runs = len(model.inertia_history_)
    print(f"anykmeans {__version__} fit")
    print(f"data        {_data_line(args.data, X, columns)}")
    print(f"model       {model!r}")
    print(f"ran on      namespace {stats['namespace']}, device {stats['device']}, kernels {stats['kernels']!r}")
    kept = f" (run {stats['best_run'] + 1} of {n_runs} kept: the lowest inertia)" if n_runs > 1 else ""
    print(f"iterations  {model.n_iter_}{kept}")
    print(f"inertia     {model.inertia_:.6g}")
    print(f"time        {stats['seconds']:.3f} s")
    _print_cluster_sizes(stats["cluster_sizes"])
    if args.out is not None:
        try:
            model.save(args.out)
        except OSError as exc:
            parser.error(f"cannot write the model to {args.out}: {exc.strerror or exc}")
        print(f"model       saved to {args.out}")
    if args.labels is not None:
        _write_labels(parser, args.labels, to_host_numpy(model.labels_))
        print(f"labels      saved to {args.labels}")
    return 0


def _load_model(parser: argparse.ArgumentParser, path: str) -> KMeans:
    try:
        return load(path)
    except FileNotFoundError:
        parser.error(f"{path}: no such model file")
    except ValueError as exc:  # not an anykmeans model, damaged, or a newer format
        parser.error(str(exc))
    except OSError as exc:
        parser.error(f"cannot read the model {path}: {exc.strerror or exc}")


def _predict(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    _check_output_path(parser, "--out", args.out)
    model = _load_model(parser, args.model)
    # The model's dtype: the distances are those the fit computed, so that the training data
    # gets the training labels back.
    dtype = str(model.cluster_centers_.dtype)
    X, columns = _read(parser, args.data, dtype if dtype in ("float32", "float64") else "float64")
    if X.shape[1] != model.n_features_in_:
        parser.error(
            f"{args.data} has {X.shape[1]} feature{'s' * (X.shape[1] != 1)} (columns) but the model "
            f"in {args.model} was fitted on {model.n_features_in_}"
        )
    with config_context(device=args.device):
        try:
            with _warnings_as_messages("predict"):
                labels = to_host_numpy(model.predict(X))
        except RuntimeError as exc:
            print(f"anykmeans predict: error: {exc}", file=sys.stderr)
            return 1
    print(f"anykmeans {__version__} predict")
    print(f"model       {args.model}: {model!r}, {model.n_features_in_} features")
    print(f"data        {_data_line(args.data, X, columns)}")
    _print_cluster_sizes(np.bincount(labels, minlength=model.n_clusters))
    if args.out is not None:
        _write_labels(parser, args.out, labels)
        print(f"labels      saved to {args.out}")
    return 0


# ------------------------------------------------------------------------------------ bench

#: ``anykmeans bench``'s problem: (rows, features, clusters), and with ``--quick``.
BENCH_SIZE = (500_000, 32, 32)
QUICK_SIZE = (20_000, 16, 16)
BENCH_ITERATIONS = 10
BENCH_REPEATS = 3


def _best_of(fit: Callable[[], Any], repeats: int, synchronize: Callable[[], None]) -> tuple[float, Any]:
    """The shortest of ``repeats`` timed calls of ``fit`` after an untimed warm-up (compiling
    kernels, loading libraries), and the last model."""
    model = fit()
    synchronize()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        model = fit()
        synchronize()
        best = min(best, time.perf_counter() - start)
    return best, model


def _bench(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    n, d, k = (
        size if size is not None else default
        for size, default in zip((args.n, args.d, args.k), QUICK_SIZE if args.quick else BENCH_SIZE)
    )
    if k > n:
        parser.error(f"--k must be at most --n (got --k {k}, --n {n})")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d), dtype=np.float32)
    init = X[rng.choice(n, size=k, replace=False)]
    # tol=0 with a fixed max_iter: both libraries run the same Lloyd iterations from the same
    # centers (fewer only if the labels stop changing), so that the time per iteration compares.
    params = dict(n_clusters=k, init=init, n_init=1, max_iter=BENCH_ITERATIONS, tol=0.0)
    no_sync = lambda: None  # noqa: E731 - the CPU runs are synchronous

    rows = []  # (runtime, seconds, model)
    with config_context(device="cpu"):  # the CPU row, whatever ANYKMEANS_DEVICE says
        seconds, model = _best_of(lambda: KMeans(**params).fit(X), BENCH_REPEATS, no_sync)
    stats = model._fit_stats
    rows.append((f"anykmeans ({stats['namespace']}, {stats['device']}, {stats['kernels']})", seconds, model))
    try:
        import sklearn
        from sklearn.cluster import KMeans as SklearnKMeans
    except ImportError:
        sklearn_note = "scikit-learn is not installed (pip install scikit-learn): no comparison"
        reference = None
    else:
        seconds, model = _best_of(lambda: SklearnKMeans(**params).fit(X), BENCH_REPEATS, no_sync)
        rows.append((f"scikit-learn {sklearn.__version__}", seconds, model))
        reference = seconds / model.n_iter_
        sklearn_note = None
    cupy, _, reason = cuda_devices()
    if reason is None:
        X_gpu, init_gpu = cupy.asarray(X), cupy.asarray(init)
        gpu_params = {**params, "init": init_gpu}
        synchronize = cupy.cuda.get_current_stream().synchronize
        with config_context(device="cuda"):
            seconds, model = _best_of(lambda: KMeans(**gpu_params).fit(X_gpu), BENCH_REPEATS, synchronize)
        stats = model._fit_stats
        rows.append((f"anykmeans ({stats['namespace']}, {stats['device']}, {stats['kernels']})", seconds, model))

    print(f"anykmeans {__version__} bench")
    print(
        f"data        {n:,} random float32 points × {d} features, k={k}; {BENCH_ITERATIONS} Lloyd "
        f"iterations (tol=0) from the same initial centers; best of {BENCH_REPEATS} after a warm-up"
    )
    width = max(len(name) for name, _, _ in rows)
    print(f"{'':<{width}}  iterations     fit (s)  ms/iteration  inertia       vs scikit-learn")
    for name, seconds, model in rows:
        per_iteration = seconds / model.n_iter_
        ratio = "-" if reference is None else f"{reference / per_iteration:.2f}x"
        print(
            f"{name:<{width}}  {model.n_iter_:>10}  {seconds:>10.4f}  {1000 * per_iteration:>12.3f}  "
            f"{model.inertia_:<12.6g}  {ratio:>15}"
        )
    print("vs scikit-learn: scikit-learn's time per iteration / this one's (above 1: faster)")
    if sklearn_note:
        print(sklearn_note)
    if reason is not None:
        print(f"GPU: none found ({reason})")
    return 0


# ----------------------------------------------------------------------------- the parser


def _integer_at_least(minimum: int, what: str) -> Callable[[str], int]:
    """An argparse type: an integer ≥ ``minimum``. argparse puts the option's name before the
    message (``argument --n-samples: expected a positive integer, got '1e5'``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = what  # what argparse would name the type, should it ever do so
    return parse


_positive_int = _integer_at_least(1, "a positive integer")
_non_negative_int = _integer_at_least(0, "a non-negative integer")


def _n_init(text: str) -> str | int:
    if text == "auto":
        return text
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a positive integer, got {text!r}") from None


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}")
    return value


def _device(text: str) -> str:
    try:
        return check_device(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's help ends with its default, except where the help already states it
    (a default that depends on another option) or the option is required."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        if "(default:" in help_text or action.required:
            return help_text
        return super()._get_help_string(action)


_DEVICE_HELP = "where the work runs: auto is where the data lives, the CPU for data read from a file"


def _add_device(parser: argparse.ArgumentParser, help_text: str = _DEVICE_HELP) -> None:
    parser.add_argument("--device", type=_device, default="auto", metavar="{auto,cpu,cuda,cuda:N}", help=help_text)


def _add_demo(commands: Any, formatter: type) -> argparse.ArgumentParser:
    demo = commands.add_parser(
        "demo",
        help="cluster a built-in data set of generated blobs",
        description=(
            "Cluster overlapping Gaussian blobs (σ = 4, centers drawn in a [-10, 10] box) and "
            "print the placement, the kernels, the one-off compile time, the fit time and how "
            "well the blobs were recovered."
        ),
        formatter_class=formatter,
    )
    demo.add_argument("--n-samples", type=_positive_int, default=N_SAMPLES, metavar="N",
                      help="number of generated points")
    demo.add_argument("--n-features", type=_positive_int, default=N_FEATURES, metavar="D",
                      help="number of features of each point")
    demo.add_argument("--n-clusters", type=_positive_int, default=N_CLUSTERS, metavar="K",
                      help="number of true blobs, and of clusters to find")
    demo.add_argument(
        "--n-init", type=_positive_int, default=N_INIT, metavar="N",
        help="number of k-means runs, each from its own k-means++ seeding; the one with the "
        "lowest inertia is kept (a single run can stop in a local minimum, blobs merged and split)",
    )
    demo.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                      help="floating-point type of the data")
    _add_device(demo, "where the work runs: auto is where the data lives, the CPU for this NumPy data")
    demo.add_argument("--seed", type=_non_negative_int, default=SEED, metavar="S",
                      help="seed of the data and of the k-means++ starts")
    return demo


_DATA_HELP = (
    f"the samples, one per row: a {', '.join(SUPPORTED[:-1])} or {SUPPORTED[-1]} file (CSV: comma-separated numbers, "
    "one sample per line, with an optional header line of column names; NPY: a 2-D array; "
    "Parquet: numeric columns, needs pyarrow)"
)


def _add_fit(commands: Any, formatter: type) -> argparse.ArgumentParser:
    fit = commands.add_parser(
        "fit",
        help="cluster the samples of a data file, save the model and the labels",
        description=(
            "Fit k-means to the samples in DATA, print a summary (samples, features, "
            "iterations, inertia, time, where it ran, cluster sizes) and save the model "
            "(--out, for `anykmeans predict` and anykmeans.load) and the labels (--labels)."
        ),
        formatter_class=formatter,
    )
    fit.add_argument("data", metavar="DATA", help=_DATA_HELP)
    fit.add_argument("-k", "--n-clusters", type=_positive_int, required=True, metavar="K",
                     help="number of clusters (required)")
    fit.add_argument("--init", choices=("k-means++", "k-means||", "random"), default="k-means++",
                     help="how each run picks its initial centers: greedy k-means++, k-means|| (a few "
                     "oversampling passes: for large k), or distinct samples at random")
    fit.add_argument("--metric", choices=("euclidean", "cosine"), default="euclidean",
                     help="cosine: spherical k-means, samples compared by direction (their lengths ignored)")
    fit.add_argument(
        "--n-init", type=_n_init, default="auto", metavar="N",
        help="number of runs from different initial centers, the lowest inertia kept; auto is 1 "
        "for k-means++ and 10 for random",
    )
    fit.add_argument("--max-iter", type=_positive_int, default=300, metavar="N",
                     help="most Lloyd iterations of a run")
    fit.add_argument(
        "--tol", type=_non_negative_float, default=1e-4, metavar="X",
        help="a run stops when the centers move less than this, relative to the data's variance; "
        "0 stops when the labels stop changing",
    )
    fit.add_argument("--seed", type=_non_negative_int, default=SEED, metavar="S",
                     help="seed of the initial centers: the same seed, data and options give the same model")
    _add_device(fit)
    fit.add_argument("--dtype", choices=("float32", "float64"), default="float64",
                     help="floating-point type the data is read in and clustered in (float32: half the "
                     "memory, faster on GPUs)")
    fit.add_argument("--out", metavar="MODEL.npz",
                     help="save the model to this file (written as named, no extension added), for "
                     "`anykmeans predict` and anykmeans.load (default: not saved)")
    fit.add_argument("--labels", metavar="LABELS.npy",
                     help="save the cluster of each sample to this .npy file, written as named "
                     "(default: not saved)")
    fit.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default="auto",
        help="show the progress of the fit on stderr; auto shows it in a terminal once a fit has "
        "run for about two seconds",
    )
    return fit


def _add_predict(commands: Any, formatter: type) -> argparse.ArgumentParser:
    predict = commands.add_parser(
        "predict",
        help="label the samples of a data file with a saved model",
        description=(
            "Give each sample in DATA the cluster of its closest center in MODEL (saved by "
            "`anykmeans fit --out` or KMeans.save), print the cluster sizes and save the labels "
            "(--out). DATA is read in the model's dtype and must have the model's number of features."
        ),
        formatter_class=formatter,
    )
    predict.add_argument("model", metavar="MODEL",
                         help="the model file, a .npz written by `anykmeans fit --out` or KMeans.save")
    predict.add_argument("data", metavar="DATA", help=_DATA_HELP)
    predict.add_argument("--out", metavar="LABELS.npy",
                         help="save the cluster of each sample to this .npy file, written as named "
                         "(default: not saved, only the cluster sizes are printed)")
    _add_device(predict)
    return predict


def _add_bench(commands: Any, formatter: type) -> argparse.ArgumentParser:
    bench = commands.add_parser(
        "bench",
        help="time anykmeans against scikit-learn on this machine (and on its GPU)",
        description=(
            f"Time {BENCH_ITERATIONS} Lloyd iterations (tol=0) on random float32 data from the same "
            "initial centers with anykmeans and with scikit-learn (when installed), best of "
            f"{BENCH_REPEATS} after a warm-up, and with anykmeans on the GPU when CuPy sees a "
            "CUDA device; print the time per iteration and the speed-up over scikit-learn."
        ),
        formatter_class=formatter,
    )
    (n, d, k), (quick_n, quick_d, quick_k) = BENCH_SIZE, QUICK_SIZE
    bench.add_argument("--quick", action="store_true",
                       help=f"a small problem ({quick_n:,} × {quick_d}, k={quick_k}) that runs in seconds")
    bench.add_argument("--n", type=_positive_int, metavar="N",
                       help=f"number of random samples (default: {n}; {quick_n} with --quick)")
    bench.add_argument("--d", type=_positive_int, metavar="D",
                       help=f"number of features (default: {d}; {quick_d} with --quick)")
    bench.add_argument("--k", type=_positive_int, metavar="K",
                       help=f"number of clusters (default: {k}; {quick_k} with --quick)")
    return bench


def _build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The ``anykmeans`` parser and its subcommands' parsers, by name."""
    formatter = _HelpFormatter  # each option's help ends with its default
    parser = argparse.ArgumentParser(
        prog="anykmeans", description="k-means on any array library", formatter_class=formatter
    )
    parser.add_argument("--version", action="version", version=f"anykmeans {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    subparsers = {
        "fit": _add_fit(commands, formatter),
        "predict": _add_predict(commands, formatter),
        "bench": _add_bench(commands, formatter),
        "demo": _add_demo(commands, formatter),
        "info": commands.add_parser(
            "info",
            help="print versions, the visible CUDA devices, the settings and the backends",
            description="Print versions, the visible CUDA devices, the settings and the backends.",
            formatter_class=formatter,
        ),
    }
    return parser, subparsers


def _parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The ``anykmeans`` parser and its ``demo`` subparser."""
    parser, subparsers = _build_parser()
    return parser, subparsers["demo"]


def _run_demo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.n_samples < args.n_clusters:
        parser.error(
            f"--n-samples must be at least --n-clusters (got --n-samples {args.n_samples}, "
            f"--n-clusters {args.n_clusters})"
        )
    return _demo(args)


def _info(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    show_config()
    return 0


_COMMANDS = {"fit": _fit, "predict": _predict, "bench": _bench, "demo": _run_demo, "info": _info}


def main(argv: Sequence[str] | None = None) -> int:
    parser, subparsers = _build_parser()
    args = parser.parse_args(argv)
    try:
        return _COMMANDS[args.command](args, subparsers[args.command])
    except KeyboardInterrupt:
        print(f"anykmeans {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of the output has gone (`anykmeans fit … | head`): stop quietly, and keep
        # Python's exit from failing again on flushing stdout (as the Python docs advise).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
