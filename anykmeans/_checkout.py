"""Importing anykmeans from a source checkout, where the kernels are the top-level
``backends/`` folder that an install maps to ``anykmeans.backends``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def find_checkout_backends() -> None:
    """Register the checkout's ``backends/`` as ``anykmeans.backends`` when the package has no
    ``backends`` folder of its own (a checkout on ``sys.path``, or an editable install whose
    import hook has not mapped it). An installed package is left as it is."""
    package = Path(__file__).resolve().parent
    if (package / "backends").is_dir() or "anykmeans.backends" in sys.modules:
        return
    folder = package.parent / "backends"
    if not (folder / "_protocol.py").is_file() or importlib.util.find_spec("anykmeans.backends") is not None:
        return
    spec = importlib.util.spec_from_file_location(
        "anykmeans.backends", folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["anykmeans.backends"] = module
    spec.loader.exec_module(module)
