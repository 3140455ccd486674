"""The ``anykmeans`` command line."""

import importlib.util
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from anykmeans._cli import _parser, main, make_blobs
from conftest import _cuda_available


def test_demo_prints_what_was_used_and_found(capsys):
    assert main(["demo", "--n-samples", "3000", "--n-features", "4", "--n-clusters", "5", "--n-init", "3"]) == 0
    out = capsys.readouterr().out
    assert "namespace numpy, device cpu" in out
    best = "numba" if importlib.util.find_spec("numba") else "numpy"
    assert re.search(rf"^kernels\s+'{best}'$", out, flags=re.M)
    assert re.search(r"^fit\s+KMeans\(n_clusters=5, n_init=3, random_state=0\)$", out, flags=re.M)
    assert re.search(r"^compile\s+\d+\.\d+ s \(warm-up fit on 500 rows: first use of the kernels\)$", out, flags=re.M)
    assert re.search(r"^time\s+\d+\.\d+ s \(3 k-means\+\+ starts, the best kept; compile excluded\)$", out, flags=re.M)
    iterations = int(re.search(r"iterations (\d+)", out).group(1))
    assert 1 <= iterations <= 300
    inertia = float(re.search(r"inertia\s+(\S+)", out).group(1))
    sizes = [int(s.replace(",", "")) for s in re.findall(r"^\s+\d+\s+([\d,]+)\s+#", out, flags=re.M)]
    assert len(sizes) == 5 and sum(sizes) == 3000

    # The printed figures are those of the same fit done by hand.
    from anykmeans import KMeans

    X, _ = make_blobs(3000, 4, 5, seed=0, dtype="float32")
    model = KMeans(5, n_init=3, random_state=0).fit(X)
    assert inertia == pytest.approx(model.inertia_, rel=1e-5)
    assert sizes == np.bincount(model.labels_, minlength=5).tolist()


def test_demo_on_forced_cpu_and_float64(capsys):
    assert main(["demo", "--n-samples", "500", "--n-clusters", "3", "--dtype", "float64", "--device", "cpu"]) == 0
    assert "(float64)" in capsys.readouterr().out


def _demo_error(capsys, argv):
    """The stderr of ``anykmeans demo`` refusing ``argv``, checked to be a usage error of ``demo``."""
    with pytest.raises(SystemExit) as exc:
        main(["demo", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: anykmeans demo "), err
    assert "anykmeans demo: error: " in err
    assert "_positive_int" not in err and "_non_negative_int" not in err and "invalid" not in err
    return err


def test_the_default_demo_recovers_the_blobs(capsys):
    """The first thing a user runs: ``anykmeans demo`` with its defaults (200,000 points; the
    single k-means++ start it had before recovered 83 % of them, blobs merged and split)."""
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "data       200,000 generated points × 16 features (float32), 12 true blobs, seed 0" in out
    recovered = float(re.search(r"^recovered\s+([\d.]+)% of points", out, flags=re.M).group(1))
    assert recovered >= 99.0, out
    assert re.search(r"^fit\s+KMeans\(n_clusters=12, n_init=10, random_state=0\)$", out, flags=re.M)
    sizes = [int(s.replace(",", "")) for s in re.findall(r"^\s+\d+\s+([\d,]+)\s+#", out, flags=re.M)]
    # Twelve blobs of about 200,000 / 12 points each: none merged, none split.
    assert len(sizes) == 12 and all(15_000 < size < 18_500 for size in sizes), sizes


def test_demo_times_the_compiled_kernels_first_use_apart_from_the_fit(capsys, monkeypatch):
    import time

    import anykmeans._cli
    from anykmeans import KMeans

    fits = []

    class SlowFirstUse(KMeans):
        """Records each fit; the first one takes a second longer, as a first compile does."""

        def fit(self, X, y=None, sample_weight=None):
            fits.append((X.shape, X.dtype, self.n_clusters, self.n_init))
            if len(fits) == 1:
                time.sleep(1.0)
            return super().fit(X, y, sample_weight)

    monkeypatch.setattr(anykmeans._cli, "KMeans", SlowFirstUse)
    argv = ["demo", "--n-samples", "3000", "--n-features", "5", "--n-clusters", "4", "--n-init", "2", "--dtype", "float64"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    # A warm-up on a few rows of the same data (dtype, features) first, then the fit itself.
    assert fits == [((500, 5), np.float64, 4, "auto"), ((3000, 5), np.float64, 4, 2)]
    compile_seconds = float(re.search(r"^compile\s+(\d+\.\d+) s \(warm-up fit on 500 rows", out, flags=re.M).group(1))
    fit_seconds = float(re.search(r"^time\s+(\d+\.\d+) s \(2 k-means\+\+ starts", out, flags=re.M).group(1))
    # The warm-up's extra second is reported on the compile line, not in the fit's time.
    assert compile_seconds >= 1.0 and fit_seconds < compile_seconds, out
    # Fewer rows than the warm-up takes: it uses them all, and at most as many clusters.
    fits.clear()
    assert main(["demo", "--n-samples", "40", "--n-clusters", "3", "--n-init", "1"]) == 0
    assert [shape for shape, *_ in fits] == [(40, 16), (40, 16)]
    out = capsys.readouterr().out
    assert "warm-up fit on 40 rows" in out and "(1 k-means++ start; compile excluded)" in out


def test_demo_help_shows_every_option_with_its_default(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # unwrapped, whatever the terminal width
    assert text.startswith("usage: anykmeans demo ")
    options = text.split(" options: ", 1)[1]
    _, demo = _parser()
    actions = [a for a in demo._actions if a.option_strings and a.dest != "help"]
    assert {a.option_strings[0] for a in actions} == {
        "--n-samples", "--n-features", "--n-clusters", "--n-init", "--dtype", "--device", "--seed"
    }
    # Each option's entry, up to the next one's, has its help and ends with its default.
    starts = [options.index(f"{a.option_strings[0]} ") for a in actions]
    assert starts == sorted(starts)
    for action, start, stop in zip(actions, starts, [*starts[1:], len(options)]):
        entry = options[start:stop]
        assert action.help and len(action.help) > 10, action.option_strings
        assert entry.rstrip().endswith(f"(default: {action.default})"), entry
    assert "--n-samples N number of generated points (default: 200000)" in options
    assert "(default: 10)" in options.split("--n-init", 1)[1].split("--dtype", 1)[0]


def test_bad_arguments_exit_with_a_usage_error(capsys):
    err = _demo_error(capsys, ["--n-samples", "2", "--n-clusters", "5"])
    assert "anykmeans demo: error: --n-samples must be at least --n-clusters (got --n-samples 2, --n-clusters 5)" in err
    err = _demo_error(capsys, ["--n-clusters", "0"])
    assert "argument --n-clusters: expected a positive integer, got '0'" in err


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--n-samples", "1e5", "a positive integer"),
        ("--n-samples", "-3", "a positive integer"),
        ("--n-features", "four", "a positive integer"),
        ("--n-init", "0", "a positive integer"),
        ("--n-init", "2.5", "a positive integer"),
        ("--seed", "-1", "a non-negative integer"),
        ("--seed", "x", "a non-negative integer"),
    ],
)
def test_a_bad_value_names_the_option_and_what_it_takes(capsys, option, value, expected):
    err = _demo_error(capsys, [option, value])
    assert f"anykmeans demo: error: argument {option}: expected {expected}, got '{value}'" in err


def test_console_script_is_installed(tmp_path):
    executable = shutil.which("anykmeans")
    if executable is None:
        pytest.skip("the package is not installed with its console script")
    # Outside the checkout, so that the installed package is the one imported.
    result = subprocess.run([executable, "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("anykmeans ")
    result = subprocess.run(
        [sys.executable, "-m", "anykmeans", "demo", "--n-samples", "300", "--n-clusters", "3"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "cluster sizes" in result.stdout


def _cupy_installed():
    return importlib.util.find_spec("cupy") is not None


def test_info_prints_versions_devices_configuration_and_backends(capsys):
    import importlib.metadata

    import anykmeans
    from anykmeans import backends

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"anykmeans {anykmeans.__version__} ")
    assert re.search(rf"^\s+numpy\s+{re.escape(np.__version__)}$", out, flags=re.M)
    assert re.search(
        rf"^\s+array-api-compat\s+{re.escape(importlib.metadata.version('array-api-compat'))}$", out, flags=re.M
    )
    for name in ("cupy", "torch", "dask", "jax", "numba", "scikit-learn", "faiss"):
        assert re.search(rf"^\s+{name}\s+\S", out, flags=re.M), name
    # The device line: CuPy's devices, or none with the reason.
    devices = out.split("CUDA devices\n", 1)[1].split("\n\n", 1)[0]
    if not _cupy_installed():
        assert re.search(r"^\s+cupy\s+not installed$", out, flags=re.M)
        assert devices.strip().splitlines()[0] == "none: CuPy is not installed"
    else:
        assert re.match(r"\s+(none: .+|\d+ visible through CuPy)", devices)
    assert re.search(r"^\s+device\s+auto$", out, flags=re.M)
    assert re.search(r"^\s+output\s+input$", out, flags=re.M)
    assert re.search(r"^\s+fallback\s+warn$", out, flags=re.M)
    for name, kernels in backends.list_kernels().items():
        assert re.search(rf"^\s+{re.escape(name)}\s+priority {kernels.priority}$", out, flags=re.M)
    best = "numba" if importlib.util.find_spec("numba") else "numpy"
    assert f"auto for NumPy input: '{best}'" in out


def test_show_config_writes_to_a_given_file_and_shows_the_settings(capsys):
    import io

    import anykmeans

    buffer = io.StringIO()
    with anykmeans.config_context(device="CUDA:2", output="numpy", working_memory=64):
        anykmeans.show_config(file=buffer)
        assert main(["info"]) == 0
    report = buffer.getvalue()
    assert capsys.readouterr().out == report
    assert re.search(r"^\s+device\s+cuda:2$", report, flags=re.M)
    assert re.search(r"^\s+output\s+numpy$", report, flags=re.M)
    assert re.search(r"^\s+working_memory\s+64\.0$", report, flags=re.M)
    assert re.search(r"^\s+results\s+numpy on cpu$", report, flags=re.M)
    if not _cupy_installed():
        assert "compute  numpy on cpu (device 'cuda:2' unavailable: CuPy is not installed; fallback='warn')" in report
    anykmeans.show_config()
    default_report = capsys.readouterr().out
    assert re.search(r"^\s+device\s+auto$", default_report, flags=re.M)
    # "auto" says what it comes to on this host.
    host_mib = anykmeans.backends.Kernels().auto_working_memory("cpu") / 2**20
    assert re.search(
        rf"^\s+working_memory\s+auto \({host_mib:g} MiB on the host; half of the free memory on a GPU\)$",
        default_report, flags=re.M,
    )
    if not _cupy_installed():
        assert 'for a GPU: pip install "anykmeans[cuda13]" (or "anykmeans[cuda12]")' in default_report


def test_info_from_the_console_imports_no_array_framework(tmp_path):
    code = (
        "import sys\n"
        "from anykmeans._cli import main\n"
        "main(['info'])\n"
        "print('imported:', [m for m in ('torch', 'dask', 'jax', 'sklearn', 'numba', 'faiss') if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "CUDA devices" in result.stdout
    assert result.stdout.rstrip().endswith("imported: []")


@pytest.mark.skipif(_cuda_available(), reason="tests the path without a usable CUDA device")
def test_demo_on_cuda_without_a_device_falls_back_or_fails_cleanly(capsys):
    from anykmeans import DeviceFallbackWarning, config_context

    with pytest.warns(DeviceFallbackWarning, match="device='cuda:1' was asked for") as caught:
        assert main(["demo", "--n-samples", "500", "--n-clusters", "3", "--device", "CUDA:1"]) == 0
    assert len(caught) == 1
    assert "placement  namespace numpy, device cpu (device 'cuda:1' unavailable: " in capsys.readouterr().out
    with config_context(fallback="raise"):
        assert main(["demo", "--n-samples", "500", "--n-clusters", "3", "--device", "cuda"]) == 1
    captured = capsys.readouterr()
    assert "fallback='raise'" in captured.err and "cluster sizes" not in captured.out


def test_demo_rejects_an_unknown_device_naming_the_allowed_ones(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--device", "gpu"])
    assert exc.value.code == 2
    assert "device must be one of ('auto', 'cpu', 'cuda', 'cuda:N')" in capsys.readouterr().err


def test_info_reports_misspelt_environment_variables(tmp_path):
    import os

    env = {**os.environ, "ANYKMEANS_DEVISE": "cpu", "ANYKMEANS_DEVICE": "cpu"}
    result = subprocess.run(
        [sys.executable, "-m", "anykmeans", "info"], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"^\s+unknown environment variables, ignored: ANYKMEANS_DEVISE$", result.stdout, flags=re.M)
    assert re.search(r"^\s+device\s+cpu$", result.stdout, flags=re.M)


# ------------------------------------------------------------- fit, predict, bench: files

import os  # noqa: E402
from pathlib import Path  # noqa: E402

from anykmeans._cli import _build_parser  # noqa: E402

_REPO = Path(__file__).resolve().parents[1]


def _run_cli(*args, cwd):
    """``python -m anykmeans ARGS`` in a subprocess, importing this checkout."""
    path = os.pathsep.join(filter(None, [str(_REPO), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "anykmeans", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, env={**os.environ, "PYTHONPATH": path}, timeout=300,
    )


def _blob_csv(path, n=60, d=3, header=True, seed=0):
    """Three well-separated blobs written as CSV (with a header line ``f0,f1,…``); returns X."""
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(10.0 * c, 1.0, size=(n // 3, d)) for c in range(3)])
    np.savetxt(path, X, delimiter=",", header=",".join(f"f{j}" for j in range(d)) if header else "", comments="")
    return X


def _field(out, name):
    return re.search(rf"^{name}\s+(.+)$", out, flags=re.M).group(1)


def test_fit_then_predict_with_the_saved_model_and_labels(tmp_path):
    import anykmeans
    from anykmeans._io import read_data

    data = tmp_path / "data.csv"
    _blob_csv(data)
    result = _run_cli("fit", data, "-k", "3", "--n-init", "2", "--out", "model.npz", "--labels", "labels.npy",
                      cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"anykmeans {anykmeans.__version__} fit\n")
    assert _field(out, "data") == (
        f"{data}: 60 samples × 3 features (float64), column names from its header line: f0, f1, f2"
    )
    assert _field(out, "model") == "KMeans(n_clusters=3, n_init=2, random_state=0)"
    assert re.fullmatch(r"namespace numpy, device cpu, kernels '\w+'", _field(out, "ran on"))
    assert re.fullmatch(r"\d+ \(run [12] of 2 kept: the lowest inertia\)", _field(out, "iterations"))
    assert re.fullmatch(r"\d+\.\d{3} s", _field(out, "time"))
    sizes = [int(s.replace(",", "")) for s in re.findall(r"^\s+\d+\s+([\d,]+)\s+#", out, flags=re.M)]
    assert sizes == [20, 20, 20]
    assert "model       saved to model.npz" in out and "labels      saved to labels.npy" in out

    X, _ = read_data(data)
    model = anykmeans.load(tmp_path / "model.npz")
    labels = np.load(tmp_path / "labels.npy", allow_pickle=False)
    np.testing.assert_array_equal(labels, model.predict(X))
    np.testing.assert_array_equal(labels, model.labels_)
    assert float(_field(out, "inertia")) == pytest.approx(model.inertia_, rel=1e-5)
    assert model.n_iter_ == int(_field(out, "iterations").split()[0])

    # predict: the training data gets the training labels back, written as named.
    result = _run_cli("predict", "model.npz", data, "--out", "predicted", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "labels      saved to predicted" in result.stdout
    np.testing.assert_array_equal(np.load(tmp_path / "predicted", allow_pickle=False), labels)
    assert _field(result.stdout, "model") == "model.npz: KMeans(n_clusters=3, n_init=2, random_state=0), 3 features"


def test_predict_prints_the_cluster_sizes_of_new_data(tmp_path, capsys):
    _blob_csv(tmp_path / "train.csv", header=False)
    assert main(["fit", str(tmp_path / "train.csv"), "-k", "3", "--dtype", "float32", "--no-progress",
                 "--out", str(tmp_path / "model.npz")]) == 0
    assert "(float32)" in capsys.readouterr().out
    new = np.repeat([[0.0] * 3, [10.0] * 3, [20.0] * 3], [3, 2, 2], axis=0)  # near the blobs' centers
    np.save(tmp_path / "new.npy", new)
    assert main(["predict", str(tmp_path / "model.npz"), str(tmp_path / "new.npy")]) == 0
    out = capsys.readouterr().out
    assert "7 samples × 3 features (float32)" in out  # read in the model's dtype
    sizes = [int(s) for s in re.findall(r"^\s+\d+\s+([\d,]+)\s+#", out, flags=re.M)]
    assert sorted(sizes) == [2, 2, 3]
    assert "saved to" not in out


def test_fit_reports_anykmeans_warnings_as_one_line(tmp_path, capsys):
    (tmp_path / "dup.csv").write_text("1,1\n1,1\n1,1\n1,1\n")
    assert main(["fit", str(tmp_path / "dup.csv"), "-k", "2"]) == 0
    err = capsys.readouterr().err
    assert err == (
        "anykmeans fit: warning: Number of distinct clusters (1) found smaller than n_clusters (2). "
        "Possibly due to duplicate points in X.\n"
    )


def test_bench_quick_prints_a_table_with_the_ratio(tmp_path):
    result = _run_cli("bench", "--quick", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "20,000 random float32 points × 16 features, k=16; 10 Lloyd iterations (tol=0)" in out
    row = r"\s+(\d+)\s+(\d+\.\d+)\s+(\d+\.\d+)\s+\S+\s+(\d+\.\d+x|-)$"
    ours = re.search(r"^anykmeans \(numpy, cpu, \w+\)" + row, out, flags=re.M)
    assert ours, out
    assert int(ours.group(1)) >= 1 and float(ours.group(2)) > 0
    if importlib.util.find_spec("sklearn"):
        theirs = re.search(r"^scikit-learn \S+" + row, out, flags=re.M)
        assert theirs and theirs.group(4) == "1.00x", out
        assert float(ours.group(4).rstrip("x")) > 0
    else:
        assert "scikit-learn is not installed" in out
    if not _cuda_available():
        assert "GPU: none found (" in out
    else:
        assert re.search(r"^anykmeans \(cupy, " , out, flags=re.M), out


def test_bench_options_override_the_quick_sizes(capsys):
    assert main(["bench", "--quick", "--n", "300", "--d", "2", "--k", "3"]) == 0
    assert "300 random float32 points × 2 features, k=3;" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--n", "3", "--k", "5"])
    assert exc.value.code == 2
    assert "anykmeans bench: error: --k must be at most --n (got --k 5, --n 3)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("fit", {"-k", "--init", "--metric", "--n-init", "--max-iter", "--tol", "--seed", "--device", "--dtype", "--out",
                 "--labels", "--progress"}),
        ("predict", {"--out", "--device"}),
        ("bench", {"--quick", "--n", "--d", "--k"}),
    ],
)
def test_help_lists_every_option_with_its_default(capsys, command, options):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # unwrapped, whatever the terminal width
    assert text.startswith(f"usage: anykmeans {command} ")
    listed = text.split(" options: ", 1)[1]
    _, subparsers = _build_parser()
    actions = [a for a in subparsers[command]._actions if a.option_strings and a.dest != "help"]
    assert {a.option_strings[0] for a in actions} == options
    starts = [re.search(rf"(?<!\S){re.escape(a.option_strings[0])}[ ,]", listed).start() for a in actions]
    assert starts == sorted(starts)
    for action, start, stop in zip(actions, starts, [*starts[1:], len(listed)]):
        entry = listed[start:stop].rstrip()
        assert action.help and len(action.help) > 10, action.option_strings
        if action.required:
            assert entry.endswith("(required)"), entry
        else:
            assert re.search(r"\(default: [^)]+\)$", entry), entry
    assert "_positive_int" not in text and "None" not in text


def test_fit_help_states_the_defaults():
    _, subparsers = _build_parser()
    text = " ".join(subparsers["fit"].format_help().split())
    for fragment in ("--max-iter N most Lloyd iterations of a run (default: 300)", "(default: 0.0001)",
                     "(default: k-means++)", "(default: auto)", "(default: float64)", "(default: not saved)"):
        assert fragment in text, fragment
    args = subparsers["fit"].parse_args(["data.csv", "-k", "2"])
    assert (args.progress, args.n_init, args.seed, args.device) == ("auto", "auto", 0, "auto")
    assert subparsers["fit"].parse_args(["data.csv", "-k", "2", "--no-progress"]).progress is False
    assert subparsers["fit"].parse_args(["data.csv", "-k", "2", "--progress"]).progress is True


def test_a_bad_data_file_exits_2_naming_the_file_and_line_without_a_traceback(tmp_path):
    (tmp_path / "bad.csv").write_text("x,y,z\n1,2,3\n4,5,6\n7,oops,9\n")
    result = _run_cli("fit", "bad.csv", "-k", "2", "--out", "model.npz", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert result.stderr.startswith("usage: anykmeans fit ")
    assert result.stderr.rstrip().splitlines()[-1] == (
        'anykmeans fit: error: bad.csv: line 4, column 2 ("y"): expected a number, got "oops"'
    )
    assert not (tmp_path / "model.npz").exists()


def test_a_file_that_is_not_a_model_exits_2_without_a_traceback(tmp_path):
    _blob_csv(tmp_path / "data.csv")
    result = _run_cli("predict", "data.csv", "data.csv", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.rstrip().splitlines()[-1] == (
        "anykmeans predict: error: data.csv is not an anykmeans model file: expected a .npz archive "
        "written by KMeans.save"
    )


def _usage_error(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: anykmeans {argv[0]} "), err
    lines = err.rstrip().splitlines()
    assert lines[-1].startswith(f"anykmeans {argv[0]}: error: ")
    assert "invalid" not in err and "_positive_int" not in err and "Traceback" not in err
    return lines[-1].split(": error: ", 1)[1]


def test_user_mistakes_are_usage_errors_of_the_subcommand(tmp_path, capsys):
    data = tmp_path / "data.csv"
    _blob_csv(data)
    model = tmp_path / "model.npz"
    assert main(["fit", str(data), "-k", "3", "--out", str(model)]) == 0
    capsys.readouterr()
    np.save(tmp_path / "two.npy", np.ones((4, 2)))

    assert _usage_error(capsys, ["predict", str(model), str(tmp_path / "two.npy")]) == (
        f"{tmp_path / 'two.npy'} has 2 features (columns) but the model in {model} was fitted on 3"
    )
    assert _usage_error(capsys, ["predict", str(tmp_path / "none.npz"), str(data)]) == (
        f"{tmp_path / 'none.npz'}: no such model file"
    )
    missing = tmp_path / "none.csv"
    assert _usage_error(capsys, ["fit", str(missing), "-k", "2"]) == f"{missing}: no such file"
    assert _usage_error(capsys, ["fit", str(data), "-k", "61"]) == f"-k 61 is more than the 60 samples in {data}"
    assert _usage_error(capsys, ["fit", str(data), "-k", "2", "--labels", str(tmp_path / "no" / "l.npy")]) == (
        f"argument --labels: the folder {tmp_path / 'no'} of {tmp_path / 'no' / 'l.npy'} does not exist"
    )
    assert _usage_error(capsys, ["fit", str(data), "-k", "2", "--out", str(tmp_path)]) == (
        f"argument --out: {tmp_path} is a folder: expected a file name"
    )
    (tmp_path / "data.txt").write_text("1,2\n")
    assert "unsupported file type '.txt': expected one of .csv, .npy, .parquet" in _usage_error(
        capsys, ["fit", str(tmp_path / "data.txt"), "-k", "1"]
    )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["fit", "d.csv", "-k", "0"], "argument -k/--n-clusters: expected a positive integer, got '0'"),
        (["fit", "d.csv", "-k", "2", "--n-init", "two"],
         "argument --n-init: expected 'auto' or a positive integer, got 'two'"),
        (["fit", "d.csv", "-k", "2", "--tol", "-1"], "argument --tol: expected a non-negative number, got '-1'"),
        (["fit", "d.csv", "-k", "2", "--tol", "nan"], "argument --tol: expected a non-negative number, got 'nan'"),
        (["fit", "d.csv", "-k", "2", "--max-iter", "0"], "argument --max-iter: expected a positive integer, got '0'"),
        (["fit", "d.csv", "-k", "2", "--seed", "-2"], "argument --seed: expected a non-negative integer, got '-2'"),
        (["fit", "d.csv", "-k", "2", "--device", "gpu"], "device must be one of ('auto', 'cpu', 'cuda', 'cuda:N')"),
        (["fit", "d.csv"], "the following arguments are required: -k/--n-clusters"),
        (["predict", "model.npz", "d.csv", "--device", "tpu"], "device must be one of"),
        (["bench", "--n", "0"], "argument --n: expected a positive integer, got '0'"),
    ],
)
def test_bad_option_values_name_the_option(capsys, argv, expected):
    assert expected in _usage_error(capsys, argv)


def test_fit_with_cosine_metric_and_kmeans_parallel_seeds(tmp_path, capsys):
    X = _blob_csv(tmp_path / "blobs.csv", n=90)
    model_path = tmp_path / "model.npz"
    assert main(["fit", str(tmp_path / "blobs.csv"), "-k", "3", "--metric", "cosine", "--init", "k-means||",
                 "--out", str(model_path), "--no-progress"]) == 0
    import anykmeans
    from sklearn.metrics.pairwise import cosine_distances

    model = anykmeans.load(model_path)
    assert model.metric == "cosine" and model.init == "k-means||"
    np.testing.assert_allclose(np.linalg.norm(model.cluster_centers_, axis=1), 1.0)
    inertia = float(_field(capsys.readouterr().out, "inertia").split()[0])
    assert inertia == pytest.approx(np.sum(np.min(cosine_distances(X, model.cluster_centers_), axis=1)), rel=1e-5)


def test_fit_with_cosine_metric_on_zero_rows_is_an_error_not_a_traceback(tmp_path, capsys):
    X = np.ones((10, 2))
    X[4] = 0
    np.savetxt(tmp_path / "zeros.csv", X, delimiter=",")
    assert main(["fit", str(tmp_path / "zeros.csv"), "-k", "2", "--metric", "cosine", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("anykmeans fit: error: X has 1 row of zero norm (the first is row 4)"), err


def test_the_cuda_extras_install_the_cupy_wheel_that_anykmeans_info_names():
    # `anykmeans info` names the CuPy package and the extra for its CUDA major version; the
    # extras of that name must install exactly that package.
    import re
    import tomllib
    from pathlib import Path

    from anykmeans import _info

    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("the tests run outside the checkout")
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    for major in (12, 13):
        (requirement,) = extras[f"cuda{major}"]
        assert re.match(rf"cupy-cuda{major}x\b", requirement), requirement
    assert extras["cuda"] == extras["cuda12"]
    assert [_info.cuda_major_of(name) for name in ("cupy-cuda13x", "CuPy_CUDA12x", "cupy", "cupy-rocm-6-0")] == [
        13, 12, None, None
    ]
