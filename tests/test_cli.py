"""The ``anykmeans`` command line."""

import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from anykmeans._cli import main, make_blobs


def test_demo_prints_what_was_used_and_found(capsys):
    assert main(["demo", "--n-samples", "3000", "--n-features", "4", "--n-clusters", "5"]) == 0
    out = capsys.readouterr().out
    assert "namespace numpy, device cpu" in out
    assert "distance 'numpy', reduction 'numpy'" in out
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
