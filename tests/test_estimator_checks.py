"""scikit-learn's own estimator test suite, run on anykmeans.KMeans and anykmeans.MiniBatchKMeans."""

import importlib.util
import warnings

import pytest

pytest.importorskip("sklearn")

from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from anykmeans import KMeans, MiniBatchKMeans  # noqa: E402

# scikit-learn marks the same check as an expected failure for its own KMeans and
# MiniBatchKMeans: weighting a sample by 2 is not the same as repeating it, because the random
# initialisation (and, for MiniBatchKMeans, the batches drawn with probability ∝ weight) differ.
EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data": (
        "sample_weight is not equivalent to removing/repeating samples."
    ),
    # Two deliberate departures from scikit-learn's array-API policy:
    "check_array_api_mixed_inputs": (
        "anykmeans refuses arrays of different namespaces or devices in one call (a clear "
        "error instead of an implicit transfer); scikit-learn converts them to X's."
    ),
    "check_array_api_same_namespace": (
        "anykmeans predicts on data of any namespace by moving the k x d centers to it; "
        "scikit-learn raises."
    ),
}


# scikit-learn warns that the estimator does not inherit from its BaseEstimator: anykmeans
# implements the protocol itself so that scikit-learn stays a test-only dependency.
NOT_A_BASE_ESTIMATOR = r"Estimator \w+ does not inherit from `sklearn.base.BaseEstimator`"

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=NOT_A_BASE_ESTIMATOR)
    checks = parametrize_with_checks(
        [
            KMeans(n_clusters=2, n_init=2, max_iter=5, random_state=0),
            # scikit-learn's own test parameters for its MiniBatchKMeans.
            MiniBatchKMeans(n_clusters=2, n_init=2, max_iter=5, batch_size=10, random_state=0),
        ],
        expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS,
    )


def _cupy_without_device() -> bool:
    """CuPy imports but cannot use a CUDA device (scikit-learn still runs its CuPy checks)."""
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() == 0
    except Exception:  # noqa: BLE001 - no driver, no device
        return True


def _failed_for_want_of_a_gpu(exception) -> bool:
    module = type(exception).__module__ if exception is not None else ""
    return module.startswith(("cupy", "cupy_backends")) and _cupy_without_device()


@checks
@pytest.mark.filterwarnings(f"ignore:{NOT_A_BASE_ESTIMATOR}")
def test_sklearn_compatible_estimator(estimator, check, request):
    if "array_namespace=cupy" in request.node.name and _cupy_without_device():
        pytest.skip("CuPy is installed but there is no CUDA device")
    check(estimator)


# With the default n_clusters=8, some checks fit 4 distinct points: the ConvergenceWarning
# about fewer distinct clusters is right there, and scikit-learn's KMeans emits it too.
@pytest.mark.filterwarnings(f"ignore:{NOT_A_BASE_ESTIMATOR}")
@pytest.mark.filterwarnings("ignore:Number of distinct clusters:anykmeans.ConvergenceWarning")
@pytest.mark.parametrize("estimator_class", [KMeans, MiniBatchKMeans])
def test_check_estimator_with_default_parameters(estimator_class):
    from sklearn.utils.estimator_checks import check_estimator

    results = check_estimator(
        estimator_class(), expected_failed_checks=EXPECTED_FAILED_CHECKS, on_skip=None, on_fail=None
    )
    failed = [
        r["check_name"] for r in results
        if r["status"] == "failed" and not _failed_for_want_of_a_gpu(r["exception"])
    ]
    assert failed == []
    xfailed = {r["check_name"] for r in results if r["status"] == "xfail"}
    assert xfailed <= set(EXPECTED_FAILED_CHECKS)
