"""Vectorizable double-double kernels for the float64 activations.

A double-double ``DD(hi, lo)`` is the unevaluated sum ``hi + lo`` of two float64
arrays with ``|lo| <= ulp(hi)/2``, about 106 significant bits.  A float64 result
computed as a double-double with relative error ``d`` rounds (``DD.round``:
``hi`` of the normalized pair) to the correctly rounded float64 unless the exact
value lies within ``d`` of a float64 rounding boundary: with the kernels here
``d`` is below about ``2**-64``, so some 99.9 % of generic results are correctly
rounded, and every one is within ``0.5 + 2**-11`` ulp.

The error-free transformations (Knuth's TwoSum, Dekker's split and product,
no fused multiply-add) are plain adds and multiplies, so XLA vectorizes them;
XLA on CPU does not reassociate float64 arithmetic between arrays (no
fast-math), but it folds ``(x + c) - c`` into ``x`` for a constant ``c``, and
it contracts a product and a sum into a fused multiply-add where the CPU has
one (so ``a * b`` is not the same rounded value in every use): a sum with a
constant and the rounded product of TwoProduct go through an opaque select
(``_opaque``).  ``tests/test_dd.py`` checks, compiled, that the error terms
come out exact and nonzero.  Dekker's split needs ``|a| < 2**995``
(``134217729 a`` must not overflow); callers keep their double-double paths
inside that range.

Kernels (relative error against mpmath in ``tests/test_dd.py``):

* ``exp_parts(t)`` for a double-double ``t``: ``exp(t) = (h + l) 2**m``,
  reduction ``t = k ln2/8 + r`` (``ln2/8`` in two parts, the first on 39 bits
  so that ``k * C1`` is exact for ``|k| < 2**14``; TwoSum keeps ``t - k C1``
  exact), ``|r| <= ln2/16``, ``exp(r) = 1 + r + r**2/2 + r**3 P(r)`` with ``r**2``
  exact (TwoProduct) and ``P`` of degree 8 in float64 (``|r**3 P| < 2**-16``, so
  its rounding is below 2**-67), times ``2**(j/8)`` (``j = k mod 8``, a
  double-double constant chosen by selects) and ``2**m`` (``m = floor(k/8)``,
  applied by the caller with ``ldexp``, so that a product with a tiny ``exp``
  stays normal when the result is).  Below 2**-64 relative.
* ``expm1(t)``: ``exp(r) - 1`` without the ``1`` when ``k = 0`` (``|t| < ln2/16``),
  else ``exp(t) - 1`` in double-double (``|expm1(t)| > 0.04``: the subtraction
  magnifies exp's error at most 24 times, next to ``|t| = ln2/16``).  Below 2**-62
  relative (measured 2**-62.7).
* ``log1p(e)`` for ``0 <= e <= 1``: a 2**-50 start (``_fast64.log1p_unit``) and
  one Newton step ``y - (expm1(y) - e) / (1 + e)`` with ``expm1`` in
  double-double: the step's own error is quadratic (below 2**-98), so the bound
  is ``expm1``'s.  Below 2**-62 relative (measured 2**-63.2).
* ``erfcx(w)`` for ``0 <= w <= 28``: a degree-28 polynomial of ``erfcx(w) (w + 3)`` in
  ``s``, an affine map of ``(w - 3)/(w + 3)`` computed in double-double
  (``tools/fit_erfcx_dd.py``: interpolation error 2**-68.3), its first ten terms in
  double-double.  Below 2**-65 relative (measured 2**-66.6).

``tests/test_dd.py`` checks each bound against mpmath.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from . import _fast64

__all__ = ["DD", "two_sum", "two_prod", "exp_expm1", "exp_parts", "exp", "expm1", "log1p", "erfcx", "ldexp", "ldexp_dd"]

_SPLITTER = 134217729.0  # 2**27 + 1


def _opaque(v):
    """``v`` (NaN read as 0) through a select that neither XLA nor LLVM looks through."""
    return jnp.where(v == v, v, 0.0)


def _sum(a, b):
    """``a + b``; with a Python number on either side, opaque (``_opaque``): XLA folds
    ``(x + c) - c`` into ``x``, which would make the error term of TwoSum 0."""
    s = a + b
    if isinstance(a, (int, float)) or isinstance(b, (int, float)):
        s = _opaque(s)
    return s


def two_sum(a, b):
    """``a + b = s + e`` exactly (Knuth; no condition on the magnitudes)."""
    s = _sum(a, b)
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _fast_two_sum(a, b):
    """``a + b = s + e`` exactly for ``|a| >= |b|`` (or ``a`` = 0)."""
    s = _sum(a, b)
    return s, b - (s - a)


def _split(a):
    c = _SPLITTER * a
    hi = c - (c - a)
    return hi, a - hi


def two_prod(a, b):
    """``a * b = p + e`` exactly (Dekker), for ``|a|, |b| < 2**995`` and no underflow."""
    p = _opaque(a * b)  # the rounded product, never contracted with a later add into an FMA
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


class DD:
    """A double-double ``hi + lo`` (see module docstring); the arithmetic operators
    take a ``DD``, a float64 array or a Python float on either side."""

    __slots__ = ("hi", "lo")

    def __init__(self, hi, lo=0.0):
        self.hi, self.lo = hi, lo

    @staticmethod
    def of(v):
        return v if isinstance(v, DD) else DD(v, 0.0)

    def round(self):
        """The float64 nearest ``hi + lo``."""
        return self.hi + self.lo

    def __neg__(self):
        return DD(-self.hi, -self.lo)

    def __add__(self, other):
        o = DD.of(other)
        s, e = two_sum(self.hi, o.hi)
        return DD(*_fast_two_sum(s, e + (self.lo + o.lo)))

    __radd__ = __add__

    def __sub__(self, other):
        return self + (-DD.of(other))

    def __rsub__(self, other):
        return DD.of(other) + (-self)

    def __mul__(self, other):
        o = DD.of(other)
        p, e = two_prod(self.hi, o.hi)
        return DD(*_fast_two_sum(p, e + (self.hi * o.lo + self.lo * o.hi)))

    __rmul__ = __mul__

    def __truediv__(self, other):
        o = DD.of(other)
        q = self.hi / o.hi
        p, e = two_prod(q, o.hi)
        r = (((self.hi - p) - e) + self.lo - q * o.lo) / o.hi
        return DD(*_fast_two_sum(q, r))

    def __rtruediv__(self, other):
        return DD.of(other) / self

    def where(self, mask, other):
        """``self`` where ``mask``, else ``other``, componentwise."""
        o = DD.of(other)
        return DD(jnp.where(mask, self.hi, o.hi), jnp.where(mask, self.lo, o.lo))


def _pow2(m):
    """``2**m`` for an integral float64 ``m`` in [-1022, 1023], from its bits: ``m + 1.5 * 2**52``
    holds ``2**51 + m`` in its low bits, and the shift by 52 keeps only ``m + 1023``."""
    bits = lax.bitcast_convert_type(m + 6755399441055744.0, jnp.int64)
    return lax.bitcast_convert_type((bits + 1023) << 52, jnp.float64)


def _scalings(m):
    """Three powers of two whose product is ``2**m``, for an integral ``m`` in [-3000, 3000]."""
    m1 = jnp.clip(m, -1000.0, 1000.0)
    m2 = jnp.clip(m - m1, -1000.0, 1000.0)
    return _pow2(m1), _pow2(m2), _pow2(m - m1 - m2)


def ldexp_dd(v: DD, m) -> DD:
    """``v * 2**m`` (``m`` integral, in [-3000, 3000]), componentwise: exact while both parts stay
    normal."""
    s1, s2, s3 = _scalings(m)
    return DD(((v.hi * s1) * s2) * s3, ((v.lo * s1) * s2) * s3)


def ldexp(v: DD, m):
    """``v * 2**m`` rounded to float64: the scalings are exact while the result is normal (a
    subnormal result is what the device makes of it); a result that underflows to zero keeps the
    sign of ``v`` (``-0 + +0`` would be +0)."""
    w = ldexp_dd(v, m)
    y = w.round()
    return jnp.where(y == 0, w.hi, y)


# 2**(j/8), j = 0..7, as double-doubles
_TWO_J8 = ((1.0, 0.0), (1.0905077326652577, -3.046782079812471e-17), (1.189207115002721, 3.982015231465646e-17),
           (1.2968395546510096, 2.5382502794888315e-17), (1.4142135623730951, -9.667293313452913e-17),
           (1.5422108254079407, 7.949834809697621e-17), (1.681792830507429, 8.199010020581497e-17),
           (1.8340080864093424, 3.283107224245627e-17))
_INV_LN2_8 = 11.541560327111707  # 8/ln2
_C1 = 0.08664339756978734  # ln2/8 on 39 bits
_C2 = 2.0582436978621353e-13  # ln2/8 - _C1 (the rest, 1.3e-29, times |k| < 2**14, is below 2**-82)
_EXP_P = tuple(1.0 / f for f in (6.0, 24.0, 120.0, 720.0, 5040.0, 40320.0, 362880.0, 3628800.0, 39916800.0))


def _reduce(t: DD):
    """``(k, r)``: ``t = k ln2/8 + r``, ``k`` integral, ``r`` a double-double."""
    k = lax.round(t.hi * _INV_LN2_8, lax.RoundingMethod.TO_NEAREST_EVEN)
    r1, e1 = two_sum(t.hi, -(k * _C1))
    return k, DD(*two_sum(r1, (e1 + t.lo) - k * _C2))


def _expm1_small(r: DD) -> DD:
    """``exp(r) - 1`` for ``|r| <= ln2/16`` (plus rounding), to below 2**-66 absolute."""
    p = _EXP_P[-1]
    for c in reversed(_EXP_P[:-1]):
        p = p * r.hi + c
    q = (r.hi * r.hi) * r.hi * p
    sq, sqe = two_prod(r.hi, r.hi)
    a, ae = two_sum(r.hi, 0.5 * sq)
    return DD(*_fast_two_sum(a, ae + (r.lo + (0.5 * sqe + r.hi * r.lo) + q)))


def _select_two_j8(j):
    hi, lo = _TWO_J8[0]
    for n in range(1, 8):
        hi = jnp.where(j == n, _TWO_J8[n][0], hi)
        lo = jnp.where(j == n, _TWO_J8[n][1], lo)
    return DD(hi, lo)


def exp_expm1(t):
    """``(v, m, q)``: ``exp(t) = v * 2**m`` (``v`` a double-double in [0.95, 2), ``m`` integral) and
    ``q = expm1(t)`` as a double-double, for a double-double (or float64) ``t``, ``t.hi`` clamped
    to [-1400, 710]; XLA drops whichever of the two a caller does not use."""
    t = DD.of(t)
    t = DD(jnp.clip(t.hi, -1400.0, 710.0), t.lo)
    k, r = _reduce(t)
    small = _expm1_small(r)
    m = jnp.floor(k * 0.125)
    tj = _select_two_j8(k - 8.0 * m)
    v = tj + tj * small
    return v, m, small.where(k == 0, ldexp_dd(v, m) - 1.0)


def exp_parts(t):
    """``(v, m)`` with ``exp(t) = v * 2**m`` (see ``exp_expm1``)."""
    v, m, _ = exp_expm1(t)
    return v, m


def exp(t) -> DD:
    """``exp(t)`` as a double-double, for ``t`` in [-670, 709] (so that ``lo`` is normal)."""
    v, m = exp_parts(t)
    return ldexp_dd(v, m)


def expm1(t) -> DD:
    """``expm1(t)`` as a double-double for ``t`` (double-double or float64) in [-1400, 709]."""
    return exp_expm1(t)[2]


def log1p(e):
    """``log1p(e)`` as a double-double for a double-double (or float64) ``0 <= e <= 1``."""
    e = DD.of(e)
    y0 = _fast64.log1p_unit(e.hi)
    d = expm1(y0) - e
    return DD(*_fast_two_sum(y0, -(d.hi / (1.0 + e.hi))))


# erfcx(w) (w + 3) as a polynomial in s = ((w - 3) / (w + 3) + 1) A - 1 on 0 <= w <= 28: python -m
# tools.fit_erfcx_dd (degree 28, interpolation error 2**-68.3; the first ten coefficients as double-doubles)
_ERFCX_A = 1.1071428571428572
_ERFCX_DD = ((1.1653164165801329, 4.2535725770369466e-17), (-0.9093677502357113, 9.733074705819177e-18),
             (0.5607284216214071, -3.03860891015574e-17), (-0.26469507895412764, 2.353111767855085e-17),
             (0.08801265552194203, -5.467147621206089e-18), (-0.015330479551152668, 2.3366742899180794e-19),
             (-0.0018399227911711027, 9.144023075008711e-20), (0.0016451551113077982, -4.892656564554516e-20),
             (-0.00011834330783257074, -6.199407721589307e-21), (-0.00014486320534531132, 1.1765415822689638e-20))
_ERFCX_TAIL = (2.3796656195645497e-05, 1.5157347928581402e-05, -2.8311652844637395e-06, -1.9588994476207957e-06,
               2.422776210821084e-07, 2.8528193256348093e-07, 2.440961592381617e-10, -4.1063901726235416e-08,
               -6.9627197770365845e-09, 4.965772530492522e-09, 2.1502522946168707e-09, -3.2216617961028774e-10,
               -4.362193043229299e-10, -4.4863780252753035e-11, 6.21165829371711e-11, 1.6973123312565488e-11,
               -5.389632512330653e-12, -1.87713965637101e-12, 1.7438404684133005e-13)


def erfcx(w: DD) -> DD:
    """``exp(w**2) erfc(w)`` as a double-double for a double-double ``0 <= w <= 28``.

    ``s`` in double-double; the polynomial's terms below 2**-15 in Horner's scheme in float64
    with ``s.hi`` (their rounding is below 2**-67 of the result), the first ten in
    double-double."""
    inv = 1.0 / (w + 3.0)
    s = ((w - 3.0) * inv + 1.0) * _ERFCX_A - 1.0
    x = s.hi
    q = _ERFCX_TAIL[-1]
    for c in reversed(_ERFCX_TAIL[:-1]):
        q = q * x + c
    p = DD.of(q)
    for h, l in reversed(_ERFCX_DD):
        p = p * s + DD(h, l)
    return p * inv
