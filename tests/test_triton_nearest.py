"""The fused Triton kernel of ``matmul_precision`` "high" / "medium", run on the CPU by Triton's
interpreter (``TRITON_INTERPRET=1``, set before Triton compiles anything: in a subprocess).

The interpreter runs the kernel's rounding, indexing, masking, tiling and best-two bookkeeping
with float32 arithmetic ("high": raw inputs, rounded by the kernel); its BF16 ``tl.dot`` is not
usable (it reads the bfloat16 bits wrongly), so the "medium" certificate is checked with
BF16-rounded inputs through the TF32 dot, which gives the same exact products for them. The
BF16 dot itself runs in the GPU tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("triton")
pytest.importorskip("torch")

_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np, torch
    import array_api_compat.numpy as xp
    sys.path.insert(0, TESTS)
    from test_precision import adversarial, _blobs, _uniform
    from anykmeans.backends import precision, reference, _triton_nearest

    def norms(a):
        return np.sqrt(xp.vecdot(a, a, axis=-1))

    cases = {
        "adversarial": adversarial(n=300, d=70, k=100, bits=11),
        "blobs": (_blobs(n=333, d=40, k=20), None),
        "uniform": (_uniform(n=257, d=33), None),
        "one-center": (_uniform(n=65, d=17), None),
    }
    results = {}
    for name in ("high", "medium"):
        bits = precision.SIGNIFICANT_BITS[name]
        for case, (X, C) in cases.items():
            if case == "adversarial":
                X, C = adversarial(n=300, d=70, k=100, bits=bits)
            if C is None:
                C = X[: (1 if case == "one-center" else 90)] + np.float32(0.01)
            X_r = precision.round_significand(X, bits=bits, xp=xp)
            C_r = precision.round_significand(C, bits=bits, xp=xp)
            c2 = xp.vecdot(C, C, axis=-1)
            stats = precision.center_stats(C, C_r, c2, xp=xp)
            margin = precision.margins(norms(X), norms(X_r), norms(X - X_r), stats, n_features=X.shape[1], xp=xp)
            if name == "high":  # the kernel rounds as it reads
                inputs, rounded = (X, C, c2, margin), False
            else:  # BF16-rounded inputs are exact in TF32: the TF32 dot gives their exact products
                inputs, rounded = (X_r, C_r, c2, margin), True
            tensors = [torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in inputs]
            labels, uncertain = _triton_nearest.nearest_two(*tensors, precision="high", rounded=rounded)
            labels, uncertain = labels.numpy(), uncertain.numpy().astype(bool)
            exact = reference.assign(X, C, shift=None, xp=xp)[0]
            expected = precision.near_ties(X, C, precision=name, shift=None, xp=xp)
            results[f"{name}-{case}"] = {
                "certified_wrong": int(((labels != exact) & ~uncertain).sum()),
                "labels_in_range": bool(((labels >= 0) & (labels < C.shape[0])).all()),
                "uncertain": float(uncertain.mean()),
                "flags_differ": float((uncertain != expected).mean()),
                "rows": int(X.shape[0]),
            }
    # The kernel's rounding helper against the reference's, on values of every magnitude.
    import triton
    import triton.language as tl
    from anykmeans.backends import _triton_kernels

    @triton.jit
    def apply_rounding(V, OUT, n, DROP: tl.constexpr, HALF: tl.constexpr, KEEP: tl.constexpr):
        offsets = tl.program_id(0) * 1024 + tl.arange(0, 1024)
        values = tl.load(V + offsets, mask=offsets < n, other=0.0)
        tl.store(OUT + offsets, _triton_kernels.round_significand(values, DROP, HALF, KEEP), mask=offsets < n)

    rng = np.random.default_rng(0)
    values = (rng.standard_normal(5000) * np.exp(rng.uniform(-30, 30, 5000))).astype(np.float32)
    for name, bits in precision.SIGNIFICANT_BITS.items():
        drop = 24 - bits
        out = torch.empty(values.size, dtype=torch.float32)
        apply_rounding[(5,)](torch.from_numpy(values), out, values.size, DROP=drop,
                             HALF=(1 << (drop - 1)) - 1, KEEP=0xFFFFFFFF ^ ((1 << drop) - 1))
        expected = precision.round_significand(values, bits=bits, xp=xp)
        got = out.numpy()
        halfway = np.abs(values.astype(np.float64) - got) == np.abs(values.astype(np.float64) - expected)
        results[f"rounding-{name}"] = {
            "matches": bool(np.all((got == expected) | halfway)),
            "changed": float(np.mean(got != values)),
        }
    print(json.dumps(results))
    """
)


@pytest.fixture(scope="module")
def results():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    script = f"TESTS = {str(Path(__file__).parent)!r}\n" + _SCRIPT
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", ["high", "medium"])
@pytest.mark.parametrize("case", ["adversarial", "blobs", "uniform", "one-center"])
def test_the_fused_kernel_certifies_only_right_labels(results, name, case):
    got = results[f"{name}-{case}"]
    assert got["labels_in_range"]
    assert got["certified_wrong"] == 0
    # The same certificate as the reference's emulation, up to the order of the sums in a score.
    assert got["flags_differ"] <= 0.01
    if case == "adversarial":
        assert got["uncertain"] > 0.3
    if case == "one-center":
        assert got["uncertain"] == 0  # no runner-up: every row is certain


@pytest.mark.parametrize("name", ["high", "medium"])
def test_the_kernel_rounds_as_the_reference_does(results, name):
    got = results[f"rounding-{name}"]
    assert got["matches"]
    assert got["changed"] > 0.9  # random float32 values are almost never on the reduced grid
