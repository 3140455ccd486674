"""Configuration: set_config / get_config / config_context, environment defaults."""

import os
import subprocess
import sys
import tempfile
import threading

import pytest

import anykmeans


_DEFAULTS = {
    "device": "auto",
    "output": "input",
    "fallback": "warn",
    "kernels": "auto",
    "working_memory": "auto",
    "n_threads": "auto",
    "progress": "auto",
    "matmul_precision": "highest",
}


def test_defaults():
    assert anykmeans.get_config() == _DEFAULTS


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("device", "cpu", "cpu"),
        ("device", "CUDA", "cuda"),
        ("device", "cuda:0", "cuda:0"),
        ("device", "Cuda:02", "cuda:2"),
        ("device", " cuda:13 ", "cuda:13"),
        ("device", "AUTO", "auto"),
        ("output", "NumPy", "numpy"),
        ("output", "cupy", "cupy"),
        ("output", "input", "input"),
        ("fallback", "RAISE", "raise"),
        ("fallback", "warn", "warn"),
    ],
)
def test_device_output_and_fallback_values_are_normalised(key, value, expected):
    with anykmeans.config_context(**{key: value}) as inside:
        assert inside[key] == expected
    anykmeans.set_config(**{key: value})
    assert anykmeans.get_config()[key] == expected


def test_set_config_changes_the_current_context_and_get_config_returns_a_copy():
    anykmeans.set_config(working_memory=32, kernels="array_api")
    config = anykmeans.get_config()
    assert config["working_memory"] == 32.0 and config["kernels"] == "array_api"
    config["working_memory"] = 1
    assert anykmeans.get_config()["working_memory"] == 32.0


def test_config_context_restores_on_exit_and_on_error():
    with anykmeans.config_context(kernels="array_api") as inside:
        assert inside["kernels"] == "array_api"
        with anykmeans.config_context(working_memory=8):
            assert anykmeans.get_config() == {**inside, "working_memory": 8.0}
        assert anykmeans.get_config() == inside
    assert anykmeans.get_config()["kernels"] == "auto"
    with pytest.raises(RuntimeError):
        with anykmeans.config_context(device="cpu"):
            raise RuntimeError
    assert anykmeans.get_config()["device"] == "auto"


def test_threads_do_not_see_each_others_settings():
    seen = {}
    barrier = threading.Barrier(2)

    def worker(name, memory):
        with anykmeans.config_context(working_memory=memory):
            barrier.wait()
            seen[name] = anykmeans.get_config()["working_memory"]

    threads = [threading.Thread(target=worker, args=(i, m)) for i, m in enumerate((16, 32))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {0: 16.0, 1: 32.0}
    assert anykmeans.get_config()["working_memory"] == "auto"


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"colour": "red"}, "Unknown configuration key"),
        ({"device": "tpu"}, r"device must be one of \('auto', 'cpu', 'cuda', 'cuda:N'\)"),
        ({"device": 3}, "device must be one of"),
        ({"device": "cuda:-1"}, r"'cuda:N'\) \(N a non-negative integer\); got 'cuda:-1'"),
        ({"device": "cuda:"}, "device must be one of"),
        ({"device": "cuda:1.5"}, "device must be one of"),
        ({"device": "gpu:0"}, "device must be one of"),
        ({"output": "torch"}, r"output must be one of \('input', 'numpy', 'cupy'\); got 'torch'"),
        ({"output": 1}, "output must be one of"),
        ({"fallback": "ignore"}, r"fallback must be one of \('warn', 'raise'\); got 'ignore'"),
        ({"fallback": True}, "fallback must be one of"),
        ({"working_memory": 0}, "working_memory must be .auto. or a positive number"),
        ({"working_memory": -5}, "working_memory must be .auto. or a positive number"),
        ({"working_memory": "lots"}, "working_memory must be .auto. or a positive number"),
        ({"kernels": ""}, "kernels must be 'auto' or the name"),
        ({"kernels": 7}, "kernels must be 'auto' or the name"),
        ({"matmul_precision": "tf32"}, r"matmul_precision must be one of \('highest', 'high', 'medium'\); got 'tf32'"),
        ({"matmul_precision": 32}, "matmul_precision must be one of"),
    ],
)
def test_unknown_keys_and_values_raise(changes, match):
    with pytest.raises(ValueError, match=match):
        with anykmeans.config_context(**changes):
            pass
    if "colour" not in changes:
        with pytest.raises(ValueError, match=match):
            anykmeans.set_config(**changes)
    assert anykmeans.get_config() == _DEFAULTS


def test_unregistered_backend_name_is_refused_when_set_with_the_registered_names():
    message = r"name of a registered backend; got 'faiss-gpu'. Registered: \["
    with pytest.raises(ValueError, match=message) as err:
        anykmeans.set_config(kernels="faiss-gpu")
    assert "'array_api'" in str(err.value) and "'numpy'" in str(err.value)
    with pytest.raises(ValueError, match=message):
        with anykmeans.config_context(kernels="faiss-gpu"):
            pass
    assert anykmeans.get_config() == _DEFAULTS


def test_unknown_keyword_of_set_config_is_a_value_error_naming_the_keys():
    with pytest.raises(ValueError, match=r"Unknown configuration key\(s\) \['foo'\]; valid keys are \['device'"):
        anykmeans.set_config(foo=1)
    assert anykmeans.get_config() == _DEFAULTS


def test_unregistered_backend_name_from_the_environment_fails_at_fit():
    result = _run_python(
        "import numpy as np, anykmeans\n"
        "try:\n"
        "    anykmeans.KMeans(2).fit(np.zeros((5, 2)))\n"
        "except ValueError as exc:\n"
        "    print(exc)\n",
        {"ANYKMEANS_KERNELS": "faiss-gpu"},
    )
    assert result.returncode == 0, result.stderr
    assert "Unknown backend 'faiss-gpu'; registered: [" in result.stdout


def _run_python(code, env_changes=None):
    # A fresh interpreter, outside the checkout so that it imports the installed package.
    env = {**os.environ, **(env_changes or {})}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tempfile.gettempdir()
    )


def _config_in_subprocess(env_changes):
    return _run_python("import anykmeans, json; print(json.dumps(anykmeans.get_config()))", env_changes)


def test_environment_variables_set_the_defaults():
    result = _config_in_subprocess(
        {"ANYKMEANS_DEVICE": "CPU", "ANYKMEANS_WORKING_MEMORY": "48", "ANYKMEANS_KERNELS": "array_api",
         "ANYKMEANS_MATMUL_PRECISION": "High"}
    )
    assert result.returncode == 0, result.stderr
    import json

    assert json.loads(result.stdout) == {
        **_DEFAULTS, "device": "cpu", "kernels": "array_api", "working_memory": 48.0, "matmul_precision": "high"
    }


def test_device_output_and_fallback_environment_variables():
    # Read at import; nothing is computed, so this holds with or without a GPU.
    result = _config_in_subprocess(
        {"ANYKMEANS_DEVICE": "CUDA:1", "ANYKMEANS_OUTPUT": "NUMPY", "ANYKMEANS_FALLBACK": "raise"}
    )
    assert result.returncode == 0, result.stderr
    import json

    assert json.loads(result.stdout) == {
        **_DEFAULTS, "device": "cuda:1", "output": "numpy", "fallback": "raise"
    }


@pytest.mark.parametrize("value, expected", [("0", False), ("off", False), ("ON", True), ("1", True), ("auto", "auto")])
def test_progress_environment_variable(value, expected):
    result = _config_in_subprocess({"ANYKMEANS_PROGRESS": value})
    assert result.returncode == 0, result.stderr
    import json

    assert json.loads(result.stdout) == {**_DEFAULTS, "progress": expected}


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("ANYKMEANS_DEVICE", "quantum", "device must be one of ('auto', 'cpu', 'cuda', 'cuda:N')"),
        ("ANYKMEANS_DEVICE", "cuda:x", "device must be one of ('auto', 'cpu', 'cuda', 'cuda:N')"),
        ("ANYKMEANS_OUTPUT", "jax", "output must be one of ('input', 'numpy', 'cupy')"),
        ("ANYKMEANS_FALLBACK", "silent", "fallback must be one of ('warn', 'raise')"),
        ("ANYKMEANS_PROGRESS", "sometimes", "progress must be True, False or 'auto'"),
        ("ANYKMEANS_MATMUL_PRECISION", "tf32", "matmul_precision must be one of ('highest', 'high', 'medium')"),
    ],
)
def test_invalid_environment_variable_warns_names_itself_and_keeps_the_default(name, value, message):
    result = _config_in_subprocess({name: value})
    assert result.returncode == 0, result.stderr
    import json

    assert json.loads(result.stdout) == _DEFAULTS
    assert result.stderr.count("RuntimeWarning") == 1
    assert f"Ignoring the environment variable {name}={value!r}" in result.stderr and message in result.stderr


def test_importing_anykmeans_imports_no_optional_framework():
    code = (
        "import sys, anykmeans, anykmeans.backends\n"
        "heavy = [m for m in ('torch', 'cupy', 'dask', 'jax', 'sklearn', 'array_api_strict') if m in sys.modules]\n"
        "print(heavy)"
    )
    result = _run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# ---------------------------------------------------------------- the deprecated keys

_DEPRECATED = """
import json, warnings
import anykmeans
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    {calls}
print(json.dumps([anykmeans.get_config()["kernels"], [(w.category.__name__, str(w.message), w.filename) for w in caught]]))
"""


def _deprecated_in_subprocess(calls, env_changes=None):
    import json

    result = _run_python(_DEPRECATED.format(calls=calls), env_changes)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_distance_and_reduction_set_kernels_and_warn_once_each():
    kernels, caught = _deprecated_in_subprocess(
        "anykmeans.set_config(distance='numpy')\n"
        "    anykmeans.set_config(distance='array_api')\n"
        "    with anykmeans.config_context(reduction='numpy', distance='numpy'):\n"
        "        assert anykmeans.get_config()['kernels'] == 'numpy'"
    )
    assert kernels == "array_api"
    assert [c[0] for c in caught] == ["FutureWarning", "FutureWarning"]
    assert "'distance' setting is deprecated" in caught[0][1] and "kernels='numpy'" in caught[0][1]
    assert "'reduction' setting is deprecated" in caught[1][1]
    # Pointed at the caller's line, not at anykmeans.
    assert all(c[2] == "<string>" for c in caught)


def test_deprecated_keys_naming_different_backends_are_refused():
    with pytest.raises(ValueError, match="name different backends"):
        anykmeans.set_config(distance="numpy", reduction="array_api", kernels=None)
    with pytest.raises(ValueError, match="name different backends"):
        with anykmeans.config_context(kernels="numpy", reduction="array_api"):
            pass
    assert anykmeans.get_config() == _DEFAULTS


def test_deprecated_environment_variables_set_kernels():
    import json

    kernels, caught = _deprecated_in_subprocess("pass", {"ANYKMEANS_REDUCTION": "array_api"})
    # The warning came at import, before the recording started.
    assert kernels == "array_api" and caught == []
    result = _config_in_subprocess({"ANYKMEANS_DISTANCE": "numpy", "ANYKMEANS_REDUCTION": "array_api"})
    assert result.returncode == 0 and "name different backends" in result.stderr
    assert json.loads(result.stdout)["kernels"] == "auto"


def test_working_memory_takes_auto_in_any_case_and_from_the_environment():
    with anykmeans.config_context(working_memory=" AUTO "):
        assert anykmeans.get_config()["working_memory"] == "auto"
    with anykmeans.config_context(working_memory=64):
        assert anykmeans.get_config()["working_memory"] == 64.0
        with anykmeans.config_context(working_memory="auto"):
            assert anykmeans.get_config()["working_memory"] == "auto"
