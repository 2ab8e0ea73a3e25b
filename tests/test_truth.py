"""The references' truth rests on proof, not on a heuristic.

Regression tests for the rule "a value that comes out identical at two working precisions is
exact", removed from ``reference/_ziv.py``: it stored 294 subnormal golden values as exact ties
(gelu, gelu-tanh, silu and hard_swish in float64 at the smallest subnormals; sigmoid'' in
bfloat16, float32 and float64) where the exact value lies 1e-75 to 1e-308 (relative) off the
midpoint, found by an independent MPFR check.  Each expected bit pattern below is derived by hand
in its comment.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import ml_dtypes
import mpmath
import numpy as np
import pytest

from reference import FORMATS, correctly_rounded
from reference import activations as A
from reference import derivatives as D

TINY64 = math.ldexp(1.0, -1074)


def _bits(v: float, dtype) -> int:
    return int(np.array([v], dtype=dtype).view({2: np.uint16, 4: np.uint32, 8: np.uint64}[np.dtype(dtype).itemsize])[0])


def _from_bits(b: int, dtype) -> float:
    u = {2: np.uint16, 4: np.uint32, 8: np.uint64}[np.dtype(dtype).itemsize]
    return float(np.array([b], dtype=u).view(dtype)[0])


@pytest.mark.parametrize("fn, params", [(A.gelu, {}), (A.gelu, {"approximate": True}), (A.silu, {})],
                         ids=["gelu", "gelu_tanh", "silu"])
def test_float64_smallest_subnormal_rounds_up(fn, params):
    # f(x) = x/2 * (1 + c x + ...) with c > 0 (gelu: sqrt(2/pi); silu: 1/2) at x = 2**-1074: just
    # above the midpoint 2**-1075 between 0 and 2**-1074, so it rounds UP to 2**-1074 (bits 0x1);
    # the residual is -0.5 ulp plus an excess of ~2**-1074 ulp, which its float value cannot hold
    r, res = correctly_rounded(fn, TINY64, FORMATS["float64"], params)
    assert _bits(r, np.float64) == 0x1, f"{fn.__name__}(2**-1074) -> {r!r}, expected 2**-1074"
    assert res == -0.5, res


def test_hard_swish_float64_exact_rational_above_the_tie():
    # x = 5 * 2**-1074: x (x + 3) / 6 = 2.5 * 2**-1074 + x**2 / 6, just above the tie between 2 and 3
    # subnormal quanta -> 3 * 2**-1074 (bits 0x3)
    r, _ = correctly_rounded(A.hard_swish, 5 * TINY64, FORMATS["float64"])
    assert _bits(r, np.float64) == 0x3, r


@pytest.mark.parametrize("dtype, xbits, want", [(ml_dtypes.bfloat16, 0x000C, 0x8001),
                                                 (np.float32, 0x0000000C, 0x80000001)],
                         ids=["bfloat16", "float32"])
def test_sigmoid_second_derivative_tiny_input(dtype, xbits, want):
    # sigmoid''(x) = -x/4 * (1/2 - x**2/12 + ...) = -x/8 + x**3/48 + ...: x = 12 quanta gives
    # -1.5 quanta plus a positive x**3 term, so |value| < 1.5 quanta: rounds to -1 quantum (not the
    # even -2 a tie would give)
    x = _from_bits(xbits, dtype)
    fmt = FORMATS["bfloat16" if dtype is ml_dtypes.bfloat16 else "float32"]
    r, _ = correctly_rounded(D.d2_sigmoid, x, fmt)
    assert _bits(r, dtype) == want, f"sigmoid''({x!r}) -> {r!r} (bits {_bits(r, dtype):#x}), want {want:#x}"


def test_exact_midpoint_needs_an_exact_result():
    # an mpf that is exactly a float32 midpoint (1 + 2**-24) is never taken as exact by the
    # rounding loop: it cannot be decided from an approximation, and the error says what to do
    def midpoint(x):
        return mpmath.mpf(1) + mpmath.ldexp(1, -24)

    with pytest.raises(ArithmeticError, match="Fraction"):
        correctly_rounded(midpoint, 1.0, FORMATS["float32"])


def test_exact_rational_midpoint_ties_to_even():
    # hard_sigmoid(3 * 2**-24) = (3 * 2**-24 + 3) / 6 = 1/2 + 2**-25: exactly the float32 midpoint
    # between 1/2 and 1/2 + 2**-24 -> 1/2 (even), residual +0.5 ulp
    assert correctly_rounded(A.hard_sigmoid, 3 * 2.0**-24, FORMATS["float32"]) == (0.5, 0.5)
    # hard_swish'(3 * 2**-12) = (2x + 3) / 6 = 1/2 + 2**-12: the float16 midpoint above 1/2 -> 1/2
    assert correctly_rounded(D.d_hard_swish, 3 * 2.0**-12, FORMATS["float16"]) == (0.5, 0.5)


def test_elu_alpha_zero_is_negative_zero():
    # elu(x < 0, alpha=0) = +0 * expm1(x) = -0 (expm1(x) < 0): reference and implementation agree
    import impl.functional as F

    for x in (-1.0, -math.inf, -1e-30):
        r, _ = correctly_rounded(A.elu, x, FORMATS["float32"], {"alpha": 0.0})
        assert r == 0 and math.copysign(1, r) < 0, (x, r)
    got = np.asarray(F.elu(jnp.array([-1.0, -jnp.inf, -1e-30], jnp.float32), alpha=0.0))
    assert (got == 0).all() and np.signbit(got).all(), got
