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


@pytest.mark.slow
def test_install_uninstall_reinstall_leaves_nothing_behind(tmp_path):
    """A fit compiles and caches the Numba kernels; uninstalling then removes the whole package
    (the cache lives in the user's cache directory), so an editable install afterwards imports
    the checkout instead of a leftover folder."""
    pytest.importorskip("numba")
    import sysconfig

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / ("Scripts" if sys.platform == "win32" else "bin") / "python"
    site = Path(subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip())
    # This environment's packages (NumPy, Numba, …), linked, not copied; not its anykmeans.
    outer = tmp_path / "outer"
    outer.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.lower().startswith(("anykmeans", "__editable__")) and entry.suffix != ".pth":
            (outer / entry.name).symlink_to(entry)
    (site / "outer.pth").write_text(f"{outer}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NUMBA_CACHE_DIR")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")

    def run(*args, cwd=tmp_path):
        result = subprocess.run([python, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    run("-m", "pip", "install", "-q", "--no-deps", str(ROOT))
    fit = (
        "import numpy as np, anykmeans\n"
        "anykmeans.KMeans(3, random_state=0).fit(np.random.default_rng(0).normal(size=(2000, 4)))\n"
        "print(anykmeans.__file__)\n"
    )
    assert Path(run("-c", fit).strip()) == site / "anykmeans" / "__init__.py"
    assert list((tmp_path / "cache" / "anykmeans" / "numba").rglob("*.nbi"))
    run("-m", "pip", "uninstall", "-y", "-q", "anykmeans")
    assert not (site / "anykmeans").exists(), sorted(str(p) for p in (site / "anykmeans").rglob("*"))
    run("-m", "pip", "install", "-q", "--no-deps", "-e", str(ROOT))
    assert Path(run("-c", fit).strip()) == ROOT / "anykmeans" / "__init__.py"
