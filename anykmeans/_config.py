"""Library-wide settings: context-local, with defaults read from the environment.

Each key has a validator. ``set_config`` changes the current context, ``config_context``
changes it for a ``with`` block only; both are per thread and per asyncio task because the
settings live in a :class:`contextvars.ContextVar`.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Callable, Iterator
from typing import Any

_DEVICES = ("auto", "cpu")


def _check_device(value: Any) -> str:
    if not isinstance(value, str) or value.lower() not in _DEVICES:
        raise ValueError(f"device must be one of {_DEVICES!r}; got {value!r}.")
    return value.lower()


def _check_backend_name(key: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise ValueError(
                f"{key} must be 'auto' or the name of a registered {key} backend; got {value!r}."
            )
        # Whether the name is registered is checked when a fit selects the backend, so that
        # backends registered after this call (or through entry points) can be named.
        return value

    return check


def _check_working_memory(value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(
                f"working_memory must be a positive number of MiB; got {value!r}."
            ) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"working_memory must be a positive number of MiB; got {value!r}.")
    return float(value)


_VALIDATORS: dict[str, Callable[[Any], Any]] = {
    "device": _check_device,
    "distance": _check_backend_name("distance"),
    "reduction": _check_backend_name("reduction"),
    "working_memory": _check_working_memory,
}

_BUILTIN_DEFAULTS: dict[str, Any] = {
    "device": "auto",
    "distance": "auto",
    "reduction": "auto",
    # MiB for the per-chunk temporaries (the chunk × n_clusters distance block and friends).
    "working_memory": 256.0,
}


def _defaults_from_environment() -> dict[str, Any]:
    config = dict(_BUILTIN_DEFAULTS)
    for key, check in _VALIDATORS.items():
        env_name = f"ANYKMEANS_{key.upper()}"
        if env_name in os.environ:
            try:
                config[key] = check(os.environ[env_name])
            except ValueError as exc:
                raise ValueError(f"Invalid environment variable {env_name}: {exc}") from None
    return config


_config_var: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
    "anykmeans_config", default=_defaults_from_environment()
)


def get_config() -> dict[str, Any]:
    """Return a copy of the current settings.

    Returns
    -------
    dict
        ``device``, ``distance``, ``reduction`` and ``working_memory``.
    """
    return dict(_config_var.get())


def _validated(changes: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(changes) - set(_VALIDATORS))
    if unknown:
        raise ValueError(
            f"Unknown configuration key(s) {unknown}; valid keys are {sorted(_VALIDATORS)}."
        )
    return {key: _VALIDATORS[key](value) for key, value in changes.items() if value is not None}


def set_config(
    device: str | None = None,
    distance: str | None = None,
    reduction: str | None = None,
    working_memory: float | None = None,
) -> None:
    """Change settings in the current context; ``None`` leaves a key unchanged.

    Parameters
    ----------
    device : {"auto", "cpu"}, optional
        ``"auto"`` computes where the input lives; ``"cpu"`` computes on the host.
    distance, reduction : str, optional
        ``"auto"`` or the name of a registered backend (see :mod:`anykmeans.backends`).
    working_memory : float, optional
        Budget in MiB for the per-chunk temporaries; bounds the size of a row chunk.
    """
    changes = dict(
        device=device, distance=distance, reduction=reduction, working_memory=working_memory
    )
    _config_var.set({**_config_var.get(), **_validated(changes)})


@contextlib.contextmanager
def config_context(**changes: Any) -> Iterator[dict[str, Any]]:
    """Change settings inside a ``with`` block only.

    Takes the keyword arguments of :func:`set_config`; unknown keys raise ``ValueError``.

    Examples
    --------
    >>> import anykmeans
    >>> with anykmeans.config_context(working_memory=64):
    ...     anykmeans.get_config()["working_memory"]
    64.0
    """
    token = _config_var.set({**_config_var.get(), **_validated(changes)})
    try:
        yield get_config()
    finally:
        _config_var.reset(token)
