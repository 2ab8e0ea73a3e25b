"""Exact conversion between binary floats and mpmath numbers, and correct rounding.

This is the ONE place where floats become ``mpf`` and ``mpf`` become floats.

* ``to_mpf(x)``: every float16/bfloat16/float32/float64 value is exactly a binary64
  value, and ``mpmath.mpf(float)`` is exact, so the conversion loses nothing.
  No decimal strings are involved anywhere.
* ``dyadic_to_mpf(man, exp)``: the exact ``mpf`` of an integer times a power of
  two (exact sums of products of floats are such numbers).
* ``round_to_format(v, fmt)``: round an ``mpf`` to the nearest value of a binary
  format (round-half-to-even, gradual underflow, overflow to infinity), done
  with Python integers on the mantissa/exponent pair, so there is no double
  rounding through float64.  It also returns the residual
  ``(v - rounded) / ulp(v)``, the signed distance in ulps of ``v`` that the error
  metric needs.

``ulp(v)`` is ``2**(max(floor(log2|v|), emin) - (p - 1))``: the spacing of the
format's values in the binade of ``v`` (subnormal spacing below ``2**emin``).
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import mpmath

__all__ = [
    "Format", "FORMATS", "to_mpf", "to_fraction", "dyadic_to_mpf", "round_to_format", "round_fraction",
    "ulp_exponent", "quantize_residual", "RESIDUAL_SCALE",
]

# Residuals are stored as int16 multiples of 2**-14 ulp: |residual| <= 0.5 ulp
# fits in +-8192, and 6.1e-5 ulp resolution is far below anything a budget
# distinguishes (budgets are integers or "correctly rounded", which is decided
# from the rounded value itself, not from the residual).
RESIDUAL_SCALE = 1 << 14


def quantize_residual(r: float) -> int:
    """``round_half_even(r * 2**14)``; 0 for nan (non-finite results carry no residual)."""
    if math.isnan(r):
        return 0
    return round(r * RESIDUAL_SCALE)


@dataclasses.dataclass(frozen=True)
class Format:
    """A binary interchange-like format: ``p`` significand bits (with the hidden
    bit), normal exponents ``emin..emax``.  ``finite_max = (2 - 2**(1-p)) * 2**emax``."""

    name: str
    p: int
    emin: int
    emax: int

    @property
    def min_normal(self) -> float:
        return math.ldexp(1.0, self.emin)

    @property
    def min_subnormal(self) -> float:
        return math.ldexp(1.0, self.emin - self.p + 1)

    @property
    def finite_max(self) -> float:
        return math.ldexp(2.0 - math.ldexp(1.0, 1 - self.p), self.emax)


FORMATS = {
    "float16": Format("float16", 11, -14, 15),
    "bfloat16": Format("bfloat16", 8, -126, 127),
    "float32": Format("float32", 24, -126, 127),
    "float64": Format("float64", 53, -1022, 1023),
}


def to_mpf(x) -> mpmath.mpf:
    """Exact ``mpf`` of a binary float (numpy scalar of any float dtype, or ``float``);
    an ``mpf`` is returned unchanged (its value is already exact: this lets the
    numerical derivatives of ``reference.derivatives`` evaluate a forward reference
    at ``x + h``)."""
    if isinstance(x, mpmath.mpf):
        return x
    xf = float(x)  # every supported format embeds exactly in binary64
    return mpmath.mpf(xf)


def to_fraction(x) -> Fraction:
    """Exact ``Fraction`` of a finite binary float or ``mpf`` (both are dyadic rationals), for
    references whose result is a rational function of the input: they compute it exactly and
    ``round_fraction`` rounds it once, with no precision to choose."""
    if isinstance(x, mpmath.mpf):
        sign, man, exp, _ = x._mpf_
        if man == 0 and x != 0:
            raise ValueError(f"to_fraction needs a finite value, got {x}")
        v = Fraction(int(man)) * (Fraction(2) ** int(exp))
        return -v if sign else v
    return Fraction(float(x))


def dyadic_to_mpf(man: int, exp: int) -> mpmath.mpf:
    """Exact ``mpf`` of ``man * 2**exp`` (Python ints of any size): no rounding to the
    context precision, so exact sums of products can be rounded once by
    ``round_to_format``."""
    return mpmath.mp.make_mpf(mpmath.libmp.from_man_exp(int(man), int(exp)))


def ulp_exponent(e: int, fmt: Format) -> int:
    """Exponent ``q`` of the ulp in binade ``2**e`` (``e = floor(log2|v|)``)."""
    return max(e, fmt.emin) - (fmt.p - 1)


def round_to_format(v: mpmath.mpf, fmt: Format) -> tuple[float, float]:
    """Round ``v`` to ``fmt`` (nearest, ties to even).

    Returns ``(rounded, residual)``: ``rounded`` is a Python float holding the
    format's value exactly (``±inf`` on overflow, ``nan`` for nan, signed zero
    on underflow), ``residual = (v - rounded) / ulp(v)`` (0.0 when exact, nan
    when ``v`` is not finite or rounds to infinity).
    """
    sign, man, exp, bc = v._mpf_
    if man == 0:  # zero, inf or nan (mpmath encodes specials with man == 0)
        if v == 0:
            return (-0.0 if sign else 0.0), 0.0
        if mpmath.isnan(v):
            return math.nan, math.nan
        return (-math.inf if sign else math.inf), math.nan
    man, exp, bc = int(man), int(exp), int(bc)  # gmpy2 backend gives mpz
    e = exp + bc - 1  # floor(log2|v|)
    if e > fmt.emax:
        return (-math.inf if sign else math.inf), math.nan
    q = ulp_exponent(e, fmt)
    if e < fmt.emin - fmt.p:  # |v| < half the smallest subnormal: rounds to zero
        return (-0.0 if sign else 0.0), float(mpmath.ldexp(v, -q))
    shift = q - exp
    if shift <= 0:
        n, rem_num, rem_den = man << (-shift), 0, 1
    else:
        n, rem = divmod(man, 1 << shift)
        half = 1 << (shift - 1)
        rem_num, rem_den = rem, 1 << shift
        if rem > half or (rem == half and (n & 1)):
            n += 1
            rem_num -= rem_den
    # residual in ulps of v: (man*2**exp - n*2**q) / 2**q = rem_num / rem_den
    residual = rem_num / rem_den
    if sign:
        residual = -residual
    limit = (1 << fmt.p) - 1  # largest significand of the top binade
    if q > fmt.emax - fmt.p + 1 or (q == fmt.emax - fmt.p + 1 and n > limit):
        return (-math.inf if sign else math.inf), math.nan
    rounded = math.ldexp(n, q)
    return (-rounded if sign else rounded), residual


def round_fraction(v: Fraction, fmt: Format) -> tuple[float, float]:
    """Round the rational ``v`` to ``fmt`` (nearest, ties to even), exactly.

    Same contract as ``_convert.round_to_format``: ``(rounded, residual)`` with
    ``residual = (v - rounded) / ulp(v)``; ``±inf`` (residual nan) on overflow.
    """
    v = Fraction(v)
    num, den = v.numerator, v.denominator
    if num == 0:
        return 0.0, 0.0
    sign = num < 0
    num = abs(num)
    e = num.bit_length() - den.bit_length()  # floor(log2 v) is e or e - 1
    if (num << max(0, -e)) < (den << max(0, e)):
        e -= 1
    if e > fmt.emax:
        return (-math.inf if sign else math.inf), math.nan
    q = ulp_exponent(e, fmt)
    a, b = (num << -q, den) if q < 0 else (num, den << q)  # v / 2**q = a / b
    n, rem = divmod(a, b)
    if 2 * rem > b or (2 * rem == b and n & 1):
        n += 1
        rem -= b
    residual = Fraction(rem, b)
    limit = (1 << fmt.p) - 1
    if q > fmt.emax - fmt.p + 1 or (q == fmt.emax - fmt.p + 1 and n > limit):
        return (-math.inf if sign else math.inf), math.nan
    rounded = math.ldexp(n, q)
    r = float(residual)
    return (-rounded if sign else rounded), (-r if sign else r)
