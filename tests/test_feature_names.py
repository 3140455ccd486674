"""``feature_names_in_`` from DataFrames, and scikit-learn's checks of new data against it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import anykmeans

pd = pytest.importorskip("pandas")


def _frame(columns, n=60, seed=0):
    data = np.random.default_rng(seed).normal(size=(n, len(columns)))
    return pd.DataFrame(data, columns=columns)


def test_string_columns_become_feature_names_and_are_checked():
    X = _frame(["a", "b", "c"])
    km = anykmeans.KMeans(3, random_state=0).fit(X)
    np.testing.assert_array_equal(km.feature_names_in_, ["a", "b", "c"])
    assert km.feature_names_in_.dtype == object
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        labels = km.predict(X)  # the same names: no warning
    np.testing.assert_array_equal(labels, km.labels_)
    with pytest.raises(ValueError) as info:
        km.predict(X.rename(columns={"a": "x"}))
    assert str(info.value) == (
        "The feature names should match those that were passed during fit.\n"
        "Feature names unseen at fit time:\n- x\n"
        "Feature names seen at fit time, yet now missing:\n- a\n"
    )
    with pytest.raises(ValueError, match="must be in the same order as they were in fit"):
        km.transform(X[["b", "a", "c"]])
    with pytest.warns(UserWarning, match="X does not have valid feature names, but KMeans was fitted with feature names"):
        km.score(X.to_numpy())


def test_our_messages_match_scikit_learns():
    from sklearn.cluster import KMeans as SklearnKMeans

    X = _frame([f"f{i}" for i in range(7)])
    renamed = X.rename(columns={f"f{i}": f"g{i}" for i in range(7)})
    errors = []
    for cls in (anykmeans.KMeans, SklearnKMeans):
        km = cls(2, n_init=1, random_state=0).fit(X)
        with pytest.raises(ValueError) as info:
            km.predict(renamed)
        errors.append(str(info.value))
    assert errors[0] == errors[1]  # five names, then "- ...", on each side


def test_a_model_fitted_without_names_warns_on_a_frame():
    X = _frame(["a", "b"])
    km = anykmeans.KMeans(2, random_state=0).fit(X.to_numpy())
    assert not hasattr(km, "feature_names_in_")
    with pytest.warns(UserWarning, match="X has feature names, but KMeans was fitted without feature names"):
        km.predict(X)


def test_refitting_without_names_forgets_them_and_non_string_names_are_not_kept():
    km = anykmeans.KMeans(2, random_state=0).fit(_frame(["a", "b"]))
    km.fit(_frame([0, 1]))  # integer column names: none kept, as scikit-learn
    assert not hasattr(km, "feature_names_in_")
    with pytest.raises(TypeError, match="Feature names are only supported if all input features have string names"):
        anykmeans.KMeans(2).fit(_frame(["a", 1]))


def test_polars_frames_have_names_too():
    pl = pytest.importorskip("polars")
    X = pl.DataFrame({"u": [0.0, 1.0, 5.0, 6.0], "v": [0.0, 1.0, 5.0, 6.0]})
    km = anykmeans.KMeans(2, random_state=0).fit(X)
    np.testing.assert_array_equal(km.feature_names_in_, ["u", "v"])
    with pytest.raises(ValueError, match="Feature names unseen at fit time"):
        km.predict(X.rename({"u": "w"}))
