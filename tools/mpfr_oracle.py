"""A second, independent oracle: GNU MPFR (through gmpy2) for the elementwise ops.

What: every elementwise activation and its first and second derivatives,
computed from their definitions with MPFR interval arithmetic and rounded
correctly into float16, bfloat16, float32 or float64 by MPFR itself
(nearest-even, the format's exponent range, ``subnormalize=True``).
``python -m tools.mpfr_oracle`` compares every value stored in
``golden/activations`` and ``golden/gradients`` (the rounded result and its
int16 residual) with it and names each disagreement.

Why: the golden data comes from one code base (``reference/``: mpmath, its
own rounding, its own special-value rules).  A second one that shares none of
that code (other library, other formulas where the derivation allows, interval
enclosures instead of error bounds, MPFR's rounding and subnormal handling
instead of ``reference._convert``) turns "the references say so" into "two
independent computations agree".  This module imports nothing from
``reference/`` (``tests/test_mpfr_oracle.py`` checks it); it takes only the
list of cases and the input subsets from ``tools.registry``.

How: each op is a formula on intervals.  At working precision ``p`` every
operation is done twice, rounding its lower end down and its upper end up
(``gmpy2`` contexts with ``RoundDown``/``RoundUp`` and MPFR's largest exponent
range; MPFR's ``exp``, ``expm1``, ``log1p``, ``erfc``, ``tanh``, ``sqrt`` and
``pi`` are correctly rounded in every direction), so the result is an interval
that contains the exact value, whatever cancellation or underflow happened on
the way.  If both ends round to the same value of the target format (same
sign, too) and give the same quantized residual, every point in between does
too (rounding is monotone), so that is the correctly rounded result;
otherwise ``p`` doubles, up to ``MAX_PRECISION`` bits, past which
``Undecided`` is raised: the oracle never guesses.  Rational results
(``relu``, ``relu6``, ``leaky_relu``, ``selu`` for x > 0, ``hard_sigmoid``,
``hard_swish``, ``softsign`` and the rational derivatives) are exact
``gmpy2.mpq`` values rounded once.  Special values (nan, ±inf, signed zeros)
and kinks follow the rules written above the formulas, which restate
``docs/conventions.md``.

Two facts the decision relies on, stated here because intervals cannot prove
them: (1) a transcendental formula at a nonzero input is never exactly 0, so
an enclosure ``[lo, 0]`` whose upper end underflowed to 0 holds a negative
value (rounding to -0 if it rounds to zero), and ``[0, hi]`` a positive one;
(2) for x < 0, ``0 < Phi(x) < phi(x) / |x|`` (the Mills-ratio bound), which
gives gelu' its sign where both of its terms underflow even MPFR's range.

How long: the whole store (9.0 million values) in about 4 minutes on 2
cores (7 minutes of worker time; ``docs/references.md`` has the measured
run); ``--sample 64`` (64 evenly spaced inputs per case and dtype plus every
subnormal, smallest-normal or underflowed result: 179,243 values) in about
6 seconds.

Usage::

    python -m tools.mpfr_oracle                      # every elementwise case and dtype
    python -m tools.mpfr_oracle --only '*gelu*' --dtype float64
    python -m tools.mpfr_oracle --sample 64          # the quick subset the tests use

Exit status 1 on any disagreement, undecided value or damaged golden file.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fnmatch
import functools
import math
import multiprocessing
import os
import sys
import time

import numpy as np

import ml_dtypes

try:
    import gmpy2
except ImportError:  # the CLI and the tests say how to install it
    gmpy2 = None

__all__ = [
    "INSTALL_HINT", "MAX_PRECISION", "TARGETS", "ELEMENTWISE_FAMILIES", "Target", "Undecided",
    "FORMULAS", "correctly_rounded", "check_case", "sample_indices", "run", "cross_check", "main",
]

INSTALL_HINT = "pip install gmpy2 (or '.[fast]')"
ELEMENTWISE_FAMILIES = ("activations", "gradients")
MAX_PRECISION = 1 << 14  # resolves a correction |x|**15 below the leading term at x = 2**-1074
RESIDUAL_BITS = 14  # the golden residual is an int16 count of 2**-14 ulp

# the binary64 values of the constants every framework uses (docs/references.md)
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
GELU_TANH_COEFF = 0.044715


class Undecided(ArithmeticError):
    """The enclosure still straddles a rounding boundary at ``MAX_PRECISION`` bits."""


# ---- target formats --------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Target:
    """A binary format: ``p`` significand bits, normal exponents ``emin..emax`` (IEEE
    convention).  MPFR writes values as ``0.1xxx * 2**e``, so the same format is the
    exponent range ``emin - p + 2 .. emax + 1`` with subnormalization."""

    name: str
    p: int
    emin: int
    emax: int
    dtype: type

    @property
    def start_precision(self) -> int:
        return max(64, self.p + 40)


TARGETS = {
    "float16": Target("float16", 11, -14, 15, np.float16),
    "bfloat16": Target("bfloat16", 8, -126, 127, ml_dtypes.bfloat16),
    "float32": Target("float32", 24, -126, 127, np.float32),
    "float64": Target("float64", 53, -1022, 1023, np.float64),
}
_UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}


@functools.lru_cache(maxsize=None)
def _target_context(name: str):
    t = TARGETS[name]
    return gmpy2.context(precision=t.p, emin=t.emin - t.p + 2, emax=t.emax + 1, subnormalize=True,
                         round=gmpy2.RoundToNearest)


def _round(v, t: Target):
    """``v`` (mpfr or mpq) rounded to ``t`` by MPFR: nearest-even, subnormals, overflow."""
    if isinstance(v, _MPQ):
        return gmpy2.mpfr(v, 0, _target_context(t.name))
    return _target_context(t.name).plus(v)


def _floor_log2(q) -> int:
    """``floor(log2 |q|)`` of a nonzero mpq."""
    num, den = abs(int(q.numerator)), int(q.denominator)
    e = num.bit_length() - den.bit_length()
    return e if (num << max(0, -e)) >= (den << max(0, e)) else e - 1


def _quantized_residual(v, rounded, t: Target) -> int:
    """``round_half_even((v - rounded) / ulp(v) * 2**14)`` exactly, for an exact ``v`` (mpfr
    or mpq) and its finite rounding; ``ulp(v) = 2**(max(floor(log2|v|), emin) - p + 1)``."""
    if v == 0:
        return 0
    q_min = t.emin - t.p + 1  # exponent of the smallest subnormal
    if isinstance(v, _MPFR) and gmpy2.get_exp(v) < q_min - RESIDUAL_BITS - 2:
        return 0  # |v| < 2**(q_min - 16): the residual is below 2**-16 ulp (no huge rationals)
    qv = gmpy2.mpq(v)
    q = max(_floor_log2(qv), t.emin) - t.p + 1
    s = (qv - gmpy2.mpq(rounded)) * gmpy2.mpq(2) ** (RESIDUAL_BITS - q)
    num, den = int(s.numerator), int(s.denominator)
    n, r = divmod(num, den)
    if 2 * r > den or (2 * r == den and n & 1):
        n += 1
    return n


def _exact(v, t: Target):
    """``(float, residual)`` of an exact value: a float (nan, ±inf, signed zero, or any
    finite binary64 value) or an mpq (an exact rational; 0 is +0)."""
    if isinstance(v, float):
        if not math.isfinite(v) or v == 0:
            return v, 0
        v = gmpy2.mpq(v)
    if v == 0:
        return 0.0, 0
    r = _round(v, t)
    if gmpy2.is_infinite(r):
        return float(r), 0
    return float(r), _quantized_residual(v, r, t)


def _decide(iv, t: Target):
    """``(float, residual)`` if every value of the enclosure rounds alike, else None."""
    lo, hi = iv.lo, iv.hi
    if gmpy2.is_nan(lo) or gmpy2.is_nan(hi) or lo > hi:
        raise ArithmeticError(f"invalid enclosure [{lo}, {hi}]")
    if lo == 0 and hi == 0:
        raise ArithmeticError("an enclosure [0, 0]: exact zeros must come from the op's rules")
    if lo < 0 < hi:
        return None
    # an end that is 0 takes the sign of the other (fact (1) of the module docstring)
    rl = _round(lo, t) if lo != 0 else gmpy2.mpfr(0)
    rh = _round(hi, t) if hi != 0 else gmpy2.mpfr(-0.0)
    if rl != rh or gmpy2.is_signed(rl) != gmpy2.is_signed(rh):
        return None
    if gmpy2.is_infinite(rl):
        return float(rl), 0
    ql, qh = _quantized_residual(lo, rl, t), _quantized_residual(hi, rh, t)
    if ql != qh:
        return None
    return float(rl), ql


# ---- interval arithmetic ---------------------------------------------------------

if gmpy2 is not None:
    _MPFR, _MPQ = type(gmpy2.mpfr(0)), type(gmpy2.mpq(0))
    _EMIN, _EMAX = gmpy2.get_emin_min(), gmpy2.get_emax_max()
else:  # pragma: no cover
    _MPFR = _MPQ = ()


class _Work:
    """Directed-rounding contexts at precision ``p`` (MPFR's widest exponent range) and the
    constants of the formulas as enclosures."""

    def __init__(self, p: int):
        self.p = p
        self.dn = gmpy2.context(precision=p, round=gmpy2.RoundDown, emin=_EMIN, emax=_EMAX)
        self.up = gmpy2.context(precision=p, round=gmpy2.RoundUp, emin=_EMIN, emax=_EMAX)
        pi = _Iv(self.dn.const_pi(), self.up.const_pi(), self)
        self.sqrt_half = self.sqrt(self.pt(0.5))  # 1/sqrt(2)
        self.inv_sqrt_2pi = 1 / self.sqrt(2 * pi)  # 1/sqrt(2 pi)
        self.sqrt_2_over_pi = self.sqrt(2 / pi)  # sqrt(2/pi)

    def pt(self, v) -> "_Iv":
        """The exact point interval of a float or a small int."""
        m = gmpy2.mpfr(v, 64)  # exact: floats have 53 bits, the ints used are small
        return _Iv(m, m, self)

    def _mono(self, f_dn, f_up, a, increasing=True):
        return _Iv(f_dn(a.lo), f_up(a.hi), self) if increasing else _Iv(f_dn(a.hi), f_up(a.lo), self)

    def exp(self, a):
        return self._mono(self.dn.exp, self.up.exp, a)

    def expm1(self, a):
        return self._mono(self.dn.expm1, self.up.expm1, a)

    def log1p(self, a):
        return self._mono(self.dn.log1p, self.up.log1p, a)

    def tanh(self, a):
        return self._mono(self.dn.tanh, self.up.tanh, a)

    def sqrt(self, a):
        return self._mono(self.dn.sqrt, self.up.sqrt, a)

    def erfc(self, a):
        return self._mono(self.dn.erfc, self.up.erfc, a, increasing=False)

    def sigmoid(self, a):
        """``1 / (1 + e^-a)``: no cancellation, and e^-a may under- or overflow freely."""
        return 1 / (1 + self.exp(-a))


@functools.lru_cache(maxsize=None)
def _work(p: int) -> _Work:
    return _Work(p)


class _Iv:
    """A closed interval ``[lo, hi]`` of mpfr values that contains the exact value.  An
    infinite end stands for an overflowed bound of a finite value."""

    __slots__ = ("lo", "hi", "w")

    def __init__(self, lo, hi, w):
        self.lo, self.hi, self.w = lo, hi, w

    def _lift(self, b):
        return b if isinstance(b, _Iv) else self.w.pt(b)

    def __neg__(self):
        return _Iv(self.w.dn.minus(self.hi), self.w.dn.minus(self.lo), self.w)  # exact at precision p

    def __add__(self, b):
        b = self._lift(b)
        return _Iv(self.w.dn.add(self.lo, b.lo), self.w.up.add(self.hi, b.hi), self.w)

    __radd__ = __add__

    def __sub__(self, b):
        b = self._lift(b)
        return _Iv(self.w.dn.sub(self.lo, b.hi), self.w.up.sub(self.hi, b.lo), self.w)

    def __rsub__(self, b):
        return self._lift(b) - self

    def __mul__(self, b):
        b = self._lift(b)
        a1, a2, b1, b2 = self.lo, self.hi, b.lo, b.hi
        dn, up = self.w.dn.mul, self.w.up.mul
        if a1 >= 0:
            if b1 >= 0:
                return _Iv(dn(a1, b1), up(a2, b2), self.w)
            if b2 <= 0:
                return _Iv(dn(a2, b1), up(a1, b2), self.w)
            return _Iv(dn(a2, b1), up(a2, b2), self.w)
        if a2 <= 0:
            if b1 >= 0:
                return _Iv(dn(a1, b2), up(a2, b1), self.w)
            if b2 <= 0:
                return _Iv(dn(a2, b2), up(a1, b1), self.w)
            return _Iv(dn(a1, b2), up(a1, b1), self.w)
        if b1 >= 0:
            return _Iv(dn(a1, b2), up(a2, b2), self.w)
        if b2 <= 0:
            return _Iv(dn(a2, b1), up(a1, b1), self.w)
        los, his = (dn(a1, b2), dn(a2, b1)), (up(a1, b1), up(a2, b2))
        if any(gmpy2.is_nan(v) for v in los + his):
            raise ArithmeticError("nan in an interval product")
        return _Iv(min(los), max(his), self.w)

    __rmul__ = __mul__

    def __truediv__(self, b):
        b = self._lift(b)
        a1, a2, b1, b2 = self.lo, self.hi, b.lo, b.hi
        dn, up = self.w.dn.div, self.w.up.div
        if b1 > 0:
            if a1 >= 0:
                return _Iv(dn(a1, b2), up(a2, b1), self.w)
            if a2 <= 0:
                return _Iv(dn(a1, b1), up(a2, b2), self.w)
            return _Iv(dn(a1, b1), up(a2, b1), self.w)
        if b2 < 0:
            if a1 >= 0:
                return _Iv(dn(a2, b2), up(a1, b1), self.w)
            if a2 <= 0:
                return _Iv(dn(a2, b1), up(a1, b2), self.w)
            return _Iv(dn(a2, b2), up(a1, b2), self.w)
        raise ArithmeticError(f"division by an interval that holds 0: [{b1}, {b2}]")

    def __rtruediv__(self, b):
        return self._lift(b) / self

    def intersect(self, b):
        lo, hi = max(self.lo, b.lo), min(self.hi, b.hi)
        if lo > hi:
            raise ArithmeticError(f"disjoint enclosures [{self.lo}, {self.hi}] and [{b.lo}, {b.hi}]")
        return _Iv(lo, hi, self.w)


# ---- the ops ---------------------------------------------------------------------
#
# Each formula takes the exact input ``x`` (a Python float), the working precision
# ``w`` and the op's parameters, and returns a float (an exact value: a special, a
# signed zero, or a binary64 number such as x itself), an mpq (an exact rational) or
# an _Iv (an enclosure).  Derivations are in the docstrings; every special value is
# decided before any interval is built.

# Special values (a restatement of docs/conventions.md): nan -> nan for every op and order.
# Zeros: relu, relu6, hard_sigmoid give +0 for x <= 0; the odd-at-zero ops (leaky_relu, elu,
# celu, selu, gelu, silu, mish, tanh, softsign, hard_swish) keep the sign of a zero input; an
# exact rational zero inside a piece (hard_swish'(-1.5)) is +0; the odd second derivatives
# (sigmoid'', tanh'', softsign'') are -0 at +0 and +0 at -0.
# Infinities: the limit, with -0 for a limit 0 approached from below (gelu, silu, mish at -inf;
# hard_swish for x <= -3; log_sigmoid at +inf; gelu', silu', mish' at -inf; gelu'', silu'',
# mish'', log_sigmoid'' at both ends; sigmoid'', tanh'', softsign'' at +inf).
# Kinks: one one-sided derivative, fixed per op: relu'(0) = 0, leaky_relu'(0) = slope, relu6' =
# 0 at 0 and 6, hard_sigmoid' = 0 at -3 and 3, hard_swish' = 0 at -3 and 1 at 3; elu, celu and
# selu take their x <= 0 branch at 0 (first and second derivatives).

def _q(x: float):
    return gmpy2.mpq(x)


def relu(x, w):
    """``max(x, 0)``, +0 for x <= 0."""
    return x if math.isnan(x) or x > 0 else 0.0


def d_relu(x, w):
    return x if math.isnan(x) else (1.0 if x > 0 else 0.0)


def relu6(x, w):
    """``min(max(x, 0), 6)``."""
    if math.isnan(x):
        return x
    return 0.0 if x <= 0 else min(x, 6.0)


def d_relu6(x, w):
    return x if math.isnan(x) else (1.0 if 0 < x < 6 else 0.0)


def leaky_relu(x, w, negative_slope=0.01):
    """``x`` for x >= 0, ``slope * x`` (exact rational) below; a zero slope gives -0."""
    if math.isnan(x) or x >= 0:
        return x
    if negative_slope == 0:
        return -0.0
    if math.isinf(x):
        return math.copysign(math.inf, -negative_slope)
    return _q(negative_slope) * _q(x)


def d_leaky_relu(x, w, negative_slope=0.01):
    if math.isnan(x):
        return x
    return 1.0 if x > 0 else negative_slope + 0.0  # + 0.0: a zero slope gives +0


def elu(x, w, alpha=1.0):
    """``x`` for x > 0, ``alpha expm1(x)`` for x <= 0; -inf -> -alpha; alpha = 0 -> -0."""
    if math.isnan(x) or x >= 0:
        return x
    if alpha == 0:
        return -0.0
    if math.isinf(x):
        return -alpha
    return alpha * w.expm1(w.pt(x))


def d_elu(x, w, alpha=1.0):
    """1 for x > 0; ``alpha e^x`` for x <= 0; -inf -> +0."""
    if math.isnan(x):
        return x
    if x > 0:
        return 1.0
    if math.isinf(x) or alpha == 0:
        return 0.0
    return alpha * w.exp(w.pt(x))


def d2_elu(x, w, alpha=1.0):
    """0 for x > 0; ``alpha e^x`` for x <= 0."""
    return d_elu(x, w, alpha) if math.isnan(x) or x <= 0 else 0.0


def celu(x, w, alpha=1.0):
    """``x`` for x > 0, ``alpha expm1(x / alpha)`` for x <= 0; -inf -> -alpha."""
    if alpha == 0:
        raise ValueError("celu needs alpha != 0")
    if math.isnan(x) or x >= 0:
        return x
    if math.isinf(x):
        return -alpha
    return alpha * w.expm1(w.pt(x) / alpha)


def d_celu(x, w, alpha=1.0):
    """1 for x > 0; ``e^(x / alpha)`` for x <= 0; -inf -> +0."""
    if math.isnan(x):
        return x
    if x > 0:
        return 1.0
    if math.isinf(x):
        return 0.0
    return w.exp(w.pt(x) / alpha)


def d2_celu(x, w, alpha=1.0):
    """0 for x > 0; ``e^(x / alpha) / alpha`` for x <= 0."""
    if math.isnan(x):
        return x
    if x > 0 or math.isinf(x):
        return 0.0
    return w.exp(w.pt(x) / alpha) / alpha


def selu(x, w):
    """``scale x`` (exact rational) for x > 0, ``scale alpha expm1(x)`` for x <= 0."""
    if math.isnan(x) or x == 0 or x == math.inf:
        return x
    if x > 0:
        return _q(SELU_SCALE) * _q(x)
    if math.isinf(x):
        return -_q(SELU_SCALE) * _q(SELU_ALPHA)
    return w.pt(SELU_SCALE) * SELU_ALPHA * w.expm1(w.pt(x))


def d_selu(x, w):
    """``scale`` for x > 0, ``scale alpha e^x`` for x <= 0; -inf -> +0."""
    if math.isnan(x):
        return x
    if x > 0:
        return SELU_SCALE
    if math.isinf(x):
        return 0.0
    return w.pt(SELU_SCALE) * SELU_ALPHA * w.exp(w.pt(x))


def d2_selu(x, w):
    return d_selu(x, w) if math.isnan(x) or x <= 0 else 0.0


def _phi(w, X):
    """The standard normal density ``e^(-x^2/2) / sqrt(2 pi)``."""
    return w.exp(-(X * X * 0.5)) * w.inv_sqrt_2pi


def _gelu_tanh_parts(w, X):
    """``u = sqrt(2/pi) (x + c x^3)`` and ``u' = sqrt(2/pi) (1 + 3 c x^2)``."""
    k = w.sqrt_2_over_pi
    x2 = X * X
    c = w.pt(GELU_TANH_COEFF)
    return k * (X + c * x2 * X), k * (1 + 3 * c * x2)


def gelu(x, w, approximate=False):
    """``x/2 erfc(-x/sqrt 2)``; tanh form ``x sigmoid(2u)`` = ``x/2 (1 + tanh u)``."""
    if math.isnan(x) or x == 0 or x == math.inf:
        return x
    if x == -math.inf:
        return -0.0
    X = w.pt(x)
    if approximate:
        u, _ = _gelu_tanh_parts(w, X)
        return X * w.sigmoid(2 * u)
    return X * 0.5 * w.erfc(-(X * w.sqrt_half))


def d_gelu(x, w, approximate=False):
    """``Phi(x) + x phi(x)``, intersected for x < -1 with ``phi(x) [x, x + 1/|x|]`` (fact (2)).
    Tanh form: ``s (1 + 2 x u' sigmoid(-2u))`` with ``s = sigmoid(2u)``.  +inf -> 1, -inf -> -0."""
    if math.isnan(x):
        return x
    if math.isinf(x):
        return 1.0 if x > 0 else -0.0
    X = w.pt(x)
    if approximate:
        u, u1 = _gelu_tanh_parts(w, X)
        return w.sigmoid(2 * u) * (1 + 2 * X * u1 * w.sigmoid(-2 * u))
    phi = _phi(w, X)
    v = w.erfc(-(X * w.sqrt_half)) * 0.5 + X * phi
    if x < -1:
        v = v.intersect(phi * _Iv(X.lo, w.up.add(X.hi, w.up.div(1, -x)), w))
    return v


def d2_gelu(x, w, approximate=False):
    """``phi(x) (2 - x^2)``.  Tanh form: ``sigmoid(2u) sigmoid(-2u) (4u' + 2x u'' - 4x u'^2
    tanh u)`` with ``u'' = 6 sqrt(2/pi) c x``.  ±inf -> -0."""
    if math.isnan(x):
        return x
    if math.isinf(x):
        return -0.0
    X = w.pt(x)
    if approximate:
        u, u1 = _gelu_tanh_parts(w, X)
        u2 = 6 * w.sqrt_2_over_pi * w.pt(GELU_TANH_COEFF) * X
        bracket = 4 * u1 + 2 * X * u2 - 4 * X * u1 * u1 * w.tanh(u)
        return w.sigmoid(2 * u) * w.sigmoid(-2 * u) * bracket
    return _phi(w, X) * (2 - X * X)


def silu(x, w):
    """``x / (1 + e^-x)``; -inf -> -0."""
    if math.isnan(x) or x == 0 or x == math.inf:
        return x
    if x == -math.inf:
        return -0.0
    X = w.pt(x)
    return X / (1 + w.exp(-X))


def d_silu(x, w):
    """``s(x) (1 + x s(-x))``, s the sigmoid; +inf -> 1, -inf -> -0."""
    if math.isnan(x):
        return x
    if math.isinf(x):
        return 1.0 if x > 0 else -0.0
    X = w.pt(x)
    return w.sigmoid(X) * (1 + X * w.sigmoid(-X))


def d2_silu(x, w):
    """``s(x) s(-x) (2 - x tanh(x/2))`` (``s(-x) - s(x) = -tanh(x/2)``); ±inf -> -0."""
    if math.isnan(x):
        return x
    if math.isinf(x):
        return -0.0
    X = w.pt(x)
    return w.sigmoid(X) * w.sigmoid(-X) * (2 - X * w.tanh(X * 0.5))


# mish = x g, g = tanh(softplus x).  With t = e^x (used for x <= 0) and D = t^2 + 2t + 2:
#   g = t (t + 2) / D,  g' = 4 t (t + 1) / D^2,  g'' = 4 t (2 + 2t - 3t^2 - 2t^3) / D^3;
# with u = e^-x (used for x > 0, t = 1/u) and E = 1 + 2u + 2u^2 (D = E / u^2):
#   g = 1 - 2u^2 / E,  g' = 4 u^2 (1 + u) / E^2,  g'' = 4 u^2 (2u^3 + 2u^2 - 3u - 2) / E^3.
# mish' = g + x g', mish'' = 2 g' + x g''.  Neither t nor u overflows where it is used.

def mish(x, w):
    """``x tanh(softplus x)``; -inf -> -0."""
    if math.isnan(x) or x == 0 or x == math.inf:
        return x
    if x == -math.inf:
        return -0.0
    X = w.pt(x)
    if x < 0:
        t = w.exp(X)
        return X * t * (t + 2) / (t * (t + 2) + 2)
    u = w.exp(-X)
    return X * (1 - 2 * u * u / (1 + 2 * u * (1 + u)))


def d_mish(x, w):
    """``t [(t + 2) D + 4x (t + 1)] / D^2`` for x <= 0; ``1 - 2u^2/E + 4x u^2 (1 + u) / E^2``
    for x > 0; +inf -> 1, -inf -> -0."""
    if math.isnan(x):
        return x
    if math.isinf(x):
        return 1.0 if x > 0 else -0.0
    X = w.pt(x)
    if x <= 0:
        t = w.exp(X)
        D = t * (t + 2) + 2
        return t * ((t + 2) * D + 4 * X * (t + 1)) / (D * D)
    u = w.exp(-X)
    E = 1 + 2 * u * (1 + u)
    return 1 - 2 * u * u / E + 4 * X * u * u * (1 + u) / (E * E)


def d2_mish(x, w):
    """``4t [2 (t + 1) D + x (2 + 2t - 3t^2 - 2t^3)] / D^3`` for x <= 0;
    ``4u^2 [2 (1 + u) E + x (2u^3 + 2u^2 - 3u - 2)] / E^3`` for x > 0; ±inf -> -0."""
    if math.isnan(x):
        return x
    if math.isinf(x):
        return -0.0
    X = w.pt(x)
    if x <= 0:
        t = w.exp(X)
        D = t * (t + 2) + 2
        return 4 * t * (2 * (t + 1) * D + X * (2 + t * (2 - t * (3 + 2 * t)))) / (D * D * D)
    u = w.exp(-X)
    E = 1 + 2 * u * (1 + u)
    return 4 * u * u * (2 * (1 + u) * E + X * (u * (u * (2 * u + 2) - 3) - 2)) / (E * E * E)


def sigmoid(x, w):
    """``1 / (1 + e^-x)``; -inf -> +0, +inf -> 1."""
    if math.isnan(x):
        return x
    if math.isinf(x):
        return 1.0 if x > 0 else 0.0
    return w.sigmoid(w.pt(x))


def _bell(w, x):
    """``s(x) s(-x) = v / (1 + v)^2`` with ``v = e^-|x|``."""
    v = w.exp(w.pt(-abs(x)))
    return v / ((1 + v) * (1 + v))


def d_sigmoid(x, w):
    """``s(x) s(-x)``; ±inf -> +0."""
    if math.isnan(x):
        return x
    return 0.0 if math.isinf(x) else _bell(w, x)


def d2_sigmoid(x, w):
    """``-sign(x) v (1 - v) / (1 + v)^3``, ``v = e^-|x|``, ``1 - v = -expm1(-|x|)``; ±0 -> ∓0,
    +inf -> -0, -inf -> +0."""
    if math.isnan(x):
        return x
    if x == 0 or math.isinf(x):
        return math.copysign(0.0, -x)
    A = w.pt(-abs(x))
    v = w.exp(A)
    val = v * -w.expm1(A) / ((1 + v) * (1 + v) * (1 + v))
    return -val if x > 0 else val


def log_sigmoid(x, w):
    """``-log1p(e^-x)`` for x >= 0, ``x - log1p(e^x)`` for x < 0; -inf -> -inf, +inf -> -0."""
    if math.isnan(x):
        return x
    if math.isinf(x):
        return -math.inf if x < 0 else -0.0
    X = w.pt(x)
    return -w.log1p(w.exp(-X)) if x >= 0 else X - w.log1p(w.exp(X))


def d_log_sigmoid(x, w):
    """``s(-x)``; -inf -> 1, +inf -> +0."""
    if math.isnan(x):
        return x
    if math.isinf(x):
        return 1.0 if x < 0 else 0.0
    return w.sigmoid(-w.pt(x))


def d2_log_sigmoid(x, w):
    """``-s(x) s(-x)``; ±inf -> -0."""
    if math.isnan(x):
        return x
    return -0.0 if math.isinf(x) else -_bell(w, x)


def tanh(x, w):
    """MPFR's tanh; ±inf -> ±1."""
    if math.isnan(x) or x == 0:
        return x
    if math.isinf(x):
        return math.copysign(1.0, x)
    return w.tanh(w.pt(x))


def _sech2(w, x):
    """``sech^2 x = 4v / (1 + v)^2`` with ``v = e^(-2|x|)``."""
    v = w.exp(2 * w.pt(-abs(x)))
    return 4 * v / ((1 + v) * (1 + v))


def d_tanh(x, w):
    """``sech^2 x``; ±inf -> +0."""
    if math.isnan(x):
        return x
    return 0.0 if math.isinf(x) else _sech2(w, x)


def d2_tanh(x, w):
    """``-2 tanh(x) sech^2(x)``; ±0 -> ∓0, +inf -> -0, -inf -> +0."""
    if math.isnan(x):
        return x
    if x == 0 or math.isinf(x):
        return math.copysign(0.0, -x)
    return -2 * w.tanh(w.pt(x)) * _sech2(w, x)


def softplus(x, w):
    """``x + log1p(e^-x)`` for x > 0, ``log1p(e^x)`` for x <= 0; -inf -> +0, +inf -> +inf."""
    if math.isnan(x):
        return x
    if math.isinf(x):
        return x if x > 0 else 0.0
    X = w.pt(x)
    return X + w.log1p(w.exp(-X)) if x > 0 else w.log1p(w.exp(X))


def d_softplus(x, w):
    """``s(x)``; -inf -> +0, +inf -> 1."""
    return sigmoid(x, w)


def d2_softplus(x, w):
    """``s(x) s(-x)``; ±inf -> +0."""
    return d_sigmoid(x, w)


def hard_sigmoid(x, w):
    """``(x + 3) / 6`` on (-3, 3), +0 below, 1 above (exact rational)."""
    if math.isnan(x):
        return x
    if x <= -3:
        return 0.0
    return 1.0 if x >= 3 else (_q(x) + 3) / 6


def d_hard_sigmoid(x, w):
    if math.isnan(x):
        return x
    return gmpy2.mpq(1, 6) if -3 < x < 3 else 0.0


def hard_tanh(x, w, min_val=-1.0, max_val=1.0):
    """``min(max(x, min_val), max_val)``: x itself or a bound (binary64 numbers, exact)."""
    if math.isnan(x):
        return x
    return min_val if x <= min_val else (max_val if x >= max_val else x)


def d_hard_tanh(x, w, min_val=-1.0, max_val=1.0):
    return x if math.isnan(x) else (1.0 if min_val < x < max_val else 0.0)


def hard_swish(x, w):
    """``x (x + 3) / 6`` on (-3, 3); -0 for x <= -3; x for x >= 3 and at ±0."""
    if math.isnan(x) or x >= 3 or x == 0:
        return x
    if x <= -3:
        return -0.0
    return _q(x) * (_q(x) + 3) / 6


def d_hard_swish(x, w):
    """``(2x + 3) / 6`` on (-3, 3); 0 for x <= -3, 1 for x >= 3."""
    if math.isnan(x):
        return x
    if x <= -3:
        return 0.0
    return 1.0 if x >= 3 else (2 * _q(x) + 3) / 6


def softsign(x, w):
    """``x / (1 + |x|)``; ±inf -> ±1."""
    if math.isnan(x) or x == 0:
        return x
    if math.isinf(x):
        return math.copysign(1.0, x)
    return _q(x) / (1 + abs(_q(x)))


def d_softsign(x, w):
    """``1 / (1 + |x|)^2``; ±inf -> +0."""
    if math.isnan(x):
        return x
    return 0.0 if math.isinf(x) else 1 / (1 + abs(_q(x))) ** 2


def d2_softsign(x, w):
    """``-2 sign(x) / (1 + |x|)^3``; ±0 -> ∓0, +inf -> -0, -inf -> +0."""
    if math.isnan(x):
        return x
    if x == 0 or math.isinf(x):
        return math.copysign(0.0, -x)
    return (-2 if x > 0 else 2) / (1 + abs(_q(x))) ** 3


FORMULAS = {
    "relu": (relu, d_relu),
    "relu6": (relu6, d_relu6),
    "leaky_relu": (leaky_relu, d_leaky_relu),
    "elu": (elu, d_elu, d2_elu),
    "celu": (celu, d_celu, d2_celu),
    "selu": (selu, d_selu, d2_selu),
    "gelu": (gelu, d_gelu, d2_gelu),
    "silu": (silu, d_silu, d2_silu),
    "mish": (mish, d_mish, d2_mish),
    "sigmoid": (sigmoid, d_sigmoid, d2_sigmoid),
    "log_sigmoid": (log_sigmoid, d_log_sigmoid, d2_log_sigmoid),
    "tanh": (tanh, d_tanh, d2_tanh),
    "softplus": (softplus, d_softplus, d2_softplus),
    "hard_sigmoid": (hard_sigmoid, d_hard_sigmoid),
    "hard_tanh": (hard_tanh, d_hard_tanh),
    "hard_swish": (hard_swish, d_hard_swish),
    "softsign": (softsign, d_softsign, d2_softsign),
}


def correctly_rounded(op: str, x: float, dtype: str, order: int = 0, params=None,
                      max_precision: int = MAX_PRECISION) -> tuple[float, int]:
    """``(value, residual)``: the ``order``-th derivative of ``op`` at the exact input ``x``,
    rounded to nearest-even in ``dtype`` (a Python float holding the format's value), and the
    int16 residual ``round_half_even((exact - value) / ulp(exact) * 2**14)`` (0 for non-finite
    values).  Raises ``Undecided`` rather than guess.

    >>> correctly_rounded("gelu", 2.0**-1074, "float64")  # just above the midpoint 2**-1075
    (5e-324, -8192)
    """
    if gmpy2 is None:
        raise ImportError(f"the MPFR oracle needs gmpy2: {INSTALL_HINT}")
    fn = FORMULAS[op][order]
    t = TARGETS[dtype]
    params = dict(params or {})
    x = float(x)
    p = t.start_precision
    while True:
        v = fn(x, _work(p), **params)
        if isinstance(v, (float, _MPQ)):
            return _exact(v, t)
        decided = _decide(v, t)
        if decided is not None:
            return decided
        if p >= max_precision:
            primes = "'" * order
            raise Undecided(f"{op}{primes}({x!r}, {params}) in {dtype}: the enclosure "
                            f"[{v.lo}, {v.hi}] still straddles a rounding boundary at {p} bits")
        p = min(2 * p, max_precision)


# ---- the cross-check -------------------------------------------------------------

def _bits(values: np.ndarray) -> np.ndarray:
    return values.view(_UINT[values.dtype.itemsize])


def _check_chunk(task):
    """Worker: ``(key, n, disagreements, undecided, seconds)`` for one slice of a case."""
    key, op, order, params, dtype, idx, xs, stored, residual = task
    t0 = time.perf_counter()
    mine = np.empty(xs.shape[0], dtype=np.float64)
    mine_q = np.zeros(xs.shape[0], dtype=np.int64)
    undecided = set()
    messages = []
    for i, x in enumerate(xs.tolist()):
        try:
            mine[i], mine_q[i] = correctly_rounded(op, x, dtype, order, params)
        except ArithmeticError as e:
            undecided.add(i)
            messages.append((int(idx[i]), x, str(e)))
    ours = mine.astype(TARGETS[dtype].dtype)
    nan_both = np.isnan(mine) & np.isnan(stored.astype(np.float64))
    bad_value = ~nan_both & (_bits(ours) != _bits(stored))
    bad_res = ~bad_value & (mine_q != residual.astype(np.int64))
    x_bits = _bits(xs.astype(TARGETS[dtype].dtype))
    out = [{"index": int(idx[i]), "x": float(xs[i]), "x_bits": int(x_bits[i]),
            "kind": "value" if bad_value[i] else "residual",
            "stored": float(stored[i]), "stored_bits": int(_bits(stored)[i]), "stored_residual": int(residual[i]),
            "mpfr": float(ours[i]), "mpfr_bits": int(_bits(ours)[i]), "mpfr_residual": int(mine_q[i])}
           for i in np.flatnonzero(bad_value | bad_res) if int(i) not in undecided]
    return key, xs.shape[0], out, messages, time.perf_counter() - t0


def sample_indices(stored: np.ndarray, residual: np.ndarray, dtype: str, n: int) -> np.ndarray:
    """``n`` evenly spaced indices plus every index whose stored result is a subnormal, the
    smallest normal number (an exact value just below it may round up to it), or a zero with
    a nonzero residual (an exact value that underflowed)."""
    r = stored.astype(np.float64)
    tiny = (np.abs(r) <= math.ldexp(1.0, TARGETS[dtype].emin)) & ((r != 0) | (residual != 0))
    even = np.unique(np.linspace(0, r.shape[0] - 1, num=min(n, r.shape[0])).astype(np.int64))
    return np.union1d(even, np.flatnonzero(tiny))


def _case_order(case) -> int:
    return int(dict(case.extra).get("order", 0))


def load_case(store, case, dtype):
    """``(xs, rounded, residual, problems)`` of one stored elementwise case: the inputs its
    values belong to (all shared inputs, or the derivative subset of ``tools.registry``)."""
    from tools.registry import gradients as G  # only the input subset rule, no reference

    xs = store.load_inputs(dtype)
    z = store.load_case(case.family, dtype, case.id)
    problems = []
    if case.family == "gradients":
        xs = xs[G.grad_inputs(dtype, xs)]
        if not np.array_equal(G.inputs_digest(xs), z["inputs_sha256"]):
            problems.append(f"{case.family}/{dtype}/{case.id}: stored inputs_sha256 does not match the "
                            "registry's input subset")
    if xs.shape[0] != z["rounded"].shape[0]:
        problems.append(f"{case.family}/{dtype}/{case.id}: {z['rounded'].shape[0]} stored values for "
                        f"{xs.shape[0]} inputs")
    return xs, z["rounded"], z["residual"], problems


def check_case(store, case, dtype, sample=None, chunk=2048):
    """Tasks (for ``_check_chunk``) covering one case and dtype (every stored value, or
    ``sample_indices(..., sample)``), and any problems with the stored file."""
    xs, rounded, residual, problems = load_case(store, case, dtype)
    if problems:
        return [], problems
    idx = np.arange(xs.shape[0]) if sample is None else sample_indices(rounded, residual, dtype, sample)
    key, order = (case.family, dtype, case.id), _case_order(case)
    tasks = [(key, case.op, order, case.params, dtype, sel, xs[sel].astype(np.float64), rounded[sel], residual[sel])
             for sel in (idx[s:s + chunk] for s in range(0, idx.shape[0], chunk))]
    return tasks, problems


def _describe(family, dtype, cid, d) -> str:
    return (f"  DISAGREE {family}/{dtype}/{cid} [{d['index']}] ({d['kind']}): x = {d['x']!r} "
            f"(bits 0x{d['x_bits']:x}); stored {d['stored']!r} (bits 0x{d['stored_bits']:x}, residual "
            f"{d['stored_residual']}); MPFR {d['mpfr']!r} (bits 0x{d['mpfr_bits']:x}, residual "
            f"{d['mpfr_residual']})")


def _log(msg):
    print(msg, flush=True)


def _selected(only):
    """The elementwise cases whose id is ``only`` or matches it as a glob (every one if None)."""
    from tools.registry import CASES

    return [c for c in CASES if c.family in ELEMENTWISE_FAMILIES
            and (not only or c.id == only or fnmatch.fnmatchcase(c.id, only))]


def _cell_report(cell, tl, log):
    fam, d, cid = cell
    log(f"{fam}/{d}/{cid}: {tl['n']} values checked, {len(tl['bad'])} disagreements, "
        f"{len(tl['undecided'])} undecided, {tl['seconds']:.1f} s")
    for b in sorted(tl["bad"], key=lambda b: b["index"]):
        log(_describe(fam, d, cid, b))
    for i, x, msg in sorted(tl["undecided"]):
        log(f"  UNDECIDED {fam}/{d}/{cid} [{i}]: x = {x!r}: {msg}")


def run(store=None, only=None, dtypes=None, sample=None, jobs=None, log=_log) -> dict:
    """Cross-check the stored elementwise golden values (``only``: a glob on case ids;
    ``sample``: see ``sample_indices``).  Logs one line per case and dtype as it completes,
    each disagreement, and the totals; returns the tallies."""
    from tools import golden
    from tools.registry import DTYPES

    store = store or golden.Store()
    cases = _selected(only)
    t0 = time.perf_counter()
    tasks, problems, tally = [], [], {}
    for c in cases:
        for d in DTYPES:
            if d in c.budgets and (not dtypes or d in dtypes):
                tk, pr = check_case(store, c, d, sample)
                tasks += tk
                problems += pr
                tally[(c.family, d, c.id)] = {"n": 0, "bad": [], "undecided": [], "seconds": 0.0,
                                              "tasks": len(tk)}
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(tasks)))
    with contextlib.ExitStack() as stack:
        if jobs > 1:
            pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(jobs))
            results = pool.imap_unordered(_check_chunk, tasks)
        else:
            results = map(_check_chunk, tasks)
        for key, n, bad, und, secs in results:
            tl = tally[key]
            tl["n"] += n
            tl["bad"] += bad
            tl["undecided"] += und
            tl["seconds"] += secs
            tl["tasks"] -= 1
            if tl["tasks"] == 0:
                _cell_report(key, tl, log)
    for p in problems:
        log(f"  PROBLEM {p}")
    families = {}
    for (fam, _, _), tl in tally.items():
        f = families.setdefault(fam, {"n": 0, "bad": 0, "undecided": 0})
        f["n"] += tl["n"]
        f["bad"] += len(tl["bad"])
        f["undecided"] += len(tl["undecided"])
    wall = time.perf_counter() - t0
    worker = sum(tl["seconds"] for tl in tally.values())
    for fam, f in families.items():
        log(f"{fam}: {f['n']} values checked, {f['bad']} disagreements, {f['undecided']} undecided")
    log(f"MPFR cross-check: {len(tally)} case x dtype cells, {sum(f['n'] for f in families.values())} values, "
        f"{sum(f['bad'] for f in families.values())} disagreements, "
        f"{sum(f['undecided'] for f in families.values())} undecided, {len(problems)} problems; "
        f"{wall:.1f} s wall, {worker:.1f} s worker time, {jobs} processes")
    return {"cells": tally, "families": families, "problems": problems, "wall_s": wall, "worker_s": worker}


def cross_check(store=None, only=None, dtypes=None, sample=None, jobs=None, log=_log) -> int:
    """``run``, as an exit status: 1 on any disagreement, undecided value or damaged file."""
    from tools import golden

    try:
        res = run(store, only, dtypes, sample, jobs, log)
    except golden.GoldenError as e:
        log(f"error: {e}")
        return 1
    if not res["cells"]:
        log(f"MPFR cross-check: no elementwise case matches {only!r}; nothing to check")
    bad = res["problems"] or any(f["bad"] or f["undecided"] for f in res["families"].values())
    return 1 if bad else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.mpfr_oracle", description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", metavar="PATTERN", help="check only the case with this id, or those whose id "
                                                      "matches this glob (derivatives: 'grad:gelu', 'grad2:*')")
    ap.add_argument("--dtype", action="append", choices=sorted(TARGETS), help="only this dtype (repeatable)")
    ap.add_argument("--sample", type=int, metavar="N",
                    help="N evenly spaced inputs per case and dtype plus every subnormal, smallest-normal "
                         "or underflowed result, instead of every stored value")
    ap.add_argument("--root", default=None, help="golden folder (default: the project's golden/)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    args = ap.parse_args(argv)
    if gmpy2 is None:
        print(f"the MPFR oracle needs gmpy2: {INSTALL_HINT}", file=sys.stderr)
        return 2
    if args.jobs < 1:
        ap.error(f"--jobs must be >= 1, got {args.jobs}")
    if args.sample is not None and args.sample < 1:
        ap.error(f"--sample must be >= 1, got {args.sample}")
    from tools import golden

    if not _selected(args.only):
        ap.error(f"--only {args.only!r} matches no elementwise case")
    store = golden.Store(args.root) if args.root else golden.Store()
    return cross_check(store, args.only, args.dtype, args.sample, args.jobs)


if __name__ == "__main__":
    sys.exit(main())
