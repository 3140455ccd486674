"""The ``anykmeans`` command line."""

import importlib.util
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from anykmeans._cli import main, make_blobs
from conftest import _cuda_available


def test_demo_prints_what_was_used_and_found(capsys):
    assert main(["demo", "--n-samples", "3000", "--n-features", "4", "--n-clusters", "5"]) == 0
    out = capsys.readouterr().out
    assert "namespace numpy, device cpu" in out
    best = "numba" if importlib.util.find_spec("numba") else "numpy"
    assert re.search(rf"^kernels\s+'{best}'$", out, flags=re.M)
    assert re.search(r"time\s+\d+\.\d+ s", out)
    iterations = int(re.search(r"iterations (\d+)", out).group(1))
    assert 1 <= iterations <= 300
    inertia = float(re.search(r"inertia\s+(\S+)", out).group(1))
    sizes = [int(s.replace(",", "")) for s in re.findall(r"^\s+\d+\s+([\d,]+)\s+#", out, flags=re.M)]
    assert len(sizes) == 5 and sum(sizes) == 3000

    # The printed figures are those of the same fit done by hand.
    from anykmeans import KMeans

    X, _ = make_blobs(3000, 4, 5, seed=0, dtype="float32")
    model = KMeans(5, random_state=0).fit(X)
    assert inertia == pytest.approx(model.inertia_, rel=1e-5)
    assert sizes == np.bincount(model.labels_, minlength=5).tolist()


def test_demo_on_forced_cpu_and_float64(capsys):
    assert main(["demo", "--n-samples", "500", "--n-clusters", "3", "--dtype", "float64", "--device", "cpu"]) == 0
    assert "(float64)" in capsys.readouterr().out


def test_bad_arguments_exit_with_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--n-samples", "2", "--n-clusters", "5"])
    assert exc.value.code == 2
    assert "--n-samples must be at least --n-clusters" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["demo", "--n-clusters", "0"])


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
