"""The references checked against themselves and against independent float64 formulas."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

import ml_dtypes

from reference import FORMATS, correctly_rounded, round_to_format, to_mpf
from reference import fast as fast_tier
from reference._convert import quantize_residual
from reference.float64 import relative_bound
from tools import inputs
from tools.registry import by_family

CASES = by_family("activations")
IDS = [c.id for c in CASES]


def _sample(n, stream):
    x = inputs.float32_inputs()
    idx = (inputs.splitmix64(np.arange(n, dtype=np.uint64), stream) % np.uint64(x.size)).astype(np.int64)
    return np.unique(x[idx])


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_two_precisions_agree(case):
    """Rounded result and stored residual are the same when the precision is doubled."""
    fmt = FORMATS["float32"]
    for x in _sample(300, 11).astype(np.float64):
        a = correctly_rounded(case.reference, float(x), fmt, case.params)
        b = correctly_rounded(case.reference, float(x), fmt, case.params, prec=2 * 64 + 64)
        assert (a[0] == b[0] or (math.isnan(a[0]) and math.isnan(b[0]))) and \
            quantize_residual(a[1]) == quantize_residual(b[1]), f"{case.id}({x!r}): {a} at 64 bits, {b} at 192 bits"


def _worst_relative_error(case, xs):
    with np.errstate(all="ignore"):
        y = case.float64_formula(xs, **case.params)
    worst = (0.0, None)
    for x, v in zip(xs, y):
        if not (math.isfinite(v) and 2.0**-1000 <= abs(v) < 2.0**1000) or x == 0:
            continue  # the fast tier sends these to mpmath
        with mpmath.workprec(160):
            exact = case.reference(float(x), **case.params)
            rel = float(abs((mpmath.mpf(float(v)) - exact) / exact)) if exact != 0 else 0.0
        if rel > worst[0]:
            worst = (rel, float(x))
    return worst


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_float64_formula_agrees(case):
    """The independent numpy/scipy formula agrees with mpmath within its stated relative
    bound on float64 inputs (the cross-check of the reference)."""
    bound, why = relative_bound(case.op, case.params)
    rel, x = _worst_relative_error(case, inputs.float64_inputs()[::4].astype(np.float64))
    assert rel <= bound, f"{case.id}: float64 formula relative error {rel:.3g} at x={x!r} > bound {bound:.3g} ({why})"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_fast_tier_bound(case):
    """The relative bound the fast tier assumes holds with a 2**8 margin on float32 inputs."""
    bound, why = relative_bound(case.op, case.params)
    rel, x = _worst_relative_error(case, _sample(3000, 13).astype(np.float64))
    assert rel <= bound / 2**8, (
        f"{case.id}: float64 formula relative error {rel:.3g} at x={x!r} > bound/256 = {bound / 256:.3g} ({why})")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_fast_tier_equals_mpmath_only(case, dtype):
    """The two-tier result is identical to mpmath-only rounding (values and stored residuals)."""
    fmt = FORMATS[dtype]
    if dtype == "float32":
        xs = _sample(1500, 14)
    else:
        pool = inputs.golden_inputs(dtype)
        xs = pool[:: max(1, pool.size // 1500)]
    x64 = xs.astype(np.float64)
    bound, _ = relative_bound(case.op, case.params)
    rounded, resid, _ = fast_tier.correctly_rounded_array(case.reference, case.float64_formula, x64, fmt,
                                                          case.params, bound=bound)
    for x, r, q in zip(x64, rounded, resid):
        e, eq = correctly_rounded(case.reference, float(x), fmt, case.params)
        assert (r == e and math.copysign(1, r) == math.copysign(1, e)) or (math.isnan(r) and math.isnan(e)), \
            f"{case.id}({x!r}) {dtype}: fast tier {r!r}, mpmath {e!r}"
        assert q == quantize_residual(eq), f"{case.id}({x!r}) {dtype}: residual {q} vs {quantize_residual(eq)}"


# ---- exact conversion and rounding, on hand-made cases --------------------------------

def test_to_mpf_is_exact():
    for v in [np.float32(0.1), np.float16(0.1), ml_dtypes.bfloat16(0.1), np.float64(0.1), np.float32(1e-45)]:
        m = to_mpf(v)
        assert m == mpmath.mpf(float(v)) and float(m) == float(v)
        # exact: the mpf's rational value equals the float's
        sign, man, exp, _ = m._mpf_
        assert (-1) ** sign * int(man) * mpmath.mpf(2) ** int(exp) == mpmath.mpf(float(v))


_M = mpmath.mpf


@pytest.mark.parametrize("value,fmt,expected,residual", [
    (lambda: 1 + _M(2) ** -24, "float32", 1.0, 0.5),                      # midpoint, ties to even (down)
    (lambda: 1 + 3 * _M(2) ** -24, "float32", 1 + 2**-22, -0.5),          # midpoint, ties to even (up)
    (lambda: 1 + _M(2) ** -24 + _M(2) ** -80, "float32", 1 + 2**-23, None),  # just above the midpoint
    (lambda: 1 + _M(2) ** -8 + _M(2) ** -30, "bfloat16", 1 + 2**-7, None),   # the case XLA double-rounds
    (lambda: _M(2) ** -150, "float32", 0.0, 0.5),                         # half the smallest subnormal: to 0
    (lambda: 3 * _M(2) ** -150, "float32", 2.0**-148, -0.5),              # 1.5 subnormal ulps: to even (2)
    (lambda: _M(65520), "float16", math.inf, None),                       # float16 overflow threshold
    (lambda: _M(65519), "float16", 65504.0, None),
    (lambda: -_M(2) ** -25, "float16", -0.0, None),                       # underflow keeps the sign
], ids=["tie-down", "tie-up", "above-tie", "bf16-double-rounding", "half-subnormal", "subnormal-tie",
        "f16-overflow", "f16-max", "signed-underflow"])
def test_round_to_format(value, fmt, expected, residual):
    with mpmath.workprec(200):
        v = value()
    r, res = round_to_format(v, FORMATS[fmt])
    assert r == expected and math.copysign(1, r) == math.copysign(1, expected), (r, expected)
    if residual is not None:
        assert res == residual


def test_round_to_format_matches_numpy_casts():
    """On float64 values, rounding agrees with numpy's correctly rounded casts to float32/float16."""
    xs = inputs.float64_inputs()
    xs = xs[np.isfinite(xs)][::3]
    for dt, name in ((np.float32, "float32"), (np.float16, "float16")):
        with np.errstate(over="ignore"):
            want = xs.astype(dt).astype(np.float64)
        got = np.array([round_to_format(mpmath.mpf(float(v)), FORMATS[name])[0] for v in xs])
        bad = np.flatnonzero(~((got == want) & (np.signbit(got) == np.signbit(want))))
        assert bad.size == 0, f"{name}: e.g. {xs[bad[0]]!r} -> {got[bad[0]]!r}, numpy {want[bad[0]]!r}"


def test_float64_gelu_keeps_the_sign_of_zero_far_left():
    """gelu(x) < 0 for every x < 0, so an underflowed value is -0.  The fast tier's
    erfcx * exp(-z^2) * (1 - z2e) once gave +0 where z2e > 1 (z^2 >= 2**53 and
    exp(-z^2) = 0); the exhaustive float32 sweep found it (2.8% of the inputs
    from -9e15 to -6e29)."""
    from reference import float64 as F64

    bits = (np.arange(1 << 16, dtype=np.uint64) * np.uint64(397) + np.uint64(0xDA000000)).astype(np.uint32)
    x = bits.view(np.float32).astype(np.float64)
    x = np.concatenate([x, [-1.4411665e17, -3.2425993e17, -1e30, -3.4e38]])
    y = F64.gelu(x)
    assert np.all(y == 0) and np.all(np.signbit(y)), x[~np.signbit(y)][:5]
