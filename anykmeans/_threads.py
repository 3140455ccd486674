"""The thread cap of one call: anykmeans' own threads and, through threadpoolctl when it is
installed, the BLAS and OpenMP libraries it calls."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

_cap: contextvars.ContextVar[int | None] = contextvars.ContextVar("anykmeans_thread_cap", default=None)


def thread_cap() -> int | None:
    """The ``n_threads`` of the call in progress (``None``: no cap of our own)."""
    return _cap.get()


@contextlib.contextmanager
def capped_threads(n_threads: int | str) -> Iterator[None]:
    """Run the block with at most ``n_threads`` threads (``"auto"``: no cap of our own; limits
    the user set with threadpoolctl, or in BLAS environment variables, still apply)."""
    if n_threads == "auto":
        yield
        return
    token = _cap.set(int(n_threads))
    try:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            limits = contextlib.nullcontext()
        else:
            limits = threadpool_limits(limits=int(n_threads))
        with limits:
            yield
    finally:
        _cap.reset(token)
