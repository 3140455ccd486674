"""The notebook view of an estimator: self-contained HTML for ``_repr_html_``.

One ``<div>`` with its own ``<style>``: every CSS rule is scoped under an id made for that
rendering, so nothing leaks into the notebook (and the id's specificity wins over the
notebook's own table styles). No JavaScript, no external resources, no scikit-learn.

The view is built only from what the estimator holds: a model whose attributes were set by
hand, or that was loaded from an older file without ``_fit_stats``, shows what it has.
"""

from __future__ import annotations

import heapq
import html
import inspect
import itertools
import math
import numbers
import operator
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# Bars drawn at most; beyond this the chart keeps the largest clusters and says how many
# were left out.
MAX_BARS = 30

# A notebook may hold views rendered by different processes: a per-process token keeps
# their ids apart, the counter keeps the views of one process apart.
_PROCESS_TOKEN = uuid.uuid4().hex[:8]
_VIEW_COUNTER = itertools.count()

# "#ROOT" stands for the view's id; every selector starts with it.
_CSS = """
#ROOT{display:inline-block;max-width:100%;box-sizing:border-box;color:inherit;
font-family:var(--jp-ui-font-family,system-ui,-apple-system,"Segoe UI",sans-serif);
font-size:13px;line-height:1.45;text-align:left;border:1px solid rgba(128,128,128,.45);
border-radius:6px;overflow:hidden}
#ROOT .akm-header{display:flex;align-items:baseline;gap:.6em;padding:.35em .8em;
background:rgba(128,128,128,.12);border-bottom:1px solid rgba(128,128,128,.3)}
#ROOT .akm-name{font-weight:600;font-size:1.1em}
#ROOT .akm-badge{font-size:.8em;padding:0 .55em;border-radius:1em;border:1px solid currentColor}
#ROOT .akm-badge.akm-fitted{color:#2e8b57}
#ROOT .akm-badge.akm-unfitted{color:#b8860b}
#ROOT .akm-body{display:flex;flex-wrap:wrap;align-items:flex-start;gap:.7em 2em;padding:.6em .8em}
#ROOT .akm-section{min-width:10em}
#ROOT .akm-title{font-size:.78em;font-weight:600;letter-spacing:.05em;text-transform:uppercase;
opacity:.7;margin:0 0 .25em 0}
#ROOT table.akm-table{border-collapse:collapse;border:none;margin:0;color:inherit;font-size:inherit;
table-layout:auto;width:auto}
#ROOT .akm-table tr{background:none;border:none}
#ROOT .akm-table th,#ROOT .akm-table td{padding:.05em 1em .05em 0;border:none;background:none;
text-align:left;vertical-align:top;white-space:nowrap}
#ROOT .akm-table th{font-weight:normal;opacity:.75}
#ROOT .akm-table td{font-family:var(--jp-code-font-family,ui-monospace,monospace)}
#ROOT .akm-none{font-style:italic;opacity:.7}
#ROOT .akm-bar-row{display:flex;align-items:center;gap:.5em;height:1.25em}
#ROOT .akm-bar-label{min-width:2.5em;text-align:right;opacity:.75;
font-variant-numeric:tabular-nums}
#ROOT .akm-bar-track{width:14em;height:.8em;background:rgba(128,128,128,.15);border-radius:2px}
#ROOT .akm-bar{height:100%;background:#4c8bf5;border-radius:2px}
#ROOT .akm-bar-count{font-variant-numeric:tabular-nums}
#ROOT .akm-more{margin-top:.3em;font-style:italic;opacity:.75}
"""


def estimator_html(estimator: Any) -> str:
    """The notebook view of ``estimator``: its class, whether it is fitted, the parameters
    that differ from the defaults and, once fitted, the fit's results, where and how long
    it ran, and the cluster sizes as a bar chart."""
    root = f"akm-view-{_PROCESS_TOKEN}-{next(_VIEW_COUNTER)}"
    fitted = _is_fitted(estimator)
    sections = [_parameters_section(estimator)]
    if fitted:
        stats = _fit_stats(estimator)
        sizes = _cluster_sizes(estimator, stats)
        sections += [
            _results_section(estimator, stats, sizes),
            _placement_section(stats),
            _sizes_section(sizes),
        ]
    return (
        f'<div id="{root}" class="akm-view">'
        f"<style>{_CSS.replace('#ROOT', '#' + root)}</style>"
        f"{_header(type(estimator).__name__, fitted)}"
        f'<div class="akm-body">{"".join(s for s in sections if s)}</div>'
        "</div>"
    )


# ---------------------------------------------------------------------- reading the model


def _is_fitted(estimator: Any) -> bool:
    check = getattr(estimator, "__sklearn_is_fitted__", None)
    if callable(check):
        try:
            return bool(check())
        except Exception:  # noqa: BLE001 - a view must not raise; unknown counts as not fitted
            return False
    return hasattr(estimator, "cluster_centers_")


def _fit_stats(estimator: Any) -> Mapping:
    stats = getattr(estimator, "_fit_stats", None)
    return stats if isinstance(stats, Mapping) else {}


def _as_int(value: Any) -> int | None:
    """``value`` as a Python int (NumPy and 0-d integers too), or None."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or isinstance(value, str):
        return None
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        return None


def _n_rows(array: Any) -> int | None:
    shape = getattr(array, "shape", None)
    if isinstance(shape, Sequence) and len(shape) >= 1:
        return _as_int(shape[0])
    return None


def _cluster_sizes(estimator: Any, stats: Mapping) -> list[int] | None:
    """Rows per cluster: from the fit's statistics or, for a model without them whose
    labels are a NumPy array, counted from the labels (labels elsewhere are not moved to
    the host just for a view)."""
    sizes = stats.get("cluster_sizes")
    if isinstance(sizes, Sequence) and not isinstance(sizes, str):
        counts = [_as_int(size) for size in sizes]
        if counts and all(count is not None and count >= 0 for count in counts):
            return counts
    labels = getattr(estimator, "labels_", None)
    if (
        isinstance(labels, np.ndarray)
        and labels.ndim == 1
        and labels.size
        and np.issubdtype(labels.dtype, np.integer)
        and labels.min() >= 0
    ):
        minlength = _n_rows(getattr(estimator, "cluster_centers_", None)) or 0
        return np.bincount(labels, minlength=minlength).tolist()
    return None


# ---------------------------------------------------------------------- parameters


def _non_default_params(estimator: Any) -> dict[str, Any]:
    """The parameters that differ from the ``__init__`` defaults, in ``get_params`` order."""
    get_params = getattr(estimator, "get_params", None)
    if not callable(get_params):
        return {}
    defaults = {
        name: p.default for name, p in inspect.signature(type(estimator).__init__).parameters.items()
    }
    return {
        name: value
        for name, value in get_params(deep=False).items()
        if not _is_default(value, defaults.get(name, inspect.Parameter.empty))
    }


def _is_plain_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _is_default(value: Any, default: Any) -> bool:
    # The rule of ParamsMixin.__repr__, so that the view and the text repr list the same
    # parameters: plain scalars by type and value (``1`` is not ``True``, a NumPy float is
    # not the float default); anything else (arrays, callables, generators) only when it
    # is the default object itself, since ``==`` on arrays is elementwise.
    if default is inspect.Parameter.empty:
        return False
    if _is_plain_scalar(value):
        return type(value) is type(default) and value == default
    return value is default


def _format_shape(shape: Any) -> str:
    dims = [_as_int(dim) for dim in shape]
    # Dask leaves unknown dimensions as NaN.
    text = ", ".join("?" if dim is None else str(dim) for dim in dims)
    return f"({text},)" if len(dims) == 1 else f"({text})"


def _callable_name(value: Any) -> str:
    return getattr(value, "__qualname__", None) or getattr(value, "__name__", None) or type(value).__name__


def _format_param(value: Any) -> str:
    """A short text for a parameter value (not yet escaped)."""
    if value is None or isinstance(value, (str, bool)):
        return repr(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    shape = getattr(value, "shape", None)
    if isinstance(shape, Sequence):
        if len(shape) == 0 and hasattr(value, "item"):
            # A 0-d array (a NumPy bool, a torch scalar) reads as its value.
            item = value.item()
            return _format_param(item) if _is_plain_scalar(item) else f"<{type(value).__name__}>"
        return f"array of shape {_format_shape(shape)}"
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__} of length {len(value)}"
    if callable(value):
        return _callable_name(value)
    # As the text repr shows it.
    return f"<{type(value).__name__}>"


def _parameters_section(estimator: Any) -> str:
    changed = _non_default_params(estimator)
    if not changed:
        return _section("Parameters", '<div class="akm-none">all defaults</div>')
    rows = "".join(
        f'<tr data-param="{_esc(name)}"><th>{_esc(name)}</th><td>{_esc(_format_param(value))}</td></tr>'
        for name, value in changed.items()
    )
    return _section("Parameters", f'<table class="akm-table">{rows}</table>')


# ---------------------------------------------------------------------- fitted model


def format_float(value: float, digits: int = 6) -> str:
    """``digits`` significant digits; plain notation for everyday magnitudes, scientific
    beyond them (and for tiny values, where plain notation would be all zeros)."""
    if value == 0 or not math.isfinite(value):
        return repr(value) if not math.isfinite(value) else "0"
    magnitude = math.floor(math.log10(abs(value)))
    if -4 <= magnitude < digits + 3:
        text = f"{value:.{max(digits - 1 - magnitude, 0)}f}"
        # Trailing zeros say nothing: "3.3", not "3.30000".
        return text.rstrip("0").rstrip(".") if "." in text else text
    return f"{value:.{digits}g}"


def format_seconds(seconds: float) -> str:
    """A wall time for people: ``3.2 ms``, ``0.42 s``, ``12.5 s``, ``3 min 12 s``, ``2 h 5 min``."""
    if seconds < 0.01:
        return f"{seconds * 1e3:.2g} ms"
    if round(seconds, 2) < 10:
        return f"{seconds:.2f} s"
    if round(seconds, 1) < 60:
        return f"{seconds:.1f} s"
    # Rounded once, so that 119.7 s reads "2 min 0 s", never "1 min 60 s".
    total = round(seconds)
    if total < 3600:
        return f"{total // 60} min {total % 60} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60} min"


def _results_section(estimator: Any, stats: Mapping, sizes: list[int] | None) -> str:
    rows = []
    n_clusters = _n_rows(getattr(estimator, "cluster_centers_", None))
    if n_clusters is None and sizes is not None:
        n_clusters = len(sizes)
    if n_clusters is not None:
        rows.append(("n_clusters", str(n_clusters)))
    n_iter = _as_int(getattr(estimator, "n_iter_", None))
    if n_iter is not None:
        rows.append(("n_iter_", str(n_iter)))
    inertia = _as_float(getattr(estimator, "inertia_", None))
    if inertia is not None:
        rows.append(("inertia_", format_float(inertia)))
    n_features = _as_int(getattr(estimator, "n_features_in_", None))
    if n_features is not None:
        rows.append(("n_features_in_", str(n_features)))
    runs = _runs_text(getattr(estimator, "inertia_history_", None), _as_int(stats.get("best_run")))
    if runs is not None:
        rows.append(("runs", runs))
    return _section("Fitted", _stat_table(rows)) if rows else ""


def _runs_text(histories: Any, best_run: int | None) -> str | None:
    """``"3, kept run 2"``: the number of initialisations and, when there were several,
    which one won (1-based)."""
    if not isinstance(histories, Sequence) or isinstance(histories, str) or not histories:
        return None
    text = str(len(histories))
    if best_run is not None and 0 <= best_run < len(histories) and len(histories) > 1:
        text += f", kept run {best_run + 1}"
    return text


def _placement_section(stats: Mapping) -> str:
    rows = [
        (key, str(stats[key]))
        for key in ("namespace", "device", "kernels")
        if isinstance(stats.get(key), str) and stats[key]
    ]
    seconds = _as_float(stats.get("seconds"))
    if seconds is not None and math.isfinite(seconds) and seconds >= 0:
        rows.append(("time", format_seconds(seconds)))
    return _section("Ran on", _stat_table(rows)) if rows else ""


def _stat_table(rows: list[tuple[str, str]]) -> str:
    body = "".join(
        f'<tr data-stat="{_esc(key)}"><th>{_esc(key)}</th><td>{_esc(text)}</td></tr>' for key, text in rows
    )
    return f'<table class="akm-table">{body}</table>'


# ---------------------------------------------------------------------- cluster sizes


def _sizes_section(sizes: list[int] | None) -> str:
    """One bar per cluster, in cluster order; beyond ``MAX_BARS`` clusters the largest
    ones, largest first, and a line for the rest. Widths are relative to the largest
    cluster; the bars are plain ``div``s whose width is set inline."""
    if not sizes:
        return ""
    if len(sizes) <= MAX_BARS:
        shown = list(enumerate(sizes))
        title = "Cluster sizes"
    else:
        # Ties go to the lower cluster index, so the choice is deterministic.
        shown = heapq.nlargest(MAX_BARS, enumerate(sizes), key=lambda item: (item[1], -item[0]))
        title = f"Cluster sizes, {MAX_BARS} largest of {len(sizes)}"
    largest = max(sizes)
    total = sum(sizes)
    bars = "".join(_bar(index, size, largest, total) for index, size in shown)
    more = ""
    if len(sizes) > len(shown):
        hidden = len(sizes) - len(shown)
        more = (
            f'<div class="akm-more" data-hidden="{hidden}" data-smallest="{min(sizes)}">'
            f"… and {hidden} more clusters, smallest size {min(sizes)}</div>"
        )
    return _section(title, f'<div class="akm-bars">{bars}</div>{more}')


def _bar(index: int, size: int, largest: int, total: int) -> str:
    width = 100.0 * size / largest if largest else 0.0
    share = f" ({100.0 * size / total:.1f}%)" if total else ""
    # A non-empty cluster keeps a sliver of bar however small it is next to the largest.
    min_width = "min-width:1px;" if size else ""
    return (
        f'<div class="akm-bar-row" data-cluster="{index}" data-count="{size}" '
        f'title="cluster {index}: {size} samples{share}">'
        f'<span class="akm-bar-label">{index}</span>'
        f'<div class="akm-bar-track"><div class="akm-bar" style="{min_width}width:{width:.1f}%"></div></div>'
        f'<span class="akm-bar-count">{size}</span>'
        "</div>"
    )


# ---------------------------------------------------------------------- layout


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _header(class_name: str, fitted: bool) -> str:
    badge = (
        '<span class="akm-badge akm-fitted" data-fitted="true">fitted</span>'
        if fitted
        else '<span class="akm-badge akm-unfitted" data-fitted="false">not fitted</span>'
    )
    return f'<div class="akm-header"><span class="akm-name">{_esc(class_name)}</span>{badge}</div>'


def _section(title: str, content: str) -> str:
    return f'<div class="akm-section"><div class="akm-title">{_esc(title)}</div>{content}</div>'
