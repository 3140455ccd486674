"""Saving a fitted :class:`~anykmeans.KMeans` to a ``.npz`` file and loading it back, without pickle.

``KMeans.save(path)`` writes, and ``anykmeans.load(path)`` reads, a NumPy ``.npz`` archive (a
zip of ``.npy`` files, uncompressed) in which no entry is an object array, so that
``numpy.load(path, allow_pickle=False)`` reads every entry and loading a file runs no code
from it. The file is written at exactly ``path`` (NumPy's own ``savez`` would append ``.npz``
to a name without it; this does not), through a temporary file in the same folder that
replaces ``path`` once complete, so that a failed save never leaves half a model behind.

Layout, format version 1
------------------------
``__meta__``
    A 0-d NumPy unicode array holding a JSON object:

    ``format``             ``"anykmeans.KMeans"``
    ``format_version``     ``1``; files of a newer version are refused with both versions named
    ``anykmeans_version``  the ``anykmeans.__version__`` that wrote the file
    ``estimator``          the class name: ``"KMeans"`` or ``"MiniBatchKMeans"`` load as that
                           class; another name (a user's subclass) loads as ``KMeans``
    ``params``             ``get_params()``. Strings, numbers, booleans and ``None`` as such;
                           an array ``init`` as ``{"__array__": "param:init"}``, the name of
                           its entry; a ``numpy.random.Generator`` or ``RandomState``
                           ``random_state`` as ``{"__random_state__": "Generator" or
                           "RandomState", "state": ...}``, its bit generator's state (NumPy
                           arrays in it as ``{"__ndarray__": [...], "dtype": "uint32"}``).
                           A callable ``init`` cannot be saved: ``save`` refuses it.
    ``attributes``         the fitted attributes that are JSON values: ``n_iter_``,
                           ``inertia_``, ``n_features_in_``, ``_n_features_out``,
                           ``_fit_stats`` (namespace, device, kernels, seconds, best_run,
                           cluster_sizes) and, when ``set_output`` was called,
                           ``_sklearn_output_config``
    ``arrays``             the names of the array attributes, each stored in its own entry
    ``array_lists``        ``{"inertia_history_": n}``: attributes that are lists of arrays,
                           stored as entries ``inertia_history_0`` … ``inertia_history_{n-1}``
    ``object_arrays``      the array attributes that were object arrays of ``str`` (such as
                           ``feature_names_in_``): stored as unicode arrays, turned back into
                           object arrays on loading

``cluster_centers_``      (n_clusters, n_features), the dtype of the fit (float32 or float64)
``labels_``               (n_samples,), the training labels
``_fit_mean``             (n_features,), the mean the fit centred the data with
``inertia_history_0`` …   (n_iter,) float64: the inertia of each iteration of each run
``feature_names_in_``     (n_features,) unicode, when the model has it
``param:init``            (n_clusters, n_features), when ``init`` is an array

Every array attribute, whichever library and device it lives on (PyTorch, CuPy, Dask, …), is
stored as a NumPy array, and a loaded model's arrays are NumPy arrays: ``predict``,
``transform`` and ``score`` of the loaded model give the original model's results.
Attributes the estimator gains later are saved the same way, by kind (a JSON value, an
array, a list of arrays), so that nothing a fit sets is dropped silently.
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import Any

import numpy as np

from ._arrays import is_array
from ._kmeans import KMeans
from ._transfers import to_host_numpy

FORMAT = "anykmeans.KMeans"
FORMAT_VERSION = 1
META_KEY = "__meta__"
_PARAM_PREFIX = "param:"
# The bit generators a saved random_state may name: the file names one, and only these are
# looked up (a file never chooses what gets called).
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


class ModelFileError(ValueError):
    """A file that is not an anykmeans model, is damaged, or has a newer format version."""


# ---------------------------------------------------------------------------------- saving


def save_model(km: KMeans, path: str | os.PathLike) -> None:
    """Write fitted ``km`` to ``path`` in the layout of this module's docstring.

    Raises :class:`~anykmeans.NotFittedError` for a model that is not fitted and
    ``ValueError`` for a parameter or attribute that cannot be stored without pickle (a
    callable ``init``).
    """
    km._check_fitted()
    entries: dict[str, np.ndarray] = {}
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "anykmeans_version": _version(),
        "estimator": type(km).__name__,
        "params": _encode_params(km, entries),
        **_encode_attributes(km, entries),
    }
    # Everything is encoded before the file is opened: a refused model writes nothing.
    text = json.dumps(meta, default=_json_scalar, sort_keys=False)
    _write_archive(os.fspath(path), {META_KEY: np.array(text), **entries})


def _version() -> str:
    # Imported here: the package imports this module before it defines __version__.
    from . import __version__

    return __version__


def _json_scalar(value: Any) -> Any:
    """``json.dumps``'s fallback: NumPy scalars as Python numbers; anything else is refused."""
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return value.item()
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def _encode_params(km: KMeans, entries: dict[str, np.ndarray]) -> dict[str, Any]:
    params = {}
    for name, value in km.get_params().items():
        if callable(value):
            raise ValueError(
                f"Cannot save this {type(km).__name__}: its {name!r} parameter is a callable "
                f"({getattr(value, '__name__', type(value).__name__)}), and a model file holds no "
                f"code. Set {name} to the fitted centers (km.set_params({name}=km.cluster_centers_)) "
                f"or to 'k-means++' or 'random' before saving."
            )
        if isinstance(value, (np.random.Generator, np.random.RandomState)):
            params[name] = _encode_random_state(value)
        elif is_array(value) or isinstance(value, (list, tuple)) or hasattr(value, "__array__"):
            key = _PARAM_PREFIX + name
            entries[key] = _host_array(value, f"parameter {name!r}")
            params[name] = {"__array__": key}
        elif value is None or isinstance(value, (str, bool, int, float, np.generic)):
            params[name] = value.item() if isinstance(value, np.generic) else value
        else:
            raise ValueError(
                f"Cannot save this {type(km).__name__}: its {name!r} parameter is a "
                f"{type(value).__name__}; a model file stores strings, numbers, None, arrays "
                "and NumPy random generators."
            )
    return params


def _encode_random_state(rng: np.random.Generator | np.random.RandomState) -> dict[str, Any]:
    if isinstance(rng, np.random.Generator):
        return {"__random_state__": "Generator", "state": _plain(rng.bit_generator.state)}
    return {"__random_state__": "RandomState", "state": _plain(rng.get_state(legacy=False))}


def _plain(value: Any) -> Any:
    """A bit generator's state as JSON values (its arrays tagged with their dtype)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": value.dtype.str}
    return value.item() if isinstance(value, np.generic) else value


def _encode_attributes(km: KMeans, entries: dict[str, np.ndarray]) -> dict[str, Any]:
    """The fitted (and other non-parameter) attributes, sorted by kind: JSON values go in the
    metadata, arrays and lists of arrays in entries of their own."""
    params = set(km._param_names())
    attributes: dict[str, Any] = {}
    arrays: list[str] = []
    array_lists: dict[str, int] = {}
    object_arrays: list[str] = []
    for name, value in vars(km).items():
        if name in params:
            continue
        if _is_array_value(value):
            array = _host_array(value, f"attribute {name!r}")
            if isinstance(value, np.ndarray) and value.dtype == object:
                object_arrays.append(name)
            entries[name] = array
            arrays.append(name)
        elif isinstance(value, (list, tuple)) and value and all(_is_array_value(item) for item in value):
            for index, item in enumerate(value):
                entries[f"{name}{index}"] = _host_array(item, f"attribute {name!r}")
            array_lists[name] = len(value)
        else:
            try:
                json.dumps(value, default=_json_scalar)
            except (TypeError, ValueError):
                raise ValueError(
                    f"Cannot save this {type(km).__name__}: its attribute {name!r} is a "
                    f"{type(value).__name__}, which a model file cannot store without pickle."
                ) from None
            attributes[name] = value
    return {
        "attributes": attributes,
        "arrays": arrays,
        "array_lists": array_lists,
        "object_arrays": object_arrays,
    }


def _is_array_value(value: Any) -> bool:
    # NumPy scalars are array-API objects too, but they are numbers: they go in the JSON.
    return not isinstance(value, np.generic) and (is_array(value) or isinstance(value, np.ndarray))


def _host_array(value: Any, what: str) -> np.ndarray:
    """``value`` as a NumPy array that ``numpy.load(allow_pickle=False)`` reads back: copied
    from its device, object arrays of strings turned into unicode arrays."""
    array = to_host_numpy(value) if is_array(value) else np.asarray(value)
    if array.dtype == object:
        if not all(isinstance(item, str) for item in array.flat):
            raise ValueError(
                f"Cannot save {what}: it is an object array whose items are not all strings, "
                "which a model file cannot store without pickle."
            )
        array = array.astype(str)
    return array


def _write_archive(path: str, entries: dict[str, np.ndarray]) -> None:
    """``numpy.savez`` into exactly ``path`` (no ``.npz`` appended), all or nothing."""
    folder, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "xb") as file:
            # Uncompressed: zlib takes seconds on millions of labels and saves little on centers.
            np.savez(file, **entries)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


# --------------------------------------------------------------------------------- loading


def load(path: str | os.PathLike) -> KMeans:
    """Read a model written by :meth:`KMeans.save <anykmeans.KMeans.save>`.

    The file is read with ``numpy.load(..., allow_pickle=False)``: it holds no code, and
    loading it runs none. The model's arrays are NumPy arrays, whichever library it was
    fitted with; ``predict``, ``transform`` and ``score`` give the saved model's results.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.npz`` file.

    Returns
    -------
    KMeans

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is not an anykmeans model, is damaged, or was written in a newer format
        version than this anykmeans reads (the message names both versions).
    """
    name = os.fspath(path)
    # Opened here, not by numpy.load, which leaves its file open when the zip is damaged.
    with open(name, "rb") as file:
        try:
            archive = np.load(file, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            file.seek(0)
            if file.read(4) == b"PK\x03\x04":
                raise ModelFileError(f"{name} is a damaged .npz archive (an incomplete copy?): {exc}") from None
            # NumPy's own message ("Cannot load file containing pickled data …") misleads here.
            raise ModelFileError(
                f"{name} is not an anykmeans model file: expected a .npz archive written by KMeans.save"
            ) from None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ModelFileError(
                f"{name} is not an anykmeans model file: it holds a single NumPy array, not a .npz "
                "archive written by KMeans.save"
            )
        with archive:
            try:
                return _rebuild(name, archive)
            except (zipfile.BadZipFile, EOFError, OSError, KeyError, TypeError) as exc:
                # A truncated archive, or metadata of the wrong shape (edited by hand).
                raise ModelFileError(f"{name} is damaged: {exc}") from None


def _rebuild(name: str, archive: np.lib.npyio.NpzFile) -> KMeans:
    meta = _read_meta(name, archive)

    def entry(key: str) -> np.ndarray:
        if key not in archive.files:
            raise ModelFileError(f"{name} is damaged: its entry {key!r} is missing")
        return archive[key]

    params = {}
    for param, value in meta.get("params", {}).items():
        if isinstance(value, dict) and "__array__" in value:
            value = entry(value["__array__"])
        elif isinstance(value, dict) and "__random_state__" in value:
            value = _decode_random_state(name, value)
        params[param] = value
    km = _estimator_class(meta.get("estimator"))()
    try:
        km.set_params(**params)
    except ValueError as exc:
        raise ModelFileError(f"{name}: {exc}") from None

    fitted: dict[str, Any] = dict(meta.get("attributes", {}))
    for attribute in meta.get("arrays", []):
        fitted[attribute] = entry(attribute)
    for attribute in meta.get("object_arrays", []):
        fitted[attribute] = fitted[attribute].astype(object)
    for attribute, count in meta.get("array_lists", {}).items():
        fitted[attribute] = [entry(f"{attribute}{index}") for index in range(count)]
    if "cluster_centers_" not in fitted:
        raise ModelFileError(f"{name} is damaged: it has no cluster_centers_")
    for attribute, value in fitted.items():
        setattr(km, attribute, value)
    return km


def _estimator_class(name: Any) -> type:
    """The class a file names, among anykmeans' estimators (a file never chooses what gets
    called); another name, such as a user's subclass, loads as KMeans."""
    from ._minibatch import MiniBatchKMeans

    return {"MiniBatchKMeans": MiniBatchKMeans}.get(name, KMeans)


def _read_meta(name: str, archive: np.lib.npyio.NpzFile) -> dict[str, Any]:
    """The metadata, checked to be anykmeans' and of a format version this code reads."""
    if META_KEY not in archive.files:
        raise ModelFileError(
            f"{name} is not an anykmeans model file: this .npz archive has no {META_KEY!r} "
            "entry (it was not written by KMeans.save)"
        )
    raw = archive[META_KEY]
    try:
        meta = json.loads(str(raw[()])) if raw.shape == () and raw.dtype.kind == "U" else None
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(
            f"{name} is not an anykmeans model file: its {META_KEY!r} entry does not describe "
            f"a {FORMAT!r} model"
        )
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"{name} is damaged: its format_version is {version!r}")
    if version > FORMAT_VERSION:
        writer = meta.get("anykmeans_version", "a newer version")
        raise ModelFileError(
            f"{name} has model format version {version} (written by anykmeans {writer}); "
            f"this anykmeans ({_version()}) reads format version {FORMAT_VERSION}: upgrade "
            "anykmeans to load it"
        )
    return meta


def _decode_random_state(name: str, value: dict[str, Any]) -> np.random.Generator | np.random.RandomState:
    kind = value["__random_state__"]
    try:
        state = _from_plain(value.get("state"))
        bit_generator = state.get("bit_generator") if isinstance(state, dict) else None
        if bit_generator not in _BIT_GENERATORS or kind not in ("Generator", "RandomState"):
            raise ValueError(f"{kind} of bit generator {bit_generator!r}")
        generator = getattr(np.random, bit_generator)()
        if kind == "Generator":
            generator.state = state
            return np.random.Generator(generator)
        rng = np.random.RandomState(generator)
        rng.set_state(state)
        return rng
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelFileError(f"{name} is damaged: its random_state cannot be restored ({exc})") from None


def _from_plain(value: Any) -> Any:
    if isinstance(value, dict):
        if "__ndarray__" in value:
            dtype = np.dtype(value["dtype"])
            if dtype.kind not in "biuf":
                raise ValueError(f"a random_state array of dtype {dtype}")
            return np.asarray(value["__ndarray__"], dtype=dtype)
        return {key: _from_plain(item) for key, item in value.items()}
    return value
