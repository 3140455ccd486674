"""The CuPy backend's CUDA sources compile with NVRTC, for every instantiation it may use.

No GPU is needed: NVRTC is a library (``pip install nvidia-cuda-nvrtc-cu12``, or a CUDA
toolkit). Without it these tests skip.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from anykmeans.backends import cupy as cupy_backend

# Virtual architectures (PTX, what CuPy compiles to for a device newer than NVRTC knows) and
# real ones (SASS: runs ptxas as well, so register and shared-memory limits are checked).
ARCHITECTURES = ["compute_75", "sm_80", "sm_90"]


def _nvrtc_candidates() -> list[str]:
    candidates = []
    spec = importlib.util.find_spec("nvidia.cuda_nvrtc") if importlib.util.find_spec("nvidia") else None
    for root in (spec.submodule_search_locations or []) if spec else []:
        for folder in ("lib", "bin"):
            candidates += sorted(str(p) for p in (Path(root) / folder).glob("*nvrtc*"))
    found = ctypes.util.find_library("nvrtc")
    if found:
        candidates.append(found)
    if sys.platform == "win32":
        candidates += ["nvrtc64_120_0.dll", "nvrtc64_112_0.dll"]
    else:
        candidates += ["libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"]
    return [c for c in candidates if "builtins" not in Path(c).name and ".alt." not in c]


def _load_nvrtc():
    for candidate in _nvrtc_candidates():
        try:
            return ctypes.CDLL(candidate)
        except OSError:
            continue
    return None


NVRTC = _load_nvrtc()
pytestmark = pytest.mark.skipif(
    NVRTC is None,
    reason="NVRTC (libnvrtc) is missing: pip install nvidia-cuda-nvrtc-cu12 to compile-check "
    "the CUDA kernels",
)


def _check(status: int, what: str) -> None:
    if status != 0:
        NVRTC.nvrtcGetErrorString.restype = ctypes.c_char_p
        raise AssertionError(f"{what}: {NVRTC.nvrtcGetErrorString(status).decode()}")


def _compile(source: str, name_expressions: list[str], options: list[str]) -> tuple[str, dict]:
    """Compile with NVRTC; returns the log and the lowered (mangled) name of each expression."""
    program = ctypes.c_void_p()
    _check(
        NVRTC.nvrtcCreateProgram(
            ctypes.byref(program), source.encode(), b"kernel.cu", 0, None, None
        ),
        "nvrtcCreateProgram",
    )
    try:
        for name in name_expressions:
            _check(NVRTC.nvrtcAddNameExpression(program, name.encode()), f"add {name}")
        encoded = [o.encode() for o in options]
        status = NVRTC.nvrtcCompileProgram(
            program, len(encoded), (ctypes.c_char_p * len(encoded))(*encoded)
        )
        size = ctypes.c_size_t()
        _check(NVRTC.nvrtcGetProgramLogSize(program, ctypes.byref(size)), "log size")
        log = ctypes.create_string_buffer(size.value)
        _check(NVRTC.nvrtcGetProgramLog(program, log), "log")
        log_text = log.value.decode(errors="replace")
        assert status == 0, f"compilation failed with {options}:\n{log_text}"
        lowered = {}
        for name in name_expressions:
            result = ctypes.c_char_p()
            _check(NVRTC.nvrtcGetLoweredName(program, name.encode(), ctypes.byref(result)),
                   f"lowered name of {name}")
            lowered[name] = result.value.decode()
        return log_text, lowered
    finally:
        NVRTC.nvrtcDestroyProgram(ctypes.byref(program))


def _programs_by_source() -> dict[str, list[str]]:
    names = defaultdict(list)
    for filename, expressions in cupy_backend.kernel_programs():
        names[filename] += [e for e in expressions if e not in names[filename]]
    return dict(names)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("filename", ["distance.cu", "segment_sum.cu", "precision.cu"])
def test_kernels_compile_without_warnings(filename, architecture):
    expressions = _programs_by_source()[filename]
    options = [*cupy_backend._OPTIONS, f"--gpu-architecture={architecture}"]
    log, lowered = _compile(cupy_backend.kernel_source(filename), expressions, options)
    assert "warning" not in log.lower(), log
    for name, mangled in lowered.items():
        # The lowered name is the Itanium mangling, _Z<len><name>, then I... for a template.
        base = name.split("<")[0]
        assert mangled.startswith(f"_Z{len(base)}{base}{'I' if '<' in name else ''}"), (name, mangled)
