"""The golden store against a second, independent oracle: GNU MPFR (``tools/mpfr_oracle.py``).

Every elementwise case (activations, first and second derivatives) in every dtype is checked
on a fixed sample: 64 evenly spaced inputs plus every input whose stored result is subnormal,
the smallest normal number or an underflowed zero (where the 294 wrong values of an earlier
store were; this sample finds all of them in that store).  The whole store is
checked by ``python -m tools.mpfr_oracle`` (or ``python -m tools.regen_golden --check
--cross-check``).  Without gmpy2 these tests skip, saying how to install it.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest

from tools import golden
from tools import mpfr_oracle as M
from tools.registry import CASES, DTYPES

pytest.importorskip("gmpy2", reason=f"the MPFR oracle needs gmpy2: {M.INSTALL_HINT}")

SAMPLE = 64
TINY64 = math.ldexp(1.0, -1074)
_CELLS = [(c, d) for c in CASES if c.family in M.ELEMENTWISE_FAMILIES for d in DTYPES if d in c.budgets]


@pytest.fixture(scope="module")
def store():
    return golden.Store()


@pytest.mark.parametrize("case, dtype", _CELLS, ids=[f"{c.id}-{d}" for c, d in _CELLS])
def test_golden_sample_agrees_with_mpfr(store, case, dtype):
    lines = []
    res = M.run(store, only=case.id, dtypes=[dtype], sample=SAMPLE, jobs=1, log=lines.append)
    tally = res["cells"][(case.family, dtype, case.id)]
    assert tally["n"] >= min(SAMPLE, 1)
    assert not res["problems"] and not tally["bad"] and not tally["undecided"], (
        "\n".join(lines) + f"\nreproduce: python -m tools.mpfr_oracle --only '{case.id}' --dtype {dtype}")


def test_gelu_smallest_float64_subnormal_rounds_up():
    # gelu(x) = x/2 (1 + sqrt(2/pi) x + ...): at x = 2**-1074 just above the midpoint 2**-1075,
    # so it rounds up to 2**-1074 (bits 0x1), residual -0.5 ulp (-8192 in units of 2**-14)
    value, residual = M.correctly_rounded("gelu", TINY64, "float64")
    assert np.array([value]).view(np.uint64)[0] == 0x1 and residual == -8192
    # and the negative side rounds to -2**-1074 likewise: gelu(-x) = -x/2 (1 - 0.8 x): just
    # below the midpoint in magnitude, so -0 (bits 0x8000000000000000)
    value, residual = M.correctly_rounded("gelu", -TINY64, "float64")
    assert np.array([value]).view(np.uint64)[0] == 0x8000000000000000 and residual == -8192


def test_undecided_raises_instead_of_guessing():
    # the correction term of gelu(2**-1074) lies 2**-1074 below the leading one: 256 bits cannot see it
    with pytest.raises(M.Undecided, match=r"gelu\(5e-324.*float64.*straddles a rounding boundary at 256 bits"):
        M.correctly_rounded("gelu", TINY64, "float64", max_precision=256)


@pytest.mark.parametrize("op, x, dtype, bits, residual", [
    # hard_sigmoid(3 * 2**-24) = 1/2 + 2**-25: exactly a float32 midpoint, ties to the even 1/2
    ("hard_sigmoid", 3 * 2.0**-24, "float32", 0x3F000000, 8192),
    # hard_swish(5 * 2**-1074) = 2.5 quanta + x**2/6: just above the tie, 3 quanta
    ("hard_swish", 5 * TINY64, "float64", 0x3, -8192),
    # 0.01 * 2**-1074 underflows to +0 in float64... from below: -0, residual -0.01 ulp
    ("leaky_relu", -TINY64, "float64", 0x8000000000000000, round(-0.01 * 2**14)),
    # float16 overflow: selu(65504) = 68824 > 65520 (the midpoint above the largest float16)
    ("selu", 65504.0, "float16", 0x7C00, 0),
], ids=["hard_sigmoid-float32-tie", "hard_swish-float64-above-tie", "leaky_relu-float64-underflow",
        "selu-float16-overflow"])
def test_exact_rationals_round_once(op, x, dtype, bits, residual):
    value, res = M.correctly_rounded(op, x, dtype)
    u = {"float16": np.uint16, "float32": np.uint32, "float64": np.uint64}[dtype]
    assert int(np.array([value], dtype=dtype).view(u)[0]) == bits and res == residual


def test_sample_holds_the_results_at_the_normal_boundary(store):
    # sigmoid''(x) at bfloat16 x = 0x01ff is just below the smallest normal number in magnitude
    # and rounds to 0x807f; an earlier store had 0x8080 (the smallest normal itself) there
    z = store.load_case("gradients", "bfloat16", "grad2:sigmoid")
    i = int(np.flatnonzero(store.load_inputs("bfloat16").view(np.uint16) == 0x01FF)[0])
    assert i in M.sample_indices(z["rounded"], z["residual"], "bfloat16", SAMPLE)
    value, _ = M.correctly_rounded("sigmoid", float(store.load_inputs("bfloat16")[i]), "bfloat16", order=2)
    assert int(np.array([value], dtype=z["rounded"].dtype).view(np.uint16)[0]) == 0x807F


def test_oracle_imports_nothing_from_reference():
    """The two oracles share no code: tools/mpfr_oracle.py never imports reference/."""
    tree = ast.parse(Path(M.__file__).read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [n for n in names if n == "reference" or n.startswith("reference.")], names


def test_a_wrong_stored_value_is_named(tmp_path, capsys):
    """A damaged copy of a case (one value one ulp off, another residual off) fails the check,
    and the report names the input, the stored and the MPFR bits."""
    proj = golden.Store()
    rel = golden.case_path("activations", "float16", "tanh")
    z = proj.load_case("activations", "float16", "tanh")
    xs = proj.load_inputs("float16")
    i, j = M.sample_indices(z["rounded"], z["residual"], "float16", 4)[[1, 2]]  # subnormal results
    rounded, residual = z["rounded"].copy(), z["residual"].copy()
    rounded.view(np.uint16)[i] += 1
    residual[j] += 1
    files = {golden.inputs_path("float16"): proj.read_bytes(golden.inputs_path("float16")),
             rel: golden.Store.encode_arrays({"rounded": rounded, "residual": residual})}
    golden.Store(tmp_path).commit(files, {"command": "test"})
    rc = M.main(["--root", str(tmp_path), "--only", "tanh", "--dtype", "float16", "--sample", "4", "--jobs", "1"])
    out = capsys.readouterr().out
    assert rc == 1
    xb, sb = int(xs.view(np.uint16)[i]), int(rounded.view(np.uint16)[i])
    assert (f"DISAGREE activations/float16/tanh [{i}] (value): x = {float(xs[i])!r} (bits 0x{xb:x}); stored "
            f"{float(rounded[i])!r} (bits 0x{sb:x}, residual {residual[i]}); MPFR {float(z['rounded'][i])!r} "
            f"(bits 0x{sb - 1:x}") in out, out
    assert f"DISAGREE activations/float16/tanh [{j}] (residual)" in out, out
    assert "activations: " in out and "2 disagreements" in out


@pytest.mark.slow
def test_regen_golden_cross_check(tmp_path):
    """``python -m tools.regen_golden --check --cross-check`` runs the MPFR oracle after the check."""
    from tools import regen_golden

    root = str(tmp_path / "g")
    assert regen_golden.main(["--root", root, "--only", "relu6", "--jobs", "1"]) == 0
    assert regen_golden.main(["--root", root, "--only", "relu6", "--jobs", "1", "--check", "--cross-check"]) == 0
