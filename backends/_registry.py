"""Registry of kernel backends: by kind, by name, and ``auto`` selection by priority."""

from __future__ import annotations

import importlib.metadata
import warnings
from collections.abc import Iterable
from typing import Any

from ._base import Backend, DistanceBackend, ReductionBackend

ENTRY_POINT_GROUP = "anykmeans.backends"
KINDS = ("distance", "reduction")

_registry: dict[str, dict[str, Backend]] = {kind: {} for kind in KINDS}
_entry_points_loaded = False


def register(backend: Backend, *, replace: bool = False) -> Backend:
    """Add a backend instance to the registry under its ``kind`` and ``name``.

    Parameters
    ----------
    backend : DistanceBackend or ReductionBackend
        The instance to register.
    replace : bool, default=False
        Allow replacing a registered backend of the same kind and name.

    Returns
    -------
    backend
        The same instance, so that ``register`` can be used as an expression.
    """
    if not isinstance(backend, (DistanceBackend, ReductionBackend)):
        raise TypeError(
            "A backend must be an instance of anykmeans.backends.DistanceBackend or "
            f"ReductionBackend; got {type(backend).__name__}."
        )
    if not isinstance(backend.name, str) or not backend.name or backend.name == "auto":
        raise ValueError(f"A backend needs a non-empty name other than 'auto'; got {backend.name!r}.")
    table = _registry[backend.kind]
    if backend.name in table and table[backend.name] is not backend and not replace:
        raise ValueError(
            f"A {backend.kind} backend named {backend.name!r} is already registered; "
            "pass replace=True to replace it."
        )
    table[backend.name] = backend
    return backend


def register_distance(backend: DistanceBackend, *, replace: bool = False) -> DistanceBackend:
    """Register a :class:`DistanceBackend` (see :func:`register`)."""
    if not isinstance(backend, DistanceBackend):
        raise TypeError(f"register_distance takes a DistanceBackend; got {type(backend).__name__}.")
    return register(backend, replace=replace)


def register_reduction(backend: ReductionBackend, *, replace: bool = False) -> ReductionBackend:
    """Register a :class:`ReductionBackend` (see :func:`register`)."""
    if not isinstance(backend, ReductionBackend):
        raise TypeError(
            f"register_reduction takes a ReductionBackend; got {type(backend).__name__}."
        )
    return register(backend, replace=replace)


def _load_entry_points() -> None:
    """Register the backends that installed packages declare in the entry-point group.

    An entry point names a backend instance or an iterable of them. A broken plugin warns
    and is skipped, so that it cannot make the library unusable.
    """
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry_point.load()
            backends = loaded if isinstance(loaded, Iterable) else [loaded]
            for backend in backends:
                register(backend)
        except Exception as exc:  # noqa: BLE001 - any failure of third-party code
            warnings.warn(
                f"Could not register backend entry point {entry_point.name!r} "
                f"({entry_point.value}): {exc}",
                RuntimeWarning,
                stacklevel=2,
            )


def reload_entry_points() -> None:
    """Scan the entry-point group again (after installing a plugin in a running process)."""
    global _entry_points_loaded
    _entry_points_loaded = False
    _load_entry_points()


def list_backends(kind: str) -> dict[str, Backend]:
    """The registered backends of ``kind`` (``"distance"`` or ``"reduction"``), by name."""
    _check_kind(kind)
    _load_entry_points()
    return dict(_registry[kind])


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}.")


def select(kind: str, name: str, xp: Any, device: Any) -> Backend:
    """The backend of ``kind`` to use for arrays of ``xp`` on ``device``.

    ``name="auto"`` picks the supporting backend with the highest priority; any other name
    must be registered and support the placement.
    """
    table = list_backends(kind)
    if name == "auto":
        candidates = [b for b in table.values() if b.supports(xp, device)]
        if not candidates:
            raise ValueError(f"No registered {kind} backend supports {xp.__name__} on {device!r}.")
        # max() keeps the first of equal priorities: registration order breaks ties.
        return max(candidates, key=lambda b: b.priority)
    if name not in table:
        raise ValueError(
            f"Unknown {kind} backend {name!r}; registered: {sorted(table)} (or 'auto')."
        )
    backend = table[name]
    if not backend.supports(xp, device):
        raise ValueError(
            f"The {kind} backend {name!r} does not support {xp.__name__} arrays on "
            f"device {device!r}; use 'auto' or one of "
            f"{sorted(n for n, b in table.items() if b.supports(xp, device))}."
        )
    return backend
