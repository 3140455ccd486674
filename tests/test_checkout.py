"""The source checkout imports and tests as it is, without an install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(
    not (ROOT / "backends" / "_protocol.py").is_file(), reason="not run from a source checkout"
)


def _in_checkout(*args, timeout=120):
    # PYTHONPATH cleared: only the checkout (the working directory) provides anykmeans.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_python_imports_the_checkout_and_fits():
    result = _in_checkout(
        "-c",
        "import numpy as np, anykmeans\n"
        "print(anykmeans.__file__)\n"
        "print(anykmeans.backends.__file__)\n"
        "X = np.random.default_rng(0).normal(size=(300, 3))\n"
        "with anykmeans.config_context(kernels='numpy'):\n"
        "    print(anykmeans.KMeans(3, random_state=0).fit(X).n_iter_ > 0)\n",
    )
    assert result.returncode == 0, result.stderr
    package, backends, fitted = result.stdout.split()
    assert Path(package) == ROOT / "anykmeans" / "__init__.py"
    assert Path(backends) == ROOT / "backends" / "__init__.py"
    assert fitted == "True"


def test_python_m_pytest_runs_from_the_checkout():
    result = _in_checkout(
        "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_config.py", "-k", "defaults or unknown_keys"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "error" not in result.stdout.lower()
