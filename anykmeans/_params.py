"""scikit-learn's estimator parameter protocol, without importing scikit-learn."""

from __future__ import annotations

import inspect
from typing import Any


class ParamsMixin:
    """``get_params`` / ``set_params`` / ``repr`` from the ``__init__`` signature.

    Subclasses store each ``__init__`` argument unchanged under its own name, so that
    ``sklearn.base.clone``, pipelines and grid searches work on them.
    """

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return sorted(
            name
            for name, p in signature.parameters.items()
            if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        )

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameters of this estimator, by name (``deep`` is accepted for compatibility)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> ParamsMixin:
        """Set parameters by name; unknown names raise ``ValueError``. Returns ``self``."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for estimator {type(self).__name__}. "
                    f"Valid parameters are: {valid!r}."
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            name: p.default for name, p in inspect.signature(type(self).__init__).parameters.items()
        }
        changed = []
        for name, value in self.get_params().items():
            default = defaults.get(name, inspect.Parameter.empty)
            if isinstance(value, str) or value is None or isinstance(value, (int, float, bool)):
                if type(value) is type(default) and value == default:
                    continue
                changed.append(f"{name}={value!r}")
            else:
                changed.append(f"{name}=<{type(value).__name__}>")
        return f"{type(self).__name__}({', '.join(changed)})"
