"""The thread cap: ``n_threads`` and threadpoolctl limits bound the CPU time a fit takes per
second of wall time, and the results do not depend on it."""

from __future__ import annotations

import subprocess
import sys
import tempfile

import numpy as np
import pytest

import anykmeans

threadpoolctl = pytest.importorskip("threadpoolctl")


# The CPU time is measured in a fresh interpreter: in the suite's long-lived process, after
# hundreds of other tests, a native thread that none of ours is shared the fits' work (two
# cores with n_threads=1), which this file alone never showed.
_CAPPED_FIT = """
import sys, time
import numpy as np
import threadpoolctl
import anykmeans
from anykmeans import KMeans

def cores_used(fit):
    cpu, wall = time.process_time(), time.perf_counter()
    result = fit()
    return (time.process_time() - cpu) / (time.perf_counter() - wall), result

X = np.random.default_rng(0).normal(size=(300_000, 32)).astype(np.float32)
init = X[:64].copy()
fit = lambda: KMeans(64, init=init, max_iter=8, tol=0).fit(X)
with anykmeans.config_context(kernels=sys.argv[1]):
    KMeans(8, max_iter=2, random_state=0).fit(X[:5000])  # compile, start the pools
    _, free = cores_used(fit)
    with anykmeans.config_context(n_threads=1):
        capped_cores, capped = cores_used(fit)
    with threadpoolctl.threadpool_limits(limits=1):
        limited_cores, limited = cores_used(fit)
for other in (capped, limited):
    assert (other.cluster_centers_ == free.cluster_centers_).all()
    assert (other.labels_ == free.labels_).all()
assert anykmeans.get_config()["n_threads"] == "auto"
print(capped_cores, limited_cores)
"""


@pytest.mark.parametrize("kernels", ["auto", "numpy"])
def test_n_threads_and_threadpool_limits_cap_the_cpu_time_of_a_fit(kernels):
    result = subprocess.run(
        [sys.executable, "-c", _CAPPED_FIT, kernels], capture_output=True, text=True,
        cwd=tempfile.gettempdir(), timeout=600,
    )
    assert result.returncode == 0, result.stderr
    capped, limited = map(float, result.stdout.split())
    assert capped < 1.3, f"{capped:.2f} cores with n_threads=1"
    assert limited < 1.3, f"{limited:.2f} cores under threadpool_limits(1)"


def test_n_threads_setting_and_environment_variable():
    with anykmeans.config_context(n_threads=3) as inside:
        assert inside["n_threads"] == 3
    with anykmeans.config_context(n_threads=np.int64(2)) as inside:
        assert inside["n_threads"] == 2 and type(inside["n_threads"]) is int
    for bad in (0, -1, 1.5, "many", True):
        with pytest.raises(ValueError, match="n_threads must be 'auto' or a positive int"):
            anykmeans.set_config(n_threads=bad)
