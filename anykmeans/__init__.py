"""anykmeans: k-means written once against the Python Array API standard.

NumPy, PyTorch, CuPy, array-api-strict and other array-API libraries run the same code; the
kernels are pluggable (see :mod:`anykmeans.backends`). ``set_config(device=...)`` chooses
where the work runs and ``show_config()`` reports versions, devices and backends.
"""

from ._checkout import find_checkout_backends

find_checkout_backends()
del find_checkout_backends

from ._config import config_context, get_config, set_config  # noqa: E402
from ._exceptions import ConvergenceWarning, DeviceFallbackWarning, InvalidParameterError, NotFittedError  # noqa: E402
from ._info import show_config  # noqa: E402
from ._kmeans import KMeans  # noqa: E402
from ._minibatch import MiniBatchKMeans  # noqa: E402
from ._persistence import load  # noqa: E402
from ._seeding import kmeans_plusplus  # noqa: E402
from . import backends  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "ConvergenceWarning",
    "DeviceFallbackWarning",
    "InvalidParameterError",
    "KMeans",
    "MiniBatchKMeans",
    "NotFittedError",
    "__version__",
    "backends",
    "config_context",
    "get_config",
    "kmeans_plusplus",
    "load",
    "set_config",
    "show_config",
]
