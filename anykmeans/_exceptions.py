"""The exceptions and warnings anykmeans raises, in one place."""

from __future__ import annotations

import sys


class NotFittedError(ValueError, AttributeError):
    """Raised when a method that needs a fitted model is called before ``fit``.

    It subclasses both ``ValueError`` and ``AttributeError``, as scikit-learn's does.
    """


class InvalidParameterError(ValueError, TypeError):
    """Raised when an estimator parameter has a wrong type or value."""


class ConvergenceWarning(UserWarning):
    """The fit found fewer distinct clusters than asked for."""


class DeviceFallbackWarning(UserWarning):
    """A CUDA device was asked for but is not available, so the work ran on the CPU.

    Emitted by the first call (``fit``, ``predict``, ``transform``, ``score``,
    ``kmeans_plusplus``, …) that falls back for a given reason, once per process, when
    ``device`` is ``"cuda"`` or ``"cuda:N"`` and CuPy is not installed, no CUDA device is
    visible, or fewer than ``N + 1`` are. Silence it by asking
    for the CPU (``anykmeans.set_config(device="cpu")`` or ``ANYKMEANS_DEVICE=cpu``) or with
    a warnings filter; ``anykmeans.config_context(fallback="raise")`` raises instead.
    """


def user_stacklevel() -> int:
    """The ``stacklevel`` at which a warning raised by the caller points to the first frame
    outside anykmeans (and ``contextlib``, for settings changed in a ``with`` statement)."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and _package(frame) in ("anykmeans", "contextlib"):
        frame, level = frame.f_back, level + 1
    return level


def _package(frame: object) -> str:
    return str(frame.f_globals.get("__name__", "")).partition(".")[0]
