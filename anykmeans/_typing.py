"""Type aliases, so that signatures say what they take.

The Array API standard has no common base class: an ``Array`` is an array of any array-API
library (NumPy, CuPy, PyTorch, array-api-strict, Dask, JAX), a ``Namespace`` the module of
functions for it (``array_api_compat.array_namespace(x)``), a ``Device`` one of its devices.
"""

from __future__ import annotations

from typing import Any, TypeAlias

Array: TypeAlias = Any
Namespace: TypeAlias = Any
Device: TypeAlias = Any
