"""Checks of user input, run before any work: clear errors, never a modified input."""

from __future__ import annotations

import numbers
import warnings

import array_api_compat
import numpy as np

from ._arrays import (
    default_float,
    dtype_name,
    is_array,
    is_cpu_device,
    is_half,
    namespace_and_device,
    namespace_name,
    working_dtype,
)
from ._exceptions import InvalidParameterError, user_stacklevel
from ._transfers import to_host_numpy
from ._typing import Array


def check_same_placement(X: Array, other: Array, name: str) -> None:
    """Raise if ``other`` is an array of another namespace or device than ``X``."""
    xp, device = namespace_and_device(X)
    other_xp, other_device = namespace_and_device(other)
    if other_xp is not xp:
        raise TypeError(
            f"{name} is an array of {namespace_name(other_xp)} but X is an array of "
            f"{namespace_name(xp)}; pass arrays of one library (convert {name} explicitly)."
        )
    if other_device != device:
        raise ValueError(
            f"{name} is on device {other_device!r} but X is on device {device!r}; "
            f"move {name} to X's device explicitly."
        )


def _as_array(data: object, name: str) -> Array:
    """Array-API arrays pass through (PyTorch tensors detached from autograd); anything else
    (lists, DataFrames, …) becomes NumPy."""
    if isinstance(data, np.ndarray) and not data.dtype.isnative:
        # Big-endian (or other non-native) data: the same values in native order, so that
        # float32 stays float32 and the kernels read it directly.
        return data.astype(data.dtype.newbyteorder("="))
    if is_array(data):
        # k-means is not differentiable (its labels are an argmin): recording the fit for
        # autograd would only cost time and memory and give results with a history.
        # ``detach`` is a view, not a copy.
        return data.detach() if getattr(data, "requires_grad", False) else data
    if hasattr(data, "toarray") and hasattr(data, "nnz"):
        raise TypeError(
            f"Sparse input is not supported for {name}; pass a dense array (e.g. {name}.toarray())."
        )
    try:
        return np.asarray(data)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be array-like of numbers; converting it failed: {exc}") from exc


def half_dtype(X: object) -> object | None:
    """X's dtype if it is float16 or bfloat16 (of any library), else ``None``: such data is
    clustered in float32 and its centers are given back in its own dtype."""
    dtype = getattr(X, "dtype", None)
    return dtype if dtype is not None and is_half(dtype) else None


def in_dtype(centers: Array, dtype: object | None) -> Array:
    """``centers`` cast to the half dtype ``dtype`` (from :func:`half_dtype`) when their
    library has it; else as they are (PyTorch bfloat16 input whose results go to NumPy)."""
    if dtype is None:
        return centers
    xp = namespace_and_device(centers)[0]
    name = dtype_name(dtype)
    target = getattr(xp, name, None)
    if target is None and array_api_compat.is_dask_namespace(xp) and name == "float16":
        target = np.float16  # Dask's namespace does not name it, but its arrays take it
    return centers if target is None else xp.astype(centers, target)


def _as_float(array: Array, name: str, *, keep_half: bool = False) -> Array:
    """Cast to a floating dtype: float32/float64 kept, float16 and bfloat16 to float32 (kept
    with ``keep_half``), other numbers to the default float."""
    if isinstance(array, np.ndarray) and array.dtype.kind not in "biufc":
        if array.dtype.kind != "O":
            raise ValueError(
                f"{name} has dtype {array.dtype}, which is not numeric; "
                "convert your data to numeric values explicitly."
            )
        try:
            return array.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{name} is an object array that is not all numbers: {exc}"
            ) from exc
    xp, device = namespace_and_device(array)
    if xp.isdtype(array.dtype, "complex floating"):
        raise ValueError(f"Complex data not supported: {name} has dtype {array.dtype}.")
    if array.dtype in (xp.float32, xp.float64):
        return array
    if is_half(array.dtype):
        return array if keep_half else xp.astype(array, xp.float32)
    if not xp.isdtype(array.dtype, ("real floating", "integral", "bool")):
        raise ValueError(f"{name} has dtype {array.dtype}, which is not numeric.")
    return xp.astype(array, default_float(xp, device))


def _check_finite(array: Array, name: str) -> None:
    xp = namespace_and_device(array)[0]
    if bool(xp.all(xp.isfinite(array))):
        return
    what = "NaN" if bool(xp.any(xp.isnan(array))) else f"infinity or a value too large for {array.dtype}"
    raise ValueError(f"Input {name} contains {what}.")


def check_data(X: object, *, estimator_name: str = "KMeans") -> Array:
    """Validate ``X``: a finite, real, 2-D array with at least one row and one column.

    Returns an array of X's namespace and device with a float32 or float64 dtype (a new
    array when a cast is needed; ``X`` itself is never written to), or float16 / bfloat16 X
    as it is: the work on it is done in float32 (:func:`~anykmeans._arrays.working_dtype`),
    chunk by chunk.
    """
    X = _as_array(X, "X")
    ndim = len(X.shape)
    if ndim != 2:
        raise ValueError(
            f"Expected a 2-D array of shape (n_samples, n_features), got a {ndim}-D array "
            f"with shape {tuple(X.shape)} instead. Reshape your data either using "
            "X.reshape(-1, 1) if it has a single feature or X.reshape(1, -1) if it "
            "contains a single sample."
        )
    X = _as_float(X, "X", keep_half=True)
    n_samples, n_features = X.shape
    if n_samples == 0:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={tuple(X.shape)}) while a minimum of 1 is "
            f"required by {estimator_name}."
        )
    if n_features == 0:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={tuple(X.shape)}) while a minimum of 1 is "
            f"required by {estimator_name}."
        )
    _check_finite(X, "X")
    return X


def check_n_features(X: Array, n_features_in: int, estimator_name: str) -> None:
    if X.shape[1] != n_features_in:
        raise ValueError(
            f"X has {X.shape[1]} features, but {estimator_name} is expecting "
            f"{n_features_in} features as input."
        )


def _host_for_dask(data: object, X: Array) -> bool:
    """Whether ``data``, given with a Dask ``X``, is in-memory host data to move into Dask:
    NumPy arrays, array-likes and the arrays of any library on a CPU device (k × d initial
    centers are small whatever holds them)."""
    if not array_api_compat.is_dask_array(X) or array_api_compat.is_dask_array(data):
        return False
    return not is_array(data) or isinstance(data, np.ndarray) or is_cpu_device(*namespace_and_device(data))


def _host_like(data: object, X: Array, name: str) -> np.ndarray:
    """``data`` as a NumPy array with X's working dtype (X: a Dask array of NumPy-dtyped blocks)."""
    data = _as_float(_as_array(to_host_numpy(data) if is_array(data) else data, name), name)
    return np.asarray(data, dtype=working_dtype(X))


def _like(data: object, X: Array, name: str) -> Array:
    """``data`` as an array in X's namespace, on X's device, with X's working dtype."""
    xp, device = namespace_and_device(X)
    if is_array(data):
        check_same_placement(X, data, name)
        data = _as_array(data, name)
    else:
        data = xp.asarray(_as_float(_as_array(data, name), name), device=device)
    data = _as_float(data, name)
    dtype = working_dtype(X)
    return data if data.dtype == dtype else xp.astype(data, dtype)


def check_sample_weight(sample_weight: object, X: Array) -> Array:
    """Validated weights of shape ``(n_samples,)`` in X's working dtype: finite, ≥ 0, positive sum."""
    xp, device = namespace_and_device(X)
    n_samples = X.shape[0]
    if sample_weight is None:
        return xp.ones((n_samples,), dtype=working_dtype(X), device=device)
    if isinstance(sample_weight, numbers.Number) and not isinstance(sample_weight, bool):
        sample_weight = xp.full((n_samples,), float(sample_weight), dtype=working_dtype(X), device=device)
    # One weight per row is as large as a column of X: with a Dask X it must be Dask too
    # (the clear error of _like), not shipped from the client.
    return _check_weight_values(_like(sample_weight, X, "sample_weight"), n_samples)


def _check_weight_values(weights: Array, n_samples: int) -> Array:
    xp = namespace_and_device(weights)[0]
    if tuple(weights.shape) != (n_samples,):
        raise ValueError(
            f"sample_weight.shape == {tuple(weights.shape)}, expected ({n_samples},)!"
        )
    _check_finite(weights, "sample_weight")
    if bool(xp.any(weights < 0)):
        raise ValueError("Negative values in data passed to sample_weight: weights must be >= 0.")
    if not bool(xp.sum(weights) > 0):
        raise ValueError(
            "sample_weight sums to zero: at least one sample needs a positive weight."
        )
    return weights


def check_centers(centers: object, X: Array, n_clusters: int, name: str = "init") -> Array:
    """Validated initial centers of shape ``(n_clusters, n_features)`` in X's placement/dtype.

    With a Dask X, in-memory centers of any library on the host (a NumPy array, as
    scikit-learn and dask-ml users pass them) are checked in memory and moved explicitly;
    arrays on another device are refused, as for any X.
    """
    if _host_for_dask(centers, X):
        xp = namespace_and_device(X)[0]
        return xp.asarray(_check_center_values(_host_like(centers, X, name), X, n_clusters, name))
    return _check_center_values(_like(centers, X, name), X, n_clusters, name)


def _check_center_values(centers: Array, X: Array, n_clusters: int, name: str) -> Array:
    shape = tuple(centers.shape)
    if len(shape) != 2 or shape[0] != n_clusters:
        raise ValueError(
            f"The shape of the initial centers {shape} does not match the number of "
            f"clusters {n_clusters}."
        )
    if shape[1] != X.shape[1]:
        raise ValueError(
            f"The shape of the initial centers {shape} does not match the number of "
            f"features of the data {X.shape[1]}."
        )
    _check_finite(centers, name)
    return centers


def check_random_state(random_state: object) -> np.random.Generator | np.random.RandomState:
    """A NumPy ``Generator`` or ``RandomState`` to draw from on the host."""
    if random_state is None or isinstance(random_state, numbers.Integral):
        if isinstance(random_state, bool):
            raise InvalidParameterError(
                f"random_state must be None, an int, a Generator or a RandomState; got {random_state!r}."
            )
        return np.random.default_rng(random_state)
    if isinstance(random_state, (np.random.Generator, np.random.RandomState)):
        return random_state
    raise InvalidParameterError(
        "The 'random_state' parameter must be None, an int, a numpy.random.Generator or a "
        f"numpy.random.RandomState instance. Got {random_state!r} instead."
    )


def check_int(value: object, name: str, estimator_name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise InvalidParameterError(
            f"The {name!r} parameter of {estimator_name} must be an int in the range "
            f"[{low}, inf). Got {value!r} instead."
        )
    return int(value)


def check_n_samples(X: Array, n_clusters: int) -> None:
    if X.shape[0] < n_clusters:
        raise ValueError(f"n_samples={X.shape[0]} should be >= n_clusters={n_clusters}.")


# ---------------------------------------------------------------- feature names


def _is_dataframe(X: object) -> bool:
    module = type(X).__module__.split(".")[0]
    return module in ("pandas", "polars", "modin", "pyarrow") or hasattr(X, "__dataframe__")


def feature_names(X: object) -> np.ndarray | None:
    """The column names of a DataFrame (pandas, polars, or any with the interchange protocol)
    when they are all strings, as scikit-learn keeps them; ``None`` for anything else.

    Mixed string and non-string names raise ``TypeError`` (scikit-learn's rule): half-named
    columns cannot be checked at predict time.
    """
    if not _is_dataframe(X):
        return None
    columns = getattr(X, "columns", None)
    if columns is None:
        columns = list(X.__dataframe__().column_names())
    names = np.asarray(list(columns), dtype=object)
    if names.size == 0:
        return None
    types = sorted({type(name).__qualname__ for name in names})
    if len(types) > 1 and "str" in types:
        raise TypeError(
            "Feature names are only supported if all input features have string names, but your "
            f"input has {types} as feature name / column name types. If you want feature names to "
            "be stored and validated, you must convert them all to strings, by using "
            "X.columns = X.columns.astype(str) for example. Otherwise you can remove feature / "
            "column names from your input data, or convert them all to a non-string data type."
        )
    return names if types == ["str"] else None


def _listed(names: list) -> str:
    shown = [f"- {name}\n" for name in names[:5]]
    return "".join(shown) + ("- ...\n" if len(names) > 5 else "")


def check_feature_names(X: object, fitted: np.ndarray | None, estimator_name: str) -> None:
    """scikit-learn's checks of new data against the names seen by ``fit``: a warning when
    only one side has names, a ``ValueError`` naming the differences when they differ."""
    names = feature_names(X)
    if names is None and fitted is None:
        return
    if fitted is None:
        warnings.warn(
            f"X has feature names, but {estimator_name} was fitted without feature names",
            UserWarning, stacklevel=user_stacklevel(),
        )
        return
    if names is None:
        warnings.warn(
            f"X does not have valid feature names, but {estimator_name} was fitted with feature names",
            UserWarning, stacklevel=user_stacklevel(),
        )
        return
    if len(names) == len(fitted) and bool(np.all(names == fitted)):
        return
    unseen = sorted(set(names) - set(fitted))
    missing = sorted(set(fitted) - set(names))
    message = "The feature names should match those that were passed during fit.\n"
    if unseen:
        message += "Feature names unseen at fit time:\n" + _listed(unseen)
    if missing:
        message += "Feature names seen at fit time, yet now missing:\n" + _listed(missing)
    if not unseen and not missing:
        message += "Feature names must be in the same order as they were in fit.\n"
    raise ValueError(message)
