"""Correct rounding of a reference formula by Ziv's strategy.

A reference function ``fn(x, **params)`` takes the exact input as a Python
float and returns either a Python float (an exact special value: signed zero,
infinity, nan, or an exactly representable result) or an ``mpf`` computed in the
current mpmath context.

``correctly_rounded`` evaluates ``fn`` at a working precision ``wp = prec + GUARD``
and takes the result ``v`` to have relative error below ``2**-prec``: every
reference formula is written without cancellation (expm1, log1p, erfc, ...), so
its rounding errors stay a few ulps of ``wp``; ``GUARD`` bits cover them with a
wide margin, and tests/test_reference.py checks it by recomputing at twice the
precision.  If the interval ``v * (1 ± 2**-prec)`` rounds to a single value of
the target format, that value is the correctly rounded result; otherwise the
precision doubles.  The same test is applied to the stored (quantized)
residual, so both stored numbers are exactly those of the exact value.  A value that comes out identical at two precisions is
exact (an exactly representable midpoint, e.g. ``hard_sigmoid(3 * 2**-24)``),
and is rounded as such.

The mpmath context is only changed inside ``mpmath.workprec`` blocks, so
callers never see a different global precision.
"""

from __future__ import annotations

import math

import mpmath

from ._convert import Format, quantize_residual, round_to_format

__all__ = ["correctly_rounded", "GUARD", "MAX_PREC", "start_precision"]

GUARD = 24
MAX_PREC = 4096


def start_precision(fmt: Format) -> int:
    """First working precision: the format's bits plus 40, at least 64."""
    return max(64, fmt.p + 40)


def _evaluate(fn, x, params, wp):
    with mpmath.workprec(wp):
        return fn(x, **params)


def correctly_rounded(fn, x: float, fmt: Format, params=None, prec: int | None = None):
    """``(rounded, residual)`` of ``fn(x, **params)`` in ``fmt``; see module docstring."""
    params = params or {}
    prec = prec or start_precision(fmt)
    previous = None
    while True:
        v = _evaluate(fn, x, params, prec + GUARD)
        if isinstance(v, float):
            r, _ = round_to_format(mpmath.mpf(v), fmt) if math.isfinite(v) and v != 0 else (v, 0.0)
            if r != v and not (math.isnan(r) and math.isnan(v)):
                raise ValueError(f"{fn.__name__}({x!r}) returned the float {v!r}, which is not a {fmt.name} value")
            return v, 0.0
        if not mpmath.isfinite(v):
            return round_to_format(v, fmt)
        if v == 0:
            return 0.0, 0.0
        if previous is not None and v == previous:
            return round_to_format(v, fmt)  # exact at two precisions: the value is exact
        eps = mpmath.ldexp(1, -prec)
        with mpmath.workprec(prec + GUARD + 8):
            lo, hi = v * (1 - eps), v * (1 + eps)
        (rl, ql), (rh, qh) = round_to_format(lo, fmt), round_to_format(hi, fmt)
        if rl == rh and quantize_residual(ql) == quantize_residual(qh):
            return round_to_format(v, fmt)
        if prec >= MAX_PREC:
            raise ArithmeticError(
                f"{fn.__name__}({x!r}, {params}) could not be rounded to {fmt.name} at {prec} bits"
            )
        previous = v
        prec *= 2
