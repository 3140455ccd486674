"""The registry of kernel backends: by name, and ``auto`` selection by priority."""

from __future__ import annotations

import importlib.metadata
import warnings
from collections.abc import Iterable

from .._typing import Device, Namespace
from ._protocol import Kernels

ENTRY_POINT_GROUP = "anykmeans.backends"


class _Registry:
    """Registered kernels by name, and whether the entry points have been scanned."""

    def __init__(self) -> None:
        self.kernels: dict[str, Kernels] = {}
        self.entry_points_loaded = False


_registry = _Registry()


def register_kernels(kernels: Kernels, *, replace: bool = False) -> Kernels:
    """Add a kernels instance to the registry under its ``name``.

    Parameters
    ----------
    kernels : Kernels
        An instance of a :class:`~anykmeans.backends.Kernels` subclass.
    replace : bool, default=False
        Allow replacing another instance registered under the same name.

    Returns
    -------
    Kernels
        The same instance, so that ``register_kernels`` can be used as an expression.
    """
    if not isinstance(kernels, Kernels):
        raise TypeError(
            "A backend must be an instance of a subclass of anykmeans.backends.Kernels; got "
            f"{kernels!r} of type {type(kernels).__name__}."
        )
    name = kernels.name
    if not isinstance(name, str) or not name or name == "auto":
        raise ValueError(f"A backend needs a non-empty name other than 'auto'; got {name!r}.")
    registered = _registry.kernels.get(name)
    if registered is not None and registered is not kernels and not replace:
        raise ValueError(
            f"A backend named {name!r} is already registered; pass replace=True to replace it."
        )
    _registry.kernels[name] = kernels
    return kernels


def unregister_kernels(name: str) -> Kernels:
    """Remove the backend registered as ``name`` and return it (``ValueError`` if none is)."""
    if name not in _registry.kernels:
        raise ValueError(f"No backend named {name!r} is registered; registered: {sorted(_registry.kernels)}.")
    return _registry.kernels.pop(name)


def _load_entry_points() -> None:
    """Register the backends that installed packages declare in the entry-point group.

    An entry point names a kernels instance or an iterable of them. A broken plugin warns and
    is skipped, so that it cannot make the library unusable.
    """
    if _registry.entry_points_loaded:
        return
    _registry.entry_points_loaded = True
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry_point.load()
            for kernels in loaded if isinstance(loaded, Iterable) else [loaded]:
                register_kernels(kernels)
        except Exception as exc:  # noqa: BLE001 - any failure of third-party code
            warnings.warn(
                f"Could not register backend entry point {entry_point.name!r} "
                f"({entry_point.value}): {exc}",
                RuntimeWarning,
                stacklevel=2,
            )


def reload_entry_points() -> None:
    """Scan the entry-point group again (after installing a plugin in a running process)."""
    _registry.entry_points_loaded = False
    _load_entry_points()


def list_kernels() -> dict[str, Kernels]:
    """The registered backends (entry points included), by name."""
    _load_entry_points()
    return dict(_registry.kernels)


def select_kernels(name: str, xp: Namespace, device: Device) -> Kernels:
    """The kernels to use for arrays of ``xp`` on ``device``.

    ``name="auto"`` picks the supporting backend with the highest priority (the first
    registered among equal priorities); any other name must be registered and support the
    placement.
    """
    table = list_kernels()
    if name == "auto":
        candidates = [k for k in table.values() if k.supports(xp, device)]
        if not candidates:
            raise ValueError(f"No registered backend supports {_name(xp)} arrays on {device!r}.")
        return max(candidates, key=lambda k: k.priority)
    if name not in table:
        raise ValueError(f"Unknown backend {name!r}; registered: {sorted(table)} (or 'auto').")
    kernels = table[name]
    if not kernels.supports(xp, device):
        raise ValueError(
            f"The backend {name!r} does not support {_name(xp)} arrays on device {device!r}; "
            f"use 'auto' or one of {sorted(n for n, k in table.items() if k.supports(xp, device))}."
        )
    return kernels


def _name(xp: Namespace) -> str:
    return getattr(xp, "__name__", type(xp).__name__).removeprefix("array_api_compat.")
