"""Reading data files for the command line: ``.csv``, ``.npy`` and ``.parquet``.

:func:`read_data` returns a 2-D float array of shape (n_samples, n_features) and the column
names when the file has them. A mistake in the file raises :class:`DataFileError` with the
file, where (line and column for CSV, row and column for arrays and Parquet), the offending
text and what was expected, so that the user can go straight to it.
"""

from __future__ import annotations

import array
import csv
import json
import os
from typing import Any

import numpy as np

SUPPORTED = (".csv", ".npy", ".parquet")
_DTYPES = ("float32", "float64")


class DataFileError(ValueError):
    """A data file that cannot be used as k-means input; the message says where and why."""


def read_data(path: str | os.PathLike, *, dtype: str = "float64") -> tuple[np.ndarray, list[str] | None]:
    """Read the samples in ``path`` as a float array of shape (n_samples, n_features).

    Parameters
    ----------
    path : str or os.PathLike
        A ``.csv`` file (comma-separated numbers, one sample per line, with an optional
        header line of column names: a first line that is not all numbers), a ``.npy`` file
        (a numeric 2-D array) or a ``.parquet`` file (numeric columns; needs pyarrow).
    dtype : {"float64", "float32"}
        The dtype of the returned array.

    Returns
    -------
    X : numpy.ndarray of shape (n_samples, n_features)
    columns : list of str or None
        The column names of a CSV header or of a Parquet file; ``None`` for ``.npy`` files
        and CSV files without a header.

    Raises
    ------
    DataFileError
        A missing file, an unsupported extension, or a file that is not a table of finite
        numbers: the message names the file, the line (or row) and column, and the offending
        text.
    ImportError
        A ``.parquet`` file without pyarrow installed.
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {_DTYPES}; got {dtype!r}")
    name = os.fspath(path)
    if not os.path.exists(name):
        raise DataFileError(f"{name}: no such file")
    if os.path.isdir(name):
        raise DataFileError(f"{name} is a folder: expected a data file")
    extension = os.path.splitext(name)[1].lower()
    readers = {".csv": _read_csv, ".npy": _read_npy, ".parquet": _read_parquet}
    if extension not in readers:
        raise DataFileError(
            f"{name}: unsupported file type {extension or '(no extension)'!r}: "
            f"expected one of {', '.join(SUPPORTED)}"
        )
    try:
        X, columns, where = readers[extension](name)
    except UnicodeDecodeError as exc:
        raise DataFileError(
            f"{name} is not UTF-8 text (byte {exc.start + 1}): expected a CSV file of numbers"
        ) from None
    except OSError as exc:
        raise DataFileError(f"{name}: cannot read it: {exc.strerror or exc}") from None
    _check_finite(name, X, X, columns, where)
    if dtype == "float32":
        with np.errstate(over="ignore"):  # overflow is reported below, with its place
            X32 = X.astype(np.float32)
        _check_finite(name, X32, X, columns, where)
        X = X32
    return X, columns


def _column(index: int, columns: list[str] | None) -> str:
    """A column as an editor or spreadsheet user finds it: 1-based, with its name if any."""
    if columns and columns[index]:
        return f"column {index + 1} ({_quoted(columns[index])})"
    return f"column {index + 1}"


def _quoted(text: str) -> str:
    """``text`` in double quotes, its control characters escaped (a stray tab shows as \\t)."""
    return json.dumps(text, ensure_ascii=False)


def _check_finite(name: str, X: np.ndarray, read: np.ndarray, columns: list[str] | None, where: Any) -> None:
    """Refuse NaN and infinite values in ``X`` (k-means distances are undefined with them),
    naming the first one's place and its value as read (``read``, float64)."""
    bad = ~np.isfinite(X)
    if not bad.any():
        return
    row, col = np.argwhere(bad)[0]
    value = read[row, col]
    place = f"{name}: {where(row)}, {_column(col, columns)}"
    if np.isfinite(value):
        raise DataFileError(f"{place}: {value:g} is beyond the range of float32 (about ±3.4e38): read it as float64")
    problem = "a missing value (NaN)" if np.isnan(value) else f"an infinite value ({value})"
    raise DataFileError(f"{place}: {problem}: k-means needs finite numbers (drop or fill in those rows first)")


def _array_row(row: int) -> str:
    return f"row {row + 1} (index {row})"


# ------------------------------------------------------------------------------------- CSV


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_csv(name: str) -> tuple[np.ndarray, list[str] | None, Any]:
    # utf-8-sig: spreadsheets often start their CSV files with a byte-order mark.
    with open(name, newline="", encoding="utf-8-sig") as file:
        reader = csv.reader(file)
        values = array.array("d")  # 8 bytes a value, not a Python float object each
        lines = array.array("q")  # the line of each data row, for the error messages
        columns: list[str] | None = None
        width = 0
        first_line = 0
        try:
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank lines (a trailing newline, spacing) carry no sample
                line = reader.line_num
                if not width:
                    width, first_line = len(row), line
                    if not all(_is_number(field) for field in row):
                        columns = [field.strip() for field in row]
                        continue
                if len(row) != width:
                    raise DataFileError(
                        f"{name}: line {line} has {len(row)} field{'s' * (len(row) != 1)}, expected "
                        f"{width} as on line {first_line}"
                    )
                try:
                    values.extend(map(float, row))
                except ValueError:
                    raise _bad_cell(name, line, row, columns) from None
                lines.append(line)
        except csv.Error as exc:
            raise DataFileError(f"{name}: line {reader.line_num}: {exc}") from None
    if not width:
        raise DataFileError(f"{name} is empty: expected rows of numbers, one sample per line")
    if not lines:
        raise DataFileError(
            f"{name} has a header line ({', '.join(columns or [])}) but no rows: expected rows of "
            "numbers below it"
        )
    X = np.frombuffer(values, dtype=np.float64).reshape(len(lines), width)
    return X, columns, lambda row: f"line {lines[row]}"


def _bad_cell(name: str, line: int, row: list[str], columns: list[str] | None) -> DataFileError:
    """The error for the first cell of ``row`` that is not a number."""
    index = next(i for i, field in enumerate(row) if not _is_number(field))
    text = row[index]
    got = "an empty cell (a missing value)" if not text.strip() else _quoted(text)
    return DataFileError(f"{name}: line {line}, {_column(index, columns)}: expected a number, got {got}")


# ------------------------------------------------------------------------------------- NPY


def _read_npy(name: str) -> tuple[np.ndarray, None, Any]:
    with open(name, "rb") as file:
        start = file.read(6)
    # Checked first: numpy.load takes any other file for a pickle, and its message says so.
    if not start:
        raise DataFileError(f"{name} is empty: expected a NumPy .npy file of a 2-D array")
    if start != b"\x93NUMPY":
        found = " (it is a zip archive, such as a .npz file)" if start.startswith(b"PK") else ""
        raise DataFileError(f"{name} is not a NumPy .npy file{found}: expected a 2-D array saved by numpy.save")
    try:
        # No pickle: a data file must not run code.
        X = np.load(name, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise DataFileError(
                f"{name} is not a NumPy array of numbers: it holds Python objects (object dtype, "
                "which would need pickle): expected a numeric 2-D array"
            ) from None
        raise DataFileError(f"{name} is a damaged .npy file ({exc})") from None
    except EOFError:
        raise DataFileError(f"{name} is a truncated .npy file") from None
    if X.dtype.kind not in "biuf":
        raise DataFileError(
            f"{name} holds an array of dtype {X.dtype} ({_kind_name(X.dtype)}): expected numbers "
            "(integers or floats)"
        )
    if X.ndim != 2:
        hint = ""
        if X.ndim == 1:
            hint = (
                f"; for {X.shape[0]} samples of one feature, save X.reshape(-1, 1), for one "
                "sample, X.reshape(1, -1)"
            )
        raise DataFileError(
            f"{name} holds a {X.ndim}-D array of shape {X.shape}: expected a 2-D array of shape "
            f"(n_samples, n_features){hint}"
        )
    if X.size == 0:
        raise DataFileError(f"{name} holds an empty array of shape {X.shape}: expected rows of numbers")
    return X.astype(np.float64), None, _array_row


def _kind_name(dtype: np.dtype) -> str:
    return {"U": "text", "S": "bytes", "O": "Python objects", "c": "complex numbers", "V": "records"}.get(
        dtype.kind, "not numbers"
    )


# --------------------------------------------------------------------------------- Parquet


def _read_parquet(name: str) -> tuple[np.ndarray, list[str], Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(
            f"Reading {name} needs pyarrow, which is not installed: pip install pyarrow"
        ) from None
    try:
        table = pq.read_table(name)
    except (pa.ArrowException, ValueError) as exc:
        raise DataFileError(f"{name} is not a readable Parquet file ({exc})") from None
    columns = [str(column) for column in table.column_names]
    if not columns or table.num_rows == 0:
        raise DataFileError(
            f"{name} is empty: expected rows of numbers ({table.num_rows} rows, {len(columns)} columns)"
        )
    data = []
    for index, column in enumerate(table.columns):
        kind = column.type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
            raise DataFileError(
                f"{name}: {_column(index, columns)} has type {kind}: expected numbers (integers or "
                "floats); drop or encode that column first"
            )
        if column.null_count:
            row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
            raise DataFileError(
                f"{name}: {_array_row(row)}, {_column(index, columns)}: a missing value (null): k-means "
                "needs finite numbers (drop or fill in those rows first)"
            )
        data.append(column.to_numpy().astype(np.float64))
    return np.column_stack(data), columns, _array_row
