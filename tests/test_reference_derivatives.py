"""The derivative references checked against each other and against their stated bounds.

* The closed forms (``reference.derivatives.d_<op>``/``d2_<op>``) agree with the
  generic route (central differences of the forward mpmath references) away
  from kinks, to 2**-70 relative at 96 bits.
* A derivative reference built by ``numerical(forward)`` rounds like the
  closed form: the generic route is a usable reference for a new op.
* ``_sum`` keeps the closed forms accurate next to zeros of the derivative:
  the Ziv rounding at the normal precision equals the rounding at 2048 bits
  for the float32 and float64 inputs closest to each zero.
* The float64 fast-tier formulas (``reference.float64_derivatives``) stay 2**4
  below their per-element bound ``BOUND * (1 + amp)`` on samples of every
  region, and their ``exact`` entries are exact.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from reference import FORMATS, correctly_rounded
from reference._convert import quantize_residual
from reference import activations as R
from reference import derivatives as RD
from reference import float64_derivatives as FD
from tools import inputs
from tools.registry import by_family
from tools.registry.gradients import grad_inputs

GRAD_CASES = by_family("gradients")
KINKS = (0.0, 3.0, -3.0, 6.0)


def _away_from_kinks(points):
    return [x for x in points if all(abs(x - k) > 1e-3 for k in KINKS)]


# smooth-region points, both signs, small to large, plus the neighbourhoods of
# the zeros of the derivatives
POINTS = _away_from_kinks([-37.5, -20.25, -9.75, -4.5, -2.3994, -1.7, -1.2785, -1.19, -0.7518, -0.3,
                           -1e-5, 3e-9, 0.125, 0.9, 1.4142, 2.4, 4.75, 11.5, 30.0])


@pytest.mark.parametrize("case", GRAD_CASES, ids=[c.id for c in GRAD_CASES])
def test_closed_form_agrees_with_central_differences(case):
    order = dict(case.extra)["order"]
    forward = getattr(R, case.op)
    bad = []
    with mpmath.workprec(96):
        for x in POINTS:
            closed = mpmath.mpf(case.reference(x, **case.params))
            generic = RD.central_difference(forward, x, order, case.params)
            if closed == 0 and generic == 0:
                continue
            rel = abs(closed - generic) / max(abs(closed), abs(generic))
            if rel > mpmath.ldexp(1, -70):
                bad.append(f"x = {x!r}: closed form {mpmath.nstr(closed, 25)}, central difference "
                           f"{mpmath.nstr(generic, 25)} (relative difference {float(rel):.3g} > 2**-70)")
    assert not bad, f"{case.id}: the two derivative references disagree:\n" + "\n".join(bad)


def test_numerical_reference_rounds_like_the_closed_form():
    fmt = FORMATS["float32"]
    for op, order in (("silu", 1), ("softsign", 1), ("gelu", 2)):
        generic = RD.numerical(getattr(R, op), order)
        closed = getattr(RD, f"{'d' if order == 1 else 'd2'}_{op}")
        for x in (-3.3125, -0.7518, 0.0625, 1.5, 7.25):
            a = correctly_rounded(generic, x, fmt)
            b = correctly_rounded(closed, x, fmt)
            assert a == b, f"{op} order {order} at {x!r}: numerical reference rounds to {a}, closed form to {b}"


# zeros of first/second derivatives: (case id, approximate zero)
ZEROS = [("grad:gelu", -0.7517916), ("grad:gelu[approximate=True]", -0.7517916), ("grad:silu", -1.2784645),
         ("grad:mish", -1.1920183), ("grad2:gelu", -1.4142136), ("grad2:silu", 2.3993572),
         ("grad2:mish", -2.2), ("grad2:gelu[approximate=True]", 1.4)]


@pytest.mark.parametrize("cid,approx", ZEROS, ids=[z[0] for z in ZEROS])
def test_rounding_next_to_a_zero_of_the_derivative(cid, approx):
    case = next(c for c in GRAD_CASES if c.id == cid)
    with mpmath.workprec(200):
        zero = float(mpmath.findroot(lambda t: mpmath.mpf(case.reference(t, **case.params)), approx))
    # the float32 and float64 neighbours of the zero, where the terms cancel the most
    # (for float64 about 53 bits, more than the 24 guard bits of the Ziv loop)
    for dtype, np_dt in (("float32", np.float32), ("float64", np.float64)):
        z = np_dt(zero)
        fmt = FORMATS[dtype]
        for x in (np.nextafter(z, np_dt(-1e9)), z, np.nextafter(z, np_dt(1e9))):
            x = float(x)
            r, q = correctly_rounded(case.reference, x, fmt, case.params)
            fast = (r, quantize_residual(q))
            r, q = correctly_rounded(case.reference, x, fmt, case.params, prec=2048)
            slow = (r, quantize_residual(q))
            assert fast == slow, (f"{cid} in {dtype} at {x!r} (next to its zero {zero!r}): Ziv rounding gives "
                                  f"(value, residual quantum) {fast} at the normal precision but {slow} at 2048 bits")


def _fast_tier_sample():
    x32 = inputs.golden_inputs("float32")
    x32 = x32[grad_inputs("float32", x32)].astype(np.float64)
    xb = inputs.golden_inputs("bfloat16").astype(np.float64)
    xs = np.concatenate([x32[::97], xb[::331], [-0.7517917, -1.2784646, -1.1920184, 2.3993573, -805.0, 401.0]])
    return xs[np.isfinite(xs)]


SAMPLE = _fast_tier_sample()


@pytest.mark.parametrize("case", GRAD_CASES, ids=[c.id for c in GRAD_CASES])
def test_float64_formula_within_its_bound(case):
    with np.errstate(all="ignore"):
        y, amp, exact = case.float64_formula(SAMPLE, **case.params)
    bound = FD.BOUND * (1.0 + amp)
    bad = []
    worst = 0.0
    tiny = mpmath.ldexp(1, -1100)
    with mpmath.workprec(128):
        for x, yi, bi, ex in zip(SAMPLE, y, bound, exact):
            raw = case.reference(float(x), **case.params)
            v = mpmath.mpf(raw)
            if ex:  # the value every format rounds to, with a zero residual
                if isinstance(raw, float):  # an exact special: the same bits
                    ok = raw == yi and math.copysign(1, raw) == math.copysign(1, yi)
                elif v == 0:  # an exact mpf zero rounds to +0
                    ok = yi == 0 and math.copysign(1, yi) > 0
                else:  # the value itself, or below 2**-1100: the signed zero
                    ok = v == yi or (yi == 0 and abs(v) < tiny and (v < 0) == (math.copysign(1, yi) < 0))
                if not ok:
                    bad.append(f"x = {x!r}: 'exact' entry {yi!r}, reference {mpmath.nstr(v, 20)}")
                continue
            if not (np.isfinite(bi) and np.isfinite(yi)) or v == 0 or abs(yi) < 2.0**-1000:
                continue  # not used by the fast tier: mpmath decides these
            rel = float(abs((mpmath.mpf(yi) - v) / v))
            worst = max(worst, rel / bi)
            if rel > bi / 16:
                bad.append(f"x = {x!r}: relative error {rel:.3g} > bound/16 = {bi / 16:.3g} "
                           f"(amp {bi / FD.BOUND - 1:.3g})")
    assert not bad, (f"{case.id} float64 formula (reference.float64_derivatives) exceeds its bound:\n"
                     + "\n".join(bad[:10]) + f"\nreproduce: pytest tests/test_reference_derivatives.py -k '{case.id}'")
