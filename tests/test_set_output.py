"""``set_output(transform="pandas")``: DataFrames out of ``transform`` and ``fit_transform``,
alone, through scikit-learn's global setting, and inside a Pipeline."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("sklearn")

from sklearn import config_context as sklearn_config_context  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils import estimator_checks  # noqa: E402

from anykmeans import KMeans  # noqa: E402


def _frame():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3)) + rng.normal(scale=6.0, size=(3, 3))[rng.integers(0, 3, size=60)]
    return pd.DataFrame(X, columns=["a", "b", "c"], index=[f"row{i}" for i in range(60)])


@pytest.mark.parametrize(
    "check", ["check_set_output_transform", "check_set_output_transform_pandas", "check_global_output_transform_pandas"]
)
def test_scikit_learn_set_output_checks(check):
    with warnings.catch_warnings():
        # The checks fit on a DataFrame and transform an array and the other way round, on
        # purpose: the feature-name warnings (scikit-learn's own) are expected there.
        warnings.filterwarnings("ignore", message="X (does not have valid|has) feature names", category=UserWarning)
        getattr(estimator_checks, check)("KMeans", KMeans(3, random_state=0))


def test_pandas_output_alone_and_in_a_pipeline():
    df = _frame()
    model = KMeans(3, random_state=0).set_output(transform="pandas")
    distances = model.fit_transform(df)
    assert isinstance(distances, pd.DataFrame)
    assert list(distances.columns) == ["kmeans0", "kmeans1", "kmeans2"]
    assert list(distances.index) == list(df.index)
    np.testing.assert_array_equal(distances.to_numpy(), KMeans(3, random_state=0).fit_transform(df.to_numpy()))
    assert isinstance(clone(model).fit(df).transform(df), pd.DataFrame)  # clone keeps the choice

    pipeline = make_pipeline(StandardScaler(), KMeans(3, random_state=0)).set_output(transform="pandas")
    out = pipeline.fit_transform(df)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == ["kmeans0", "kmeans1", "kmeans2"]
    assert isinstance(model.set_output(transform="default").transform(df), np.ndarray)


def test_scikit_learns_global_setting_applies_and_a_local_one_wins():
    df = _frame()
    with sklearn_config_context(transform_output="pandas"):
        assert isinstance(KMeans(3, random_state=0).fit_transform(df), pd.DataFrame)
        local = KMeans(3, random_state=0).set_output(transform="default")
        assert isinstance(local.fit_transform(df), np.ndarray)


def test_unknown_output_container_is_refused():
    with pytest.raises(ValueError, match=r"transform must be one of \('default', 'pandas', 'polars'\)"):
        KMeans(3).set_output(transform="arrow")
