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
        assert devices.strip() == "none: CuPy is not installed"
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
    assert re.search(r"^\s+device\s+auto$", capsys.readouterr().out, flags=re.M)


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
