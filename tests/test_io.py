"""Reading data files (``anykmeans._io.read_data``): real files in ``tmp_path``, and the errors
that tell the user where the mistake is."""

import re

import numpy as np
import pytest

from anykmeans._io import DataFileError, read_data


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def _error(path, **kwargs):
    with pytest.raises(DataFileError) as exc:
        read_data(path, **kwargs)
    message = str(exc.value)
    assert str(path) in message
    return message


# ------------------------------------------------------------------------------------- CSV


def test_csv_with_a_header_returns_the_values_and_the_column_names(tmp_path):
    path = _write(tmp_path / "data.csv", "width, height,depth\n1,2,3\n4.5,-5e-1, 6\n\n7,8,9\n")
    X, columns = read_data(path)
    assert columns == ["width", "height", "depth"]
    assert X.dtype == np.float64 and X.shape == (3, 3)
    np.testing.assert_array_equal(X, [[1, 2, 3], [4.5, -0.5, 6], [7, 8, 9]])


def test_csv_without_a_header_and_in_float32(tmp_path):
    path = _write(tmp_path / "data.csv", "1,2\n3,4\n5,6")  # no newline at the end
    X, columns = read_data(str(path), dtype="float32")
    assert columns is None
    assert X.dtype == np.float32
    np.testing.assert_array_equal(X, [[1, 2], [3, 4], [5, 6]])


def test_csv_with_a_byte_order_mark_and_quoted_fields(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes('\ufeff"a","b"\n"1","2"\n3,4\n'.encode())
    X, columns = read_data(path)
    assert columns == ["a", "b"]
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])


def test_a_single_column_csv(tmp_path):
    X, columns = read_data(_write(tmp_path / "one.csv", "x\n1\n2\n3\n"))
    assert columns == ["x"] and X.shape == (3, 1)


def test_a_malformed_cell_names_the_file_line_column_and_text(tmp_path):
    path = _write(tmp_path / "people.csv", "age,weight,height\n1,2,3\n4,5,6\n\n7,8,abc\n")
    message = _error(path)
    # Line 5 as an editor counts (the blank line counts too), column 3 by number and name.
    assert message == f'{path}: line 5, column 3 ("height"): expected a number, got "abc"'


def test_a_malformed_cell_without_a_header_is_named_by_its_number(tmp_path):
    path = _write(tmp_path / "data.csv", "1,2\n3,x y\n")
    assert _error(path) == f'{path}: line 2, column 2: expected a number, got "x y"'


def test_an_empty_cell_is_a_missing_value(tmp_path):
    path = _write(tmp_path / "data.csv", "a,b\n1,2\n3,\n")
    message = _error(path)
    assert 'line 3, column 2 ("b"): expected a number, got an empty cell (a missing value)' in message


def test_ragged_rows_name_the_line_and_both_counts(tmp_path):
    path = _write(tmp_path / "data.csv", "a,b,c,d\n1,2,3,4\n5,6,7,8\n1,2,3,4\n9,9,9\n")
    assert _error(path) == f"{path}: line 5 has 3 fields, expected 4 as on line 1"


@pytest.mark.parametrize("text", ["", "\n\n", "  \n"])
def test_an_empty_csv(tmp_path, text):
    path = _write(tmp_path / "empty.csv", text)
    assert _error(path) == f"{path} is empty: expected rows of numbers, one sample per line"


def test_a_header_only_csv(tmp_path):
    path = _write(tmp_path / "header.csv", "a,b,c\n")
    message = _error(path)
    assert "has a header line (a, b, c) but no rows" in message and "expected rows of numbers" in message


@pytest.mark.parametrize(
    ("cell", "problem"),
    [("nan", "a missing value (NaN)"), ("NaN", "a missing value (NaN)"), ("inf", "an infinite value (inf)"),
     ("-Infinity", "an infinite value (-inf)"), ("1e400", "an infinite value (inf)")],
)
def test_nan_and_infinite_values_name_their_place(tmp_path, cell, problem):
    path = _write(tmp_path / "data.csv", f"x,y\n1,2\n3,4\n5,{cell}\n")
    message = _error(path)
    assert message.startswith(f'{path}: line 4, column 2 ("y"): {problem}: k-means needs finite numbers')


def test_a_value_beyond_float32_is_refused_only_in_float32(tmp_path):
    path = _write(tmp_path / "data.csv", "1,2\n3,1e39\n")
    X, _ = read_data(path)
    assert X[1, 1] == 1e39
    message = _error(path, dtype="float32")
    assert "line 2, column 2: 1e+39 is beyond the range of float32" in message


def test_a_file_that_is_not_text(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b"1,2\n\xff\xfe,3\n")
    assert "is not UTF-8 text" in _error(path)


# ------------------------------------------------------------------------------------- NPY


def test_npy_2d_array(tmp_path):
    path = tmp_path / "data.npy"
    data = np.arange(12, dtype=np.int32).reshape(4, 3)
    np.save(path, data)
    X, columns = read_data(path)
    assert columns is None and X.dtype == np.float64
    np.testing.assert_array_equal(X, data)
    assert read_data(path, dtype="float32")[0].dtype == np.float32


def test_npy_1d_array_suggests_a_reshape(tmp_path):
    path = tmp_path / "flat.npy"
    np.save(path, np.arange(5.0))
    message = _error(path)
    assert "a 1-D array of shape (5,): expected a 2-D array of shape (n_samples, n_features)" in message
    assert "X.reshape(-1, 1)" in message


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (np.array([[1, "a"]], dtype=object), "holds Python objects (object dtype"),
        (np.array([["a", "b"]]), "dtype <U1 (text): expected numbers"),
        (np.array([[1 + 2j]]), "complex numbers"),
    ],
)
def test_npy_of_objects_or_text_is_refused(tmp_path, data, expected):
    path = tmp_path / "bad.npy"
    np.save(path, data, allow_pickle=True)
    assert expected in _error(path)


def test_npy_nan_names_the_row_and_column(tmp_path):
    path = tmp_path / "nan.npy"
    data = np.ones((4, 3))
    data[2, 1] = np.nan
    np.save(path, data)
    assert "row 3 (index 2), column 2: a missing value (NaN)" in _error(path)


def test_a_file_that_is_not_npy(tmp_path):
    assert "is not a NumPy .npy file: expected a 2-D array" in _error(_write(tmp_path / "text.npy", "1,2\n3,4\n"))
    with open(tmp_path / "archive.npy", "wb") as file:
        np.savez(file, X=np.ones((2, 2)))
    assert "(it is a zip archive, such as a .npz file)" in _error(tmp_path / "archive.npy")
    assert "is empty" in _error(_write(tmp_path / "empty.npy", ""))


# --------------------------------------------------------------------------------- Parquet


def test_parquet_numeric_columns_with_their_names(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"a": [1, 2, 3], "b": [0.5, 1.5, 2.5], "flag": [True, False, True]}), path)
    X, columns = read_data(path)
    assert columns == ["a", "b", "flag"]
    np.testing.assert_array_equal(X, [[1, 0.5, 1], [2, 1.5, 0], [3, 2.5, 1]])


def test_parquet_refuses_a_text_column_and_nulls_naming_them(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "text.parquet"
    pq.write_table(pa.table({"a": [1, 2], "city": ["Oslo", "Lima"]}), path)
    assert 'column 2 ("city") has type string: expected numbers' in _error(path)
    path = tmp_path / "null.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0, 3.0], "b": [1.0, None, 3.0]}), path)
    assert 'row 2 (index 1), column 2 ("b"): a missing value (null)' in _error(path)


def test_a_file_that_is_not_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    assert "is not a readable Parquet file" in _error(_write(tmp_path / "data.parquet", "1,2\n"))


# ---------------------------------------------------------------------------- any file


def test_an_unknown_extension_lists_the_supported_ones(tmp_path):
    path = _write(tmp_path / "data.xlsx", "1,2\n")
    assert _error(path) == f"{path}: unsupported file type '.xlsx': expected one of .csv, .npy, .parquet"


def test_a_missing_file_and_a_folder(tmp_path):
    assert _error(tmp_path / "nowhere.csv") == f"{tmp_path / 'nowhere.csv'}: no such file"
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    assert "is a folder" in _error(folder)


def test_the_error_is_a_value_error_and_dtype_is_checked(tmp_path):
    assert issubclass(DataFileError, ValueError)
    with pytest.raises(ValueError, match=re.escape("dtype must be one of ('float32', 'float64')")):
        read_data(_write(tmp_path / "data.csv", "1\n"), dtype="int8")
