"""The examples in the docstrings and the README run and do what they say."""

import doctest
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import anykmeans._config
import anykmeans._kmeans


@pytest.mark.parametrize("module", [anykmeans._kmeans, anykmeans._config], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.skipif(not README.exists(), reason="the README is not beside the tests")
def test_readme_example_backend_runs_and_fits_like_the_reference():
    text = README.read_text(encoding="utf-8")
    block = text.split("<!-- example-backend -->", 1)[1].split("<!-- /example-backend -->", 1)[0]
    code = block.split("```python\n", 1)[1].rsplit("```", 1)[0]
    assert len(code.strip().splitlines()) <= 30
    check = (
        "\nimport array_api_compat.numpy\nreference = anykmeans.KMeans(5, random_state=0)\n"
        "with anykmeans.config_context(kernels='array_api'):\n"
        "    reference.fit(X)\n"
        "assert (km.labels_ == reference.labels_).all()\n"
        "assert abs(km.inertia_ - reference.inertia_) <= 1e-9 * reference.inertia_\n"
        "assert anykmeans.backends.select_kernels('auto', array_api_compat.numpy, 'cpu').name != 'add_at'\n"
        "print('ok', km.n_iter_)\n"
    )
    # A fresh interpreter, outside the checkout: the example registers a backend.
    result = subprocess.run([sys.executable, "-c", code + check], capture_output=True, text=True, cwd=tempfile.gettempdir())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok ")


def _readme_examples():
    text = README.read_text(encoding="utf-8") if README.exists() else ""
    blocks = [block.split("```", 1)[0] for block in text.split("```python\n")[1:]]
    return [pytest.param(code, id=f"block{i}") for i, code in enumerate(blocks)]


def _cuda_available():
    from conftest import _cuda_available as available

    return available()


@pytest.mark.skipif(not README.exists(), reason="the README is not beside the tests")
@pytest.mark.parametrize("code", _readme_examples())
def test_every_readme_example_runs_on_its_own(code, tmp_path):
    if "import cupy" in code and not _cuda_available():
        pytest.skip("the example needs CuPy and a CUDA device")
    for module in ("matplotlib", "sklearn"):
        if f"import {module}" in code or f"from {module}" in code:
            pytest.importorskip(module)
    env = {**os.environ, "MPLBACKEND": "Agg"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(not README.exists(), reason="the README is not beside the tests")
def test_readme_command_line_example_runs(tmp_path):
    import shlex

    import numpy as np

    text = README.read_text(encoding="utf-8")
    block = text.split("<!-- cli-example -->", 1)[1].split("<!-- /cli-example -->", 1)[0]
    commands = [line for line in block.split("```bash\n", 1)[1].split("```", 1)[0].splitlines() if line.strip()]
    rng = np.random.default_rng(0)
    X = rng.uniform(-10, 10, size=(3, 2))[rng.integers(3, size=600)] + rng.normal(size=(600, 2))
    np.savetxt(tmp_path / "blobs.csv", X, delimiter=",", header="x,y", comments="")
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "anykmeans"
        result = subprocess.run(
            [sys.executable, "-m", "anykmeans", *argv[1:]], capture_output=True, text=True, cwd=tmp_path
        )
        assert result.returncode == 0, (command, result.stderr)
    np.testing.assert_array_equal(np.load(tmp_path / "labels.npy"), np.load(tmp_path / "again.npy"))
