"""The exhaustive float32 tool: its shortcuts are checked against mpmath, and it resumes."""

from __future__ import annotations

import json
import math

import mpmath
import numpy as np
import pytest

from reference import FORMATS, correctly_rounded
from reference import float64 as F64
from tools import exhaustive, inputs
from tools.registry import by_family

CASES = by_family("activations")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_tiny_float64_results_round_to_a_zero_of_their_sign(case):
    """Where the float64 formula gives |y| < 2**-1000, the exact result rounds to a float32
    zero with y's sign: the tool's shortcut, checked against mpmath."""
    x = inputs.float32_inputs().astype(np.float64)
    with np.errstate(all="ignore"):
        y = case.float64_formula(x, **case.params)
    idx = np.flatnonzero(np.isfinite(x) & np.isfinite(y) & (np.abs(y) < 2.0**-1000) & (x != 0))
    for i in idx[:: max(1, idx.size // 200)]:
        r, _ = correctly_rounded(case.reference, float(x[i]), FORMATS["float32"], case.params)
        assert r == 0 and math.copysign(1, r) == math.copysign(1, y[i]), \
            f"{case.id}({x[i]!r}): formula gives {y[i]!r}, exact rounds to {r!r}"


def test_piece_verdicts_match_mpmath():
    """On a piece around gelu's tail the tool's verdicts equal an mpmath-only evaluation."""
    case = next(c for c in CASES if c.id == "gelu")
    import jax.numpy as jnp

    import impl.functional as F

    start = np.array([-13.0], np.float32).view(np.uint32)[0]
    bits = (np.arange(4096, dtype=np.uint64) + np.uint64(start)).astype(np.uint32)
    x = bits.view(np.float32)
    got = np.asarray(F.gelu(jnp.asarray(x))).astype(np.float64)
    bound, _ = F64.relative_bound("gelu", {})
    res = exhaustive._sweep_piece(case, bound, x, got)
    exact = [correctly_rounded(case.reference, float(v), FORMATS["float32"])[0] for v in x.astype(np.float64)]
    n_cr = int(np.sum((got == np.array(exact)) & (np.abs(exact) >= 2.0**-126)))
    assert res["n_cr"] == n_cr and res["n_normal"] == int(np.sum(np.abs(exact) >= 2.0**-126))


@pytest.mark.slow
def test_resume(tmp_path, capsys):
    args = ["relu", "--chunks", "255:256", "--jobs", "1", "--out", str(tmp_path)]
    assert exhaustive.main(args) == 0
    assert (tmp_path / "relu-float32" / "chunks" / "255.json").exists()
    assert exhaustive.main(args) == 0
    err = capsys.readouterr().err
    assert "1 chunks already done, 0 to go" in err
    rep = json.loads((tmp_path / "relu-float32" / "report.json").read_text())
    assert rep["n"] == 1 << 24 and rep["n_nonfinite_mismatch"] == 0 and rep["max_ulp"] == 0.0


def test_bad_arguments():
    with pytest.raises(SystemExit):
        exhaustive.main(["no_such_op"])
    with pytest.raises(SystemExit):
        exhaustive.main(["relu", "--chunks", "5:3"])
