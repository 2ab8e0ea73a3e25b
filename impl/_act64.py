"""Float64 activations and derivatives in double-double (``_dd``), rounded once.

Each formula is the closed form of ``_activations`` rewritten over one common
denominator and evaluated in double-double arithmetic, with ``e = exp(-|t|)``
(or ``exp(-|2u|)``) as ``v * 2**m`` (``_dd.exp_expm1``): where the result is a
normal float64 but ``e`` is not (silu and mish next to x = -711, the tails of
gelu and its derivatives), the factor ``e`` enters as ``v`` and ``2**m`` is
applied to the rounded quotient last, so nothing is flushed on the way.  The
error before the final rounding is a few times 2**-64 relative (the kernels'
bounds, amplified near a zero of the result by ``|T| / |f|`` where ``T`` are
the cancelling terms: double-double leaves 2**-100 of those), so the float64
result is within 0.5 ulp + 2**-10 and almost always correctly rounded.

``guarded(formula, fallback, hi)`` uses a formula for ``2**-960 <= |t| <= hi``
and ``fallback`` (the plain float64 formula of ``_activations``, whose values
there are exact limits, signed zeros, infinities or results below 2**-1074)
elsewhere.  Each ``hi`` is stated beside its op.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from ._dd import DD, erfcx, exp_expm1, exp_parts, ldexp, ldexp_dd, log1p, two_prod, two_sum

SQRT_2_OVER_PI = DD(0.7978845608028654, -4.98465440455546e-17)
SELU_SCALE_ALPHA = DD(1.7580993408473766, 5.75014648756476e-17)  # the exact product of the two binary64 values
MISH_SLOPE = DD(0.6, 2.2204460492503132e-17)  # mish'(0) = tanh(log 2) = 3/5


_TINY = 2.0 ** -960  # below, Dekker's split of t would leave a subnormal low half


def guarded(formula, fallback, hi, slope=None):
    """``formula(t)`` for ``2**-960 <= |t| <= hi``, ``fallback(t)`` elsewhere (see module).  With
    ``slope = f'(0)`` (a double-double, for an ``f`` with ``f(0) = 0``; a pair ``(left, right)`` at a
    kink), ``|t| < 2**-960`` gives ``t * slope`` correctly rounded (``f(t) = t f'(0) (1 + O(t))``),
    computed on ``t * 2**600``."""
    left, right = slope if isinstance(slope, tuple) else (slope, slope)

    def f(t, *params):
        return _blockwise(lambda u: _f(u, *params), t)

    def _f(t, *params):
        a = jnp.abs(t)
        inside = (a >= _TINY) & (a <= hi)
        y = jnp.where(inside, formula(jnp.where(inside, t, hi), *params), fallback(t, *params))
        if slope is None:
            return y
        tiny = (a < _TINY) & (a > 0)
        k = DD.of(left).where(t < 0, right)
        return jnp.where(tiny, ldexp(DD.of(jnp.where(tiny, t, _TINY) * 2.0 ** 600) * k, -600.0), y)
    return f


_BLOCK = 8192


def _blockwise(f, t):
    """``f(t)`` for an elementwise ``f``, evaluated over blocks of ``_BLOCK`` elements (``lax.map``).

    XLA's CPU backend splits a double-double formula into several loops (a value with several
    users is computed once and written to memory when it is expensive), and every intermediate
    array of a large input is then a trip through main memory; over blocks of 64 KiB they stay in
    the cache (measured: 3.5x faster at 2**22 elements)."""
    n = t.size
    if n <= _BLOCK:
        return f(t)
    flat = t.reshape(-1)
    pad = (-n) % _BLOCK
    rows = jnp.pad(flat, (0, pad), constant_values=1.0).reshape(-1, _BLOCK)
    return lax.map(f, rows).reshape(-1)[:n].reshape(t.shape)


def _e_neg_abs(t):
    """``(v, m, E, q)`` for ``e = exp(-|t|) = v 2**m``: ``E = e`` and ``q = expm1(-|t|)`` as
    double-doubles (``t`` a float64 or a double-double)."""
    a = DD.of(t)
    a = a.where(a.hi >= 0, -a)
    v, m, q = exp_expm1(-a)
    return v, m, ldexp_dd(v, m), q


def _scale_left(t, r: DD, m):
    """``r`` rounded, times ``2**m`` where ``t < 0``."""
    return ldexp(r, jnp.where(t < 0, m, 0.0))


# ---- the sigmoid family: e = exp(-|t|), d = 1 + e ---------------------------------------------

def sigmoid(t):
    """``1 / d`` for t >= 0, ``e / d`` below."""
    v, m, e, _ = _e_neg_abs(t)
    return _scale_left(t, DD.of(1.0).where(t >= 0, v) / (1.0 + e), m)


def sigmoid_d1(t):
    """``e / d**2``."""
    v, m, e, _ = _e_neg_abs(t)
    d = 1.0 + e
    return ldexp(v / (d * d), m)


def sigmoid_d2(t):
    """``sign(t) e expm1(-|t|) / d**3`` (odd)."""
    v, m, e, q = _e_neg_abs(t)
    d = 1.0 + e
    y = ldexp(v * q / (d * d * d), m)
    return jnp.where(t < 0, -y, y)


def softplus(t):
    """``max(t, 0) + log1p(e)`` (both terms non-negative)."""
    _, _, e, _ = _e_neg_abs(t)
    return (log1p(e) + jnp.maximum(t, 0.0)).round()


def log_sigmoid(t):
    return -softplus(-t)


def tanh(t):
    """``sign(t) (-q) / (2 + q)``, ``q = expm1(-2|t|)``."""
    _, _, _, q = _e_neg_abs(2.0 * t)
    y = (-q / (2.0 + q)).round()
    return jnp.where(t < 0, -y, y)


def tanh_d1(t):
    """``4e / d**2`` with ``e = exp(-2|t|)``."""
    v, m, e, _ = _e_neg_abs(2.0 * t)
    d = 1.0 + e
    return ldexp(4.0 * v / (d * d), m)


def tanh_d2(t):
    """``-2 tanh(t) sech(t)**2 = sign(t) 8 e q / d**3`` (``tanh|t| = -q/d``, ``e = exp(-2|t|)``)."""
    v, m, e, q = _e_neg_abs(2.0 * t)
    d = 1.0 + e
    y = ldexp(8.0 * v * q / (d * d * d), m)
    return jnp.where(t < 0, -y, y)


def silu(t):
    """``t / d`` for t >= 0, ``t e / d`` below."""
    v, m, e, _ = _e_neg_abs(t)
    return _scale_left(t, DD.of(t).where(t >= 0, v * t) / (1.0 + e), m)


def silu_d1(t):
    """``(d + t e) / d**2`` for t >= 0, ``e (1 + t + e) / d**2`` below (``1 + t`` exact: it cancels
    next to the zero t = -1.278)."""
    v, m, e, _ = _e_neg_abs(t)
    d = 1.0 + e
    num = (d + e * t).where(t >= 0, v * (DD(*two_sum(t, 1.0)) + e))
    return _scale_left(t, num / (d * d), m)


def silu_d2(t):
    """``s s_ (2 - t tanh(t/2)) = e (2d + |t| q) / d**3``."""
    v, m, e, q = _e_neg_abs(t)
    d = 1.0 + e
    return ldexp(v * (2.0 * d + q * jnp.abs(t)) / (d * d * d), m)


# ---- mish: for t <= 0, e = exp(t) and n = e (e + 2); for t > 0, w = exp(-t), D = 1 + 2w + 2w**2 ----

def mish(t):
    """``t n / (n + 2)`` for t <= 0; ``t (1 + 2w) / D`` above."""
    v, m, e, _ = _e_neg_abs(t)
    pos = t > 0
    num = ((1.0 + 2.0 * e) * t).where(pos, v * (e + 2.0) * t)
    den = (1.0 + 2.0 * e * (1.0 + e)).where(pos, e * (e + 2.0) + 2.0)
    return ldexp(num / den, jnp.where(pos, 0.0, m))


def mish_d1(t):
    """``e ((e + 2)(n + 2)(1 + e) + 4t (n + 1)) / ((n + 2)**2 (1 + e))`` for t <= 0 (cancels next to
    the zero t = -1.19); ``((1 + 2w) D + 4t (1 + w) w**2) / D**2`` above."""
    v, m, e, _ = _e_neg_abs(t)
    pos = t > 0
    n2 = e * (e + 2.0) + 2.0
    big_d = 1.0 + 2.0 * e * (1.0 + e)
    num_neg = v * ((e + 2.0) * n2 * (1.0 + e) + 4.0 * (n2 - 1.0) * t)
    num_pos = (1.0 + 2.0 * e) * big_d + 4.0 * (1.0 + e) * e * e * t
    den = (big_d * big_d).where(pos, n2 * n2 * (1.0 + e))
    return ldexp(num_pos.where(pos, num_neg) / den, jnp.where(pos, 0.0, m))


def mish_d2(t):
    """``S s (2 + t s_ - 2 t g s)`` over one denominator: for t <= 0
    ``4 e (n + 1)(2 (n + 2)(1 + e) + t (n + 2) - 2 t n e) / ((n + 2)**3 (1 + e)**2)``, above
    ``4 w**2 (2 D (1 + w) + t w D - 2t (1 + 2w)) / D**3`` (``w**2`` as ``v**2 2**(2m)``)."""
    tc = jnp.minimum(t, 450.0)  # beyond, |mish''| < 2**-1200 on both paths: -0
    v, m, e, _ = _e_neg_abs(tc)
    pos = tc > 0
    n = e * (e + 2.0)
    n2 = n + 2.0
    big_d = 1.0 + 2.0 * e * (1.0 + e)
    num_neg = 4.0 * v * (n + 1.0) * (2.0 * n2 * (1.0 + e) + n2 * tc - 2.0 * n * e * tc)
    den_neg = n2 * n2 * n2 * (1.0 + e) * (1.0 + e)
    num_pos = 4.0 * v * v * (2.0 * big_d * (1.0 + e) + e * big_d * tc - (1.0 + 2.0 * e) * (2.0 * tc))
    den_pos = big_d * big_d * big_d
    return ldexp(num_pos.where(pos, num_neg) / den_pos.where(pos, den_neg), jnp.where(pos, 2.0 * m, m))


# ---- the elu family: expm1 and exp of t <= 0 (t/alpha for celu) ----------------------------------

def elu(t, a):
    _, _, q = exp_expm1(jnp.minimum(t, 0.0))
    return jnp.where(t > 0, t, (q * a).round())


def elu_d1(t, a):
    v, m, _ = exp_expm1(jnp.minimum(t, 0.0))
    return jnp.where(t > 0, 1.0, ldexp(v * a, m))


def elu_d2(t, a):
    return jnp.where(t > 0, 0.0, elu_d1(t, a))


def celu(t, a):
    _, _, q = exp_expm1(DD.of(jnp.minimum(t, 0.0)) / a)
    return jnp.where(t > 0, t, (q * a).round())


def celu_d1(t, a):
    v, m, _ = exp_expm1(DD.of(jnp.minimum(t, 0.0)) / a)
    return jnp.where(t > 0, 1.0, ldexp(v, m))


def celu_d2(t, a):
    v, m, _ = exp_expm1(DD.of(jnp.minimum(t, 0.0)) / a)
    return jnp.where(t > 0, 0.0, ldexp(v / a, m))


def selu_left(t):
    """selu on t <= 0: ``scale alpha expm1(t)``, the product of the binary64 constants exact."""
    _, _, q = exp_expm1(jnp.minimum(t, 0.0))
    return (q * SELU_SCALE_ALPHA).round()


def selu_d_left(t):
    """selu' and selu'' on t <= 0: ``scale alpha exp(t)``."""
    v, m, _ = exp_expm1(jnp.minimum(t, 0.0))
    return ldexp(v * SELU_SCALE_ALPHA, m)


# ---- gelu: E = exp(-t**2/2) = v 2**m (t**2 exact), R = erfcx(|t|/sqrt 2), erfc(|t|/sqrt 2) = E R ----

SQRT_HALF = DD(0.7071067811865476, -4.833646656726457e-17)
INV_SQRT_2PI = DD(0.3989422804014327, -2.49232720227773e-17)


def _gelu_parts(t):
    """``(v, m, R, t2)``: ``exp(-t**2/2) = v 2**m``, ``R = erfcx(|t| / sqrt 2)``, ``t2 = t**2``, for
    ``|t| <= 39.5`` (``|t| / sqrt 2 <= 28``, erfcx's domain)."""
    t2 = DD(*two_prod(t, t))
    v, m = exp_parts(-0.5 * t2)
    return v, m, erfcx(SQRT_HALF * jnp.abs(t)), t2


def gelu(t):
    """``(t/2) E R`` for t < 0; ``t (1 - E R / 2)`` above (``E R / 2 <= 1/2``: no cancellation)."""
    v, m, r, _ = _gelu_parts(t)
    neg = v * r * (0.5 * t)
    pos = (1.0 - ldexp_dd(v * r, m - 1.0)) * t
    return ldexp(neg.where(t < 0, pos), jnp.where(t < 0, m, 0.0))


def gelu_d1(t):
    """``Phi(t) + t phi(t)``: ``E (R/2 + t/sqrt(2 pi))`` for t < 0 (cancels next to the zero
    t = -0.7518); ``1 + E (t/sqrt(2 pi) - R/2)`` above."""
    v, m, r, _ = _gelu_parts(t)
    neg = v * (r * 0.5 + INV_SQRT_2PI * t)
    pos = 1.0 + ldexp_dd(v * (INV_SQRT_2PI * t - r * 0.5), m)
    return ldexp(neg.where(t < 0, pos), jnp.where(t < 0, m, 0.0))


def gelu_d2(t):
    """``phi(t) (2 - t**2) = E (2 - t**2) / sqrt(2 pi)``."""
    t2 = DD(*two_prod(t, t))
    v, m = exp_parts(-0.5 * t2)
    return ldexp(v * INV_SQRT_2PI * (2.0 - t2), m)


# ---- gelu, tanh form: 2u = k0 t (1 + c t**2), k0 = 2 sqrt(2/pi), s = sigmoid(2u) ----------------

_GELU_C = 0.044715
_K0 = DD(2.0 * SQRT_2_OVER_PI.hi, 2.0 * SQRT_2_OVER_PI.lo)  # Python floats: no array at import


def _gelu_tanh_parts(t):
    """``(2u, k, t2)``: ``2u`` and ``k = d(2u)/dt = k0 (1 + 3c t**2)`` as double-doubles, ``t2 = t**2``."""
    t2 = DD(*two_prod(t, t))
    u2 = _K0 * (1.0 + t2 * _GELU_C) * t
    k = _K0 * (1.0 + t2 * _GELU_C * 3.0)  # (3c is not a binary64: multiply by c, then by 3)
    return u2, k, t2


def gelu_tanh(t):
    """``t / d`` for t >= 0, ``t e / d`` below, ``e = exp(-|2u|)``."""
    u2, _, _ = _gelu_tanh_parts(t)
    v, m, e, _ = _e_neg_abs(u2)
    return _scale_left(t, DD.of(t).where(t >= 0, v * t) / (1.0 + e), m)


def gelu_tanh_d1(t):
    """``s + t s s_ k``: ``(d + t k e) / d**2`` for t >= 0, ``e (d + t k) / d**2`` below."""
    u2, k, _ = _gelu_tanh_parts(t)
    v, m, e, _ = _e_neg_abs(u2)
    d = 1.0 + e
    num = (d + e * k * t).where(t >= 0, v * (d + k * t))
    return _scale_left(t, num / (d * d), m)


def gelu_tanh_d2(t):
    """``s s_ (2k + 12 sqrt(2/pi) c t**2 - t k**2 tanh u)``, ``tanh u = sign(t) (-q) / d``:
    ``e ((2k + 12 sqrt(2/pi) c t**2) d + |t| k**2 q) / d**3``."""
    u2, k, t2 = _gelu_tanh_parts(t)
    v, m, e, q = _e_neg_abs(u2)
    d = 1.0 + e
    lin = 2.0 * k + SQRT_2_OVER_PI * t2 * _GELU_C * 12.0
    return ldexp(v * (lin * d + k * k * q * jnp.abs(t)) / (d * d * d), m)


# ---- hard_sigmoid, hard_swish, softsign: one double-double quotient ------------------------------

def hard_sigmoid(t):
    y = (DD(*two_sum(t, 3.0)) / 6.0).round()
    return jnp.where(t <= -3, 0.0, jnp.where(t >= 3, 1.0, y))


def hard_swish(t):
    y = (DD(*two_sum(t, 3.0)) * t / 6.0).round()
    return jnp.where(t <= -3, -0.0, jnp.where(t >= 3, t, y))


def hard_swish_d1(t):
    y = (DD(*two_sum(2.0 * t, 3.0)) / 6.0).round()
    return jnp.where(t <= -3, 0.0, jnp.where(t >= 3, 1.0, y))


def softsign(t):
    return (DD.of(t) / DD(*two_sum(1.0, jnp.abs(t)))).round()


def softsign_d1(t):
    """``r**2``, ``r = 1 / (1 + |t|)``; past ``|t| = 2**480`` on ``2**-600 (1 + |t|)``, so that ``r**2``
    stays normal until the last scaling."""
    big = jnp.abs(t) > 2.0 ** 480
    s = jnp.where(big, 2.0 ** -600, 1.0)
    r = 1.0 / DD(*two_sum(s, jnp.abs(t) * s))
    return ldexp(r * r, jnp.where(big, -1200.0, 0.0))
