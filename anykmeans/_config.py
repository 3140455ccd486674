"""Library-wide settings: context-local, with defaults read from the environment.

Each key has a validator. ``set_config`` changes the current context, ``config_context``
changes it for a ``with`` block only; both are per thread and per asyncio task because the
settings live in a :class:`contextvars.ContextVar`.
"""

from __future__ import annotations

import contextlib
import contextvars
import numbers
import os
import re
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ._exceptions import user_stacklevel

_DEVICES = ("auto", "cpu", "cuda", "cuda:N")
_OUTPUTS = ("input", "numpy", "cupy")
_FALLBACKS = ("warn", "raise")
_MATMUL_PRECISIONS = ("highest", "high", "medium")
_CUDA_INDEX = re.compile(r"cuda:([0-9]+)")


def check_device(value: Any) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``, case-insensitive; ``cuda:01`` becomes ``cuda:1``."""
    if isinstance(value, str):
        name = value.strip().lower()
        if name in ("auto", "cpu", "cuda"):
            return name
        match = _CUDA_INDEX.fullmatch(name)
        if match:
            return f"cuda:{int(match.group(1))}"
    raise ValueError(
        f"device must be one of {_DEVICES!r} (N a non-negative integer); got {value!r}."
    )


def _check_choice(key: str, choices: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if isinstance(value, str) and value.strip().lower() in choices:
            return value.strip().lower()
        raise ValueError(f"{key} must be one of {choices!r}; got {value!r}.")

    return check


def _check_kernels(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"kernels must be 'auto' or the name of a registered backend; got {value!r}.")
    return value


def _check_registered(value: str) -> str:
    """``value``, if it is ``auto`` or names a registered backend (entry points included).

    Names given in code are checked when set; a name read from the environment at import is
    checked when a fit selects the kernels, since plugins may not be importable that early.
    """
    from .backends import list_kernels

    registered = list_kernels()
    if value != "auto" and value not in registered:
        raise ValueError(
            f"kernels must be 'auto' or the name of a registered backend; got {value!r}. "
            f"Registered: {sorted(registered)}."
        )
    return value


def _check_n_threads(value: Any) -> int | str:
    """``"auto"`` or a positive int (a string of digits from the environment)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"n_threads must be 'auto' or a positive int; got {value!r}.")
    return int(value)


_TRUE = ("1", "true", "on", "yes")
_FALSE = ("0", "false", "off", "no")


def _check_progress(value: Any) -> bool | str:
    """``True``, ``False`` or ``"auto"`` (from the environment also 1/0, on/off, yes/no)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str):
        name = value.strip().lower()
        if name == "auto":
            return "auto"
        if name in _TRUE or name in _FALSE:
            return name in _TRUE
    raise ValueError(f"progress must be True, False or 'auto'; got {value!r}.")


def _check_working_memory(value: Any) -> float | str:
    if isinstance(value, str):
        if value.strip().lower() == "auto":
            return "auto"
        try:
            value = float(value)
        except ValueError:
            raise ValueError(
                f"working_memory must be 'auto' or a positive number of MiB; got {value!r}."
            ) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"working_memory must be 'auto' or a positive number of MiB; got {value!r}.")
    return float(value)


_VALIDATORS: dict[str, Callable[[Any], Any]] = {
    "device": check_device,
    "output": _check_choice("output", _OUTPUTS),
    "fallback": _check_choice("fallback", _FALLBACKS),
    "kernels": _check_kernels,
    "working_memory": _check_working_memory,
    "n_threads": _check_n_threads,
    "progress": _check_progress,
    "matmul_precision": _check_choice("matmul_precision", _MATMUL_PRECISIONS),
}

_BUILTIN_DEFAULTS: dict[str, Any] = {
    "device": "auto",
    # Where results go: the input's namespace and device, NumPy, or CuPy.
    "output": "input",
    # What to do when the asked device is missing: warn and compute on the CPU, or raise.
    "fallback": "warn",
    "kernels": "auto",
    # MiB for the per-chunk temporaries (the chunk × n_clusters distance block and friends);
    # "auto": the kernels' choice for the device (cache-sized on the host, a share of the
    # free memory on a GPU).
    "working_memory": "auto",
    # Threads of one call, ours and the BLAS/OpenMP libraries' ("auto": the usable cores).
    "n_threads": "auto",
    # Progress bars for long fits ("auto": in a notebook or terminal, once a fit passes ~2 s).
    "progress": "auto",
    # The precision of the distance products, named as PyTorch names them: "highest" (IEEE,
    # the data's own), "high" (TF32 tensor cores), "medium" (BF16); labels exact in each.
    "matmul_precision": "highest",
}


# Keys that named the two halves of the kernels before one backend ran both; each still sets
# ``kernels``, with one FutureWarning per key and process.
_DEPRECATED_KEYS = ("distance", "reduction")
_warned_keys: set[str] = set()


def _replace_deprecated_keys(changes: dict[str, Any], where: str) -> dict[str, Any]:
    """``changes`` with ``distance`` / ``reduction`` turned into ``kernels``."""
    named = {key: changes.pop(key) for key in _DEPRECATED_KEYS if key in changes}
    named = {key: value for key, value in named.items() if value is not None}
    if not named:
        return changes
    names = set(named.values()) | ({changes["kernels"]} if changes.get("kernels") is not None else set())
    if len(names) > 1:
        given = {**named, "kernels": changes.get("kernels")}
        given = ", ".join(f"{key}={value!r}" for key, value in given.items() if value is not None)
        raise ValueError(
            f"{given} name different backends, but one backend now runs every kernel; "
            "set kernels='<name>' only."
        )
    for key in named:
        if key not in _warned_keys:
            _warned_keys.add(key)
            warnings.warn(
                f"The {key!r} setting{where} is deprecated: one backend now runs every kernel. "
                f"Use kernels={named[key]!r} instead.",
                FutureWarning,
                stacklevel=user_stacklevel(),
            )
    return {**changes, "kernels": names.pop()}


ENVIRONMENT_PREFIX = "ANYKMEANS_"


def environment_names() -> dict[str, str]:
    """The environment variable of each setting (and of the deprecated ones), by key."""
    return {key: f"{ENVIRONMENT_PREFIX}{key.upper()}" for key in (*_VALIDATORS, *_DEPRECATED_KEYS)}


def _invalid_environment(what: str, error: ValueError) -> None:
    # Warned, not raised: a bad variable must not make importing anykmeans fail.
    warnings.warn(
        f"Ignoring {what}: {error} Using the default instead.", RuntimeWarning, stacklevel=user_stacklevel()
    )


def _defaults_from_environment() -> dict[str, Any]:
    config = dict(_BUILTIN_DEFAULTS)
    found = {key: os.environ[name] for key, name in environment_names().items() if name in os.environ}
    try:
        found = _replace_deprecated_keys(found, " (from ANYKMEANS_DISTANCE / ANYKMEANS_REDUCTION)")
    except ValueError as exc:
        _invalid_environment("ANYKMEANS_DISTANCE / ANYKMEANS_REDUCTION / ANYKMEANS_KERNELS", exc)
        found = {key: value for key, value in found.items() if key not in ("kernels", *_DEPRECATED_KEYS)}
    for key, value in found.items():
        try:
            config[key] = _VALIDATORS[key](value)
        except ValueError as exc:
            _invalid_environment(f"the environment variable {ENVIRONMENT_PREFIX}{key.upper()}={value!r}", exc)
    return config


_config_var: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
    "anykmeans_config", default=_defaults_from_environment()
)


def get_config() -> dict[str, Any]:
    """Return a copy of the current settings.

    Returns
    -------
    dict
        ``device``, ``output``, ``fallback``, ``kernels``, ``working_memory``,
        ``n_threads``, ``progress`` and ``matmul_precision``.
    """
    return dict(_config_var.get())


def _validated(changes: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(changes) - set(_VALIDATORS) - set(_DEPRECATED_KEYS))
    if unknown:
        raise ValueError(
            f"Unknown configuration key(s) {unknown}; valid keys are {sorted(_VALIDATORS)}."
        )
    changes = _replace_deprecated_keys(dict(changes), "")
    validated = {key: _VALIDATORS[key](value) for key, value in changes.items() if value is not None}
    if "kernels" in validated:
        _check_registered(validated["kernels"])
    return validated


def set_config(
    device: str | None = None,
    kernels: str | None = None,
    working_memory: float | str | None = None,
    output: str | None = None,
    fallback: str | None = None,
    n_threads: int | str | None = None,
    progress: bool | str | None = None,
    matmul_precision: str | None = None,
    *,
    distance: str | None = None,
    reduction: str | None = None,
    **unknown: Any,
) -> None:
    """Change settings in the current context; ``None`` leaves a key unchanged.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda", "cuda:N"}, optional
        Where the work runs. ``"auto"`` computes where the input lives. ``"cpu"`` computes
        on the host: host input (NumPy, PyTorch CPU, Dask, JAX CPU) stays where it is, other
        input is moved to NumPy once. ``"cuda:N"`` computes on CUDA device ``N``: input
        already there (a CuPy array or a PyTorch CUDA tensor) stays in its own library,
        anything else is moved to CuPy once. ``"cuda"`` is the CUDA device the input is on,
        or device 0 for input that is not on one. Case-insensitive. Without CuPy or a CUDA
        device, ``"cuda"`` computes on the CPU instead, as ``fallback`` says.
    kernels : str, optional
        ``"auto"`` (the supporting backend with the highest priority for the input) or the
        name of a registered backend (see :mod:`anykmeans.backends`).
    working_memory : float or "auto", optional
        Budget in MiB for the per-chunk temporaries; bounds the size of a row chunk.
        ``"auto"`` (the default) lets the kernels choose for the device: on the host four
        times one core's L2 cache (8 MiB where it is not known), on a GPU half of the free
        memory (CuPy's pool included, rounded down to a power of two), so that one chunk
        usually holds every row; other accelerators 256 MiB. A pass that runs out of device
        memory halves its chunks and goes on. A number gives the same chunks, and so the
        same bits, whatever else holds the device's memory.
    output : {"input", "numpy", "cupy"}, optional
        Where returned arrays (fitted attributes, labels, distances) go: ``"input"`` (the
        default) back to the input's namespace and device, ``"numpy"`` to NumPy, ``"cupy"``
        to CuPy on the CUDA device the work ran on (device 0 if it ran on the CPU).
    fallback : {"warn", "raise"}, optional
        When ``device`` names a CUDA device that is not available (CuPy not installed, no
        CUDA device visible, or fewer devices than ``N + 1``): ``"warn"`` (the default)
        emits one :class:`anykmeans.DeviceFallbackWarning` per call and computes on the
        CPU as ``device="cpu"`` does; ``"raise"`` raises ``RuntimeError`` before any work.
    n_threads : int or "auto", optional
        The most threads one call uses: anykmeans' own and (with threadpoolctl installed, as
        in the ``cpu`` extra) those of the BLAS and OpenMP libraries it calls. ``"auto"`` (the
        default): the usable cores, or fewer where a limit is already in force
        (``threadpoolctl.threadpool_limits``, ``OPENBLAS_NUM_THREADS``, …).
    progress : bool or "auto", optional
        Show the progress of long fits: the run of ``n_init``, the iteration, the inertia and
        its relative change (and the k-means++ steps for many clusters), as a ``tqdm`` bar
        (a widget in Jupyter) or, without tqdm, as plain lines. ``"auto"`` (the default)
        shows it in a notebook or a terminal once a fit has run for about two seconds, and
        never when the output is not interactive (tests, pipes, logs).
    matmul_precision : {"highest", "high", "medium"}, optional
        The precision of the products behind the distances, with the values of
        ``torch.set_float32_matmul_precision``: ``"highest"`` (the default) computes them in
        the data's own precision (IEEE float32 or float64); ``"high"`` lets the GPU kernels
        compute them on tensor cores with TF32 inputs (10-bit mantissas), ``"medium"`` with
        BF16 inputs (7-bit mantissas), accumulating in float32. The labels are exact in every
        mode: each row whose best and runner-up centers are closer than a proven bound on
        the error of the fast product is rechecked in the data's precision, so the labels
        are those of ``"highest"`` except where two centers are equally near within the
        rounding of the data's own precision; inertia and centers are always computed in the
        data's precision. Float64 data, and kernels without a faster product (the CPU ones),
        compute at ``"highest"`` whatever is set; the ``reference`` kernels emulate the
        reduced products on any namespace (see ``docs/precision.md``).
    distance, reduction : str, optional
        Deprecated: set ``kernels`` (one backend now runs every kernel). Either one sets
        ``kernels``, with a ``FutureWarning`` the first time it is used.
    """
    changes = dict(
        device=device,
        kernels=kernels,
        working_memory=working_memory,
        output=output,
        fallback=fallback,
        n_threads=n_threads,
        progress=progress,
        matmul_precision=matmul_precision,
        distance=distance,
        reduction=reduction,
        **unknown,
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
