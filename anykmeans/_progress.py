"""Progress of long fits: the run of ``n_init``, the k-means++ steps, the iteration, the inertia
and its relative change, on a ``tqdm`` bar (a widget in Jupyter with ipywidgets, a text bar in
a terminal) or, without tqdm, on plain lines.

The ``progress`` setting: ``True`` shows it from the start; ``"auto"`` shows it only where
someone watches (a notebook, or a terminal on stderr) and only once the fit has run for
:data:`AUTO_DELAY` seconds, so that quick fits, tests, pipes and logs never see it; ``False``
never. A fit that shows nothing pays one no-op call per iteration.
"""

from __future__ import annotations

import sys
import time
import warnings
from typing import Any, TextIO

from ._exceptions import user_stacklevel

#: Seconds a fit runs before ``progress="auto"`` shows anything.
AUTO_DELAY = 2.0
#: Plain lines come at most this often (seconds), and at the end of each run.
LINE_INTERVAL = 1.0
#: The bar is brought up to date at most this often (seconds); tqdm redraws at most every 0.1 s.
UPDATE_INTERVAL = 0.05

_warned_no_tqdm = False


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    ipython = shell.get_ipython() if hasattr(shell, "get_ipython") else None
    return ipython is not None and type(ipython).__name__ == "ZMQInteractiveShell"


def _watched(stream: TextIO) -> bool:
    """Whether someone is likely to watch the output: a notebook or an interactive terminal."""
    try:
        return _in_notebook() or stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False


def _tqdm_installed() -> bool:
    try:
        import tqdm  # noqa: F401  (not tqdm.auto: in a notebook without ipywidgets it warns)
    except ImportError:
        return False
    return True


def _tqdm_class() -> type:
    """A widget in a notebook that has ipywidgets, else the text bar (which a notebook shows
    too, without tqdm.auto's warning about the missing widgets)."""
    if _in_notebook():
        try:
            import ipywidgets  # noqa: F401
        except ImportError:
            pass
        else:
            from tqdm.notebook import tqdm

            return tqdm
    from tqdm.std import tqdm

    return tqdm


class FitProgress:
    """What one fit shows. Call :meth:`start_run`, then :meth:`seeding_step` for the
    k-means++ steps, :meth:`iteration` after each E-step and :meth:`end_run`; :meth:`close`
    at the end (also when the fit fails)."""

    def __init__(
        self, setting: bool | str, *, n_init: int, max_iter: int, name: str, stream: TextIO | None = None
    ) -> None:
        self.n_init, self.max_iter, self.name = n_init, max_iter, name
        self.stream = sys.stderr if stream is None else stream
        self.enabled = setting is True or (setting == "auto" and _watched(self.stream))
        self.delay = AUTO_DELAY if setting == "auto" else 0.0
        self._bar: Any = None
        self._use_tqdm = self.enabled and _tqdm_installed()
        self._run = 0
        self._last_inertia: float | None = None
        self._last_line = 0.0
        self._last_update = 0.0
        if self.enabled and not self._use_tqdm and setting is True:
            _warn_no_tqdm()
        self._started = time.perf_counter()

    def _shown(self) -> bool:
        """Whether to show now; the bar is made the first time (after the delay, which
        counts from the start of the fit, not of a run)."""
        if not self.enabled or time.perf_counter() - self._started < self.delay:
            return False
        if self._use_tqdm and self._bar is None:
            self._bar = _tqdm_class()(
                total=self.max_iter, desc=self._run_name(), unit="it", file=self.stream, leave=True,
                dynamic_ncols=True,
            )
        return True

    def _run_name(self) -> str:
        return f"{self.name} run {self._run + 1}/{self.n_init}" if self.n_init > 1 else self.name

    def start_run(self, run: int) -> None:
        self._run, self._last_inertia = run, None

    def seeding_step(self, step: int, total: int) -> None:
        """k-means++ chose center ``step`` (1-based) of ``total``."""
        self._seeding("k-means++", "center", step, total)

    def seeding_round(self, step: int, total: int) -> None:
        """k-means|| finished step ``step`` (1-based) of ``total``: its first pass, a round, or
        the choice among the candidates."""
        self._seeding("k-means||", "step", step, total)

    def _seeding(self, method: str, unit: str, step: int, total: int) -> None:
        if not self._shown():
            return
        if self._bar is not None:
            self._phase(f"{self._run_name()}: {method}", total, step - 1)
            self._bar.update(1)
        else:
            self._line(f"{self._run_name()}: {method} {unit} {step}/{total}", final=step == total)

    def iteration(self, index: int, inertia: float) -> None:
        """The E-step of iteration ``index`` (0-based) gave ``inertia``."""
        change = None
        if self._last_inertia is not None and self._last_inertia > 0:
            change = (inertia - self._last_inertia) / self._last_inertia
        self._last_inertia = inertia
        if not self.enabled:
            return
        # Drawn at most every UPDATE_INTERVAL (and at a run's first iteration): a fast
        # iteration pays a clock read, not tqdm's bookkeeping or string formatting.
        now = time.perf_counter()
        if index and now - self._last_update < UPDATE_INTERVAL:
            return
        self._last_update = now
        if not self._shown():
            return
        if self._bar is not None:
            self._phase(self._run_name(), self.max_iter, index)
            self._bar.set_postfix_str(_status(inertia, change), refresh=False)
            self._bar.update(index + 1 - self._bar.n)
        else:
            self._line(f"{self._run_name()}: iteration {index + 1}, {_status(inertia, change)}")

    def _phase(self, description: str, total: int, done: int) -> None:
        """Put the bar on this phase (a run's seeding or its iterations), ``done`` steps in."""
        if self._bar.desc != description or self._bar.total != total:
            self._bar.set_description_str(description, refresh=False)
            self._bar.set_postfix_str("", refresh=False)
            self._bar.reset(total=total)
            if done:
                self._bar.update(done)

    def end_run(self, n_iter: int, inertia: float) -> None:
        if not self._shown():
            return
        if self._bar is not None:
            # Converged before max_iter: the bar ends full, at the iterations run.
            self._bar.update(max(0, n_iter - self._bar.n))
            self._bar.total = max(n_iter, self._bar.n)
            self._bar.set_postfix_str(f"inertia {inertia:.6g}, {n_iter} iterations", refresh=False)
            self._bar.refresh()
        else:
            self._line(f"{self._run_name()}: done after {n_iter} iterations, inertia {inertia:.6g}", final=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> FitProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _line(self, text: str, *, final: bool = False) -> None:
        now = time.perf_counter()
        if not final and now - self._last_line < LINE_INTERVAL:
            return
        self._last_line = now
        print(text, file=self.stream, flush=True)


def _status(inertia: float, change: float | None) -> str:
    return f"inertia {inertia:.6g}" + ("" if change is None else f" ({change:+.2%})")


def _warn_no_tqdm() -> None:
    global _warned_no_tqdm
    if not _warned_no_tqdm:
        _warned_no_tqdm = True
        warnings.warn(
            "progress=True shows a progress bar with tqdm, which is not installed "
            '(pip install tqdm, or pip install "anykmeans[notebook]"); printing plain lines instead.',
            RuntimeWarning,
            stacklevel=user_stacklevel(),
        )
