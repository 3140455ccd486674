"""scikit-learn's ``set_output`` protocol for ``transform``: NumPy-like arrays by default, or
pandas / polars DataFrames named by ``get_feature_names_out``, without importing scikit-learn."""

from __future__ import annotations

import sys

from ._transfers import to_host_numpy
from ._typing import Array

_CHOICES = ("default", "pandas", "polars")


class SetOutputMixin:
    """``set_output(transform=...)``, honoured by ``transform`` and ``fit_transform``."""

    def set_output(self, *, transform: str | None = None) -> SetOutputMixin:
        """Choose the container of ``transform`` and ``fit_transform`` results.

        Parameters
        ----------
        transform : {"default", "pandas", "polars"} or None
            ``"default"``: arrays in the input's library (or as the ``output`` setting says);
            ``"pandas"`` / ``"polars"``: a DataFrame with columns ``kmeans0``, ``kmeans1``, …
            (and, for pandas input, its index); ``None`` leaves the choice unchanged.

        Returns
        -------
        self
        """
        if transform is None:
            return self
        if transform not in _CHOICES:
            raise ValueError(f"transform must be one of {_CHOICES} or None; got {transform!r}.")
        # scikit-learn's attribute name, so that sklearn.base.clone carries the choice over.
        self._sklearn_output_config = {"transform": transform}
        return self

    def _transform_container(self) -> str:
        chosen = getattr(self, "_sklearn_output_config", {}).get("transform")
        if chosen is None and "sklearn" in sys.modules:
            # scikit-learn's global set_config(transform_output=...) applies as it does to its
            # own transformers (read only when the user has imported scikit-learn).
            chosen = sys.modules["sklearn"].get_config().get("transform_output", "default")
        return chosen or "default"

    def _wrap_output(self, result: Array, X: object) -> object:
        container = self._transform_container()
        if container == "default":
            return result
        columns = list(self.get_feature_names_out())
        data = to_host_numpy(result)
        if container == "pandas":
            import pandas as pd

            index = X.index if isinstance(X, pd.DataFrame) else None
            return pd.DataFrame(data, columns=columns, index=index)
        import polars as pl

        return pl.DataFrame(data, schema=columns)
