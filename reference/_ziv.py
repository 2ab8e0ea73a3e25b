"""Correct rounding of a reference formula by Ziv's strategy.

A reference function ``fn(x, **params)`` takes the exact input as a Python
float and returns one of:

* a Python float: an exact special value (signed zero, infinity, nan) or an
  exactly representable result, declared by the reference's own rules;
* a ``fractions.Fraction``: an exact rational result (piecewise-rational ops
  such as ``hard_swish`` or ``softsign``, exact products such as
  ``leaky_relu``), rounded once by ``_convert.round_fraction`` with integer
  arithmetic: exact, including exact midpoints;
* an ``mpf`` computed in the current mpmath context.

For an ``mpf``, ``correctly_rounded`` evaluates ``fn`` at a working precision
``wp = prec + GUARD`` and takes the result ``v`` to have relative error below
``2**-prec``: every reference formula is written without cancellation (expm1,
log1p, erfc, ...), so its rounding errors stay a few ulps of ``wp``; ``GUARD``
bits cover them with a wide margin, and tests/test_reference.py checks it by
recomputing at twice the precision.  If the interval ``v * (1 ± 2**-prec)``
rounds to a single value of the target format (and the same stored residual
quantum), that value is the correctly rounded result; otherwise the precision
doubles.  Nothing else ever ends the loop: in particular a value that comes
out identical at two precisions is NOT taken to be exact (``gelu(2**-1074)``
is ``2**-1075 (1 + 0.798 * 2**-1074 + ...)``: its correction term lies below
every working precision short of ~1130 bits, and the value just above the
midpoint must round up).  The precision limit grows with the input's binary
exponent (``max_precision``), so the loop can resolve a correction term of
relative size ``|x|**k`` up to ``k = 4`` for every input down to the smallest
float64 subnormal; past it, ``ArithmeticError`` says so.  An exact midpoint
can only be reached by a reference that returns a ``Fraction``.

The mpmath context is only changed inside ``mpmath.workprec`` blocks, so
callers never see a different global precision.
"""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath

from ._convert import Format, quantize_residual, round_fraction, round_to_format

__all__ = ["correctly_rounded", "GUARD", "MAX_PREC", "max_precision", "start_precision"]

GUARD = 24
MAX_PREC = 4096


def start_precision(fmt: Format) -> int:
    """First working precision: the format's bits plus 40, at least 64."""
    return max(64, fmt.p + 40)


def max_precision(x: float) -> int:
    """Largest working precision tried for input ``x``: ``MAX_PREC`` plus four bits per binade of
    ``|x|`` away from 1, so a correction term ``~ |x|**4`` relative to the leading one is still
    resolved (e.g. 4096 + 4296 bits at the smallest float64 subnormal)."""
    if not math.isfinite(x) or x == 0:
        return MAX_PREC
    return MAX_PREC + 4 * abs(math.frexp(x)[1])


def _evaluate(fn, x, params, wp):
    with mpmath.workprec(wp):
        return fn(x, **params)


def correctly_rounded(fn, x: float, fmt: Format, params=None, prec: int | None = None):
    """``(rounded, residual)`` of ``fn(x, **params)`` in ``fmt``; see module docstring."""
    params = params or {}
    prec = prec or start_precision(fmt)
    limit = max_precision(float(x))
    while True:
        v = _evaluate(fn, x, params, prec + GUARD)
        if isinstance(v, float):
            r, _ = round_to_format(mpmath.mpf(v), fmt) if math.isfinite(v) and v != 0 else (v, 0.0)
            if r != v and not (math.isnan(r) and math.isnan(v)):
                raise ValueError(f"{fn.__name__}({x!r}) returned the float {v!r}, which is not a {fmt.name} value")
            return v, 0.0
        if isinstance(v, Fraction):
            return round_fraction(v, fmt)  # an exact 0 (hard_swish'(-1.5)) is +0, as IEEE's x + (-x)
        if not mpmath.isfinite(v):
            return round_to_format(v, fmt)
        if v == 0:
            return 0.0, 0.0
        eps = mpmath.ldexp(1, -prec)
        with mpmath.workprec(prec + GUARD + 8):
            lo, hi = v * (1 - eps), v * (1 + eps)
        (rl, ql), (rh, qh) = round_to_format(lo, fmt), round_to_format(hi, fmt)
        if rl == rh and quantize_residual(ql) == quantize_residual(qh):
            return round_to_format(v, fmt)
        if prec >= limit:
            raise ArithmeticError(
                f"{fn.__name__}({x!r}, {params}) could not be rounded to {fmt.name} at {prec} bits: the value "
                f"is within 2**-{prec} (relative) of a rounding boundary; if it is exactly on one, the "
                "reference must return it as a Fraction"
            )
        prec = min(2 * prec, limit)
