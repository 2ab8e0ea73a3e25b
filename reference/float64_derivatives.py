"""Float64 derivative formulas (numpy/scipy) with a per-element error bound: the fast tier
of the gradient references.

``<op>(x, **params)`` (first derivative) and ``<op>2(x, **params)`` (second) take a float64 array
of float32-or-narrower values and return ``(y, amp, exact)``:

* ``y``: the derivative in float64;
* ``amp >= 0``: its error amplification, the claim being
  ``|y - exact value| <= BOUND * (1 + amp) * |exact value|`` with
  ``BOUND = 2**-45``.  ``amp`` is 0 where the formula is at most about eight
  float64 operations of <= 1 ulp each without cancellation (<= 2**-50, 32 times
  below the bound; the bound is this tight so that the fast tier can pin the
  residual quantum, 2**-38 relative in float32, of results next to a constant
  such as ``silu'(1e-12) = 0.5 + 2.5e-13``), and grows where two terms
  cancel next to a zero of the derivative (``amp`` includes the condition
  number ``(|T1| + |T2|) / |T1 + T2|``) or where the rounding of an exponent is
  magnified (``exp(v(1 + e))`` has relative error ``|v| e``; ``amp`` includes
  ``|v|``).  Where ``BOUND * (1 + amp)`` is too wide to decide the
  rounding, the mpmath reference decides, so a generous ``amp`` only costs time.
* ``exact``: where ``y`` is exactly the result, in every format and with a zero
  residual: the constant pieces (``relu' = 1``) and the far tails where the
  exact derivative is below ``2**-1100`` in magnitude, given as the signed zero
  it rounds to (e.g. ``|sigmoid'(x)| <= e^-|x| < 2**-1100`` for ``|x| >= 800``).

The formulas share no code with ``reference.derivatives`` (mpmath) or with the
implementation.  tests/test_reference_derivatives.py checks, on samples of
every region, that the error stays ``2**4`` below the claimed bound and that
the ``exact`` entries round as claimed.
"""

from __future__ import annotations

import numpy as np
from scipy import special

__all__ = ["BOUND"]

BOUND = 2.0**-45

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_K = np.sqrt(2.0 / np.pi)
_C = 0.044715
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)


def _out(x, y, amp=None, exact=None):
    """``(y, amp, exact)`` with NaN for NaN inputs (never ``exact``)."""
    nan = np.isnan(x)
    y = np.where(nan, np.nan, np.asarray(y, dtype=np.float64))
    amp = np.zeros_like(y) if amp is None else np.broadcast_to(np.asarray(amp, dtype=np.float64), y.shape)
    exact = np.zeros(y.shape, dtype=bool) if exact is None else np.broadcast_to(exact, y.shape)
    finite = np.isfinite(y)
    return y, np.where(finite, amp, np.inf), exact & finite


def _cond(*terms):
    """Condition number of ``sum(terms)``: ``sum|T| / |sum T|`` (inf when the sum is 0)."""
    s = sum(terms)
    with np.errstate(all="ignore"):
        return sum(np.abs(t) for t in terms) / np.abs(s)


def _e_neg_abs(x):
    return np.exp(-np.abs(x))


def _sig(v):
    return special.expit(v)


# ---- first derivatives ----------------------------------------------------------

def relu(x):
    return _out(x, np.where(x > 0, 1.0, 0.0), exact=np.ones(x.shape, bool))


def relu6(x):
    return _out(x, np.where((x > 0) & (x < 6), 1.0, 0.0), exact=np.ones(x.shape, bool))


def leaky_relu(x, negative_slope=0.01):
    return _out(x, np.where(x > 0, 1.0, negative_slope), exact=(x > 0) | (negative_slope == 0))


def elu(x, alpha=1.0):
    # |alpha e^x| < 2**-1100 for x <= -800 when alpha < 2**54
    neg = np.minimum(x, 0.0)
    y = np.where(x > 0, 1.0, alpha * np.exp(neg))
    tail = (x <= -800) & (alpha < 2.0**54)
    return _out(x, np.where(tail, 0.0, y), exact=(x > 0) | tail | (alpha == 0))


def _exp_over(x, a):
    """``(e^(x/a), amp)``: x/a is exact for a power-of-two alpha, else its rounding is
    magnified |x/a| times."""
    r = np.minimum(x, 0.0) / a
    amp = 0.0 if np.frexp(a)[0] == 0.5 else np.abs(r)
    return np.exp(r), amp


def celu(x, alpha=1.0):
    e, amp = _exp_over(x, alpha)
    tail = x / alpha <= -800
    return _out(x, np.where(x > 0, 1.0, np.where(tail, 0.0, e)), amp, exact=(x > 0) | tail)


def selu(x):
    tail = x <= -800
    y = np.where(x > 0, _SELU_SCALE, (_SELU_SCALE * _SELU_ALPHA) * np.exp(np.minimum(x, 0.0)))
    return _out(x, np.where(tail, 0.0, y), exact=tail)


def _gelu_exact_terms(x):
    """``Phi(x)`` and ``x phi(x)``; ``x*x`` is exact for float32-or-narrower x.  scipy's
    erfc(z) has relative error up to about z^2 = x^2/2 units (it rounds ``-z*z``
    before exp), counted in ``amp``."""
    t1 = 0.5 * special.erfc(-x * np.sqrt(0.5))
    t2 = x * (_INV_SQRT_2PI * np.exp(-0.5 * (x * x)))
    return t1, t2


def _gelu_tanh_u(x):
    """``(2u, u', s = sigmoid(2u), sm = sigmoid(-2u))``; 2u has relative error about 3 units."""
    u2 = 2.0 * _K * (x + _C * x * x * x)
    return u2, _K * (1.0 + 3.0 * _C * x * x), _sig(u2), _sig(-u2)


def gelu(x, approximate=False):
    if approximate:
        u2, u1, s, sm = _gelu_tanh_u(x)
        t2 = x * 2.0 * u1 * s * sm
        y = s + t2
        # sigmoid(v) with v off by |v| 3 units: relative error sigmoid(-v)|v| 3 units;
        # t2's factor s sm: (sm + s)|v| 3 units
        with np.errstate(all="ignore"):
            amp = (np.abs(s) * (1.0 + np.abs(u2) * sm) + np.abs(t2) * (1.0 + np.abs(u2))) / np.abs(y)
        tail = x <= -25  # |f'| <= e^(2u) (1 + 2|x|u') < 2**-1100
    else:
        t1, t2 = _gelu_exact_terms(x)
        y = t1 + t2
        with np.errstate(all="ignore"):  # erfc(|z|)'s z^2 units matter for x < 0 only
            amp = (np.abs(t1) * (1.0 + np.where(x < 0, x * x, 0.0)) + np.abs(t2)) / np.abs(y)
        tail = x <= -40  # |f'| <= (|x| + 1) e^(-x^2/2) < 2**-1100
    return _out(x, np.where(tail, -0.0, y), amp, exact=tail)


def silu(x):
    s, sm = _sig(x), _sig(-x)
    t2 = x * sm
    y = s * (1.0 + t2)
    tail = x <= -800  # |f'| <= e^x (1 + |x|)
    return _out(x, np.where(tail, -0.0, y), _cond(1.0, t2), exact=tail)


def _mish_parts(x):
    """``(g, S)`` = tanh and sech^2 of softplus(x), without overflow: for x <= 0 from
    ``n = e^x (e^x + 2)`` (``g = n/(n+2)``, ``S = 4(n+1)/(n+2)^2``); for x > 0 from
    ``w = e^-x`` (``g = 1 - 2w^2/d``, ``S = 4 w^2 (1+w)^2 / d^2``, ``d = 1 + 2w + 2w^2``)."""
    e = np.exp(np.minimum(x, 0.0))
    n = e * (e + 2.0)
    w = np.exp(-np.maximum(x, 0.0))
    d = 1.0 + 2.0 * w + 2.0 * w * w
    g = np.where(x > 0, 1.0 - 2.0 * w * w / d, n / (n + 2.0))
    S = np.where(x > 0, 4.0 * (w * (1.0 + w)) ** 2 / (d * d), 4.0 * (n + 1.0) / ((n + 2.0) * (n + 2.0)))
    return g, S


def mish(x):
    g, S = _mish_parts(x)
    t2 = x * S * _sig(x)
    tail = x <= -800  # |f'| <= (3 + |x|) e^x
    return _out(x, np.where(tail, -0.0, g + t2), _cond(g, t2), exact=tail)


def sigmoid(x):
    e = _e_neg_abs(x)
    tail = np.abs(x) >= 800
    return _out(x, np.where(tail, 0.0, e / ((1.0 + e) * (1.0 + e))), exact=tail)


def log_sigmoid(x):
    tail = x >= 800
    return _out(x, np.where(tail, 0.0, _sig(-x)), exact=tail)


def tanh(x):
    e = np.exp(-2.0 * np.abs(x))
    tail = np.abs(x) >= 400
    return _out(x, np.where(tail, 0.0, 4.0 * e / ((1.0 + e) * (1.0 + e))), exact=tail)


def softplus(x):
    tail = x <= -800
    return _out(x, np.where(tail, 0.0, _sig(x)), exact=tail)


def hard_sigmoid(x):
    inside = (x > -3) & (x < 3)
    return _out(x, np.where(inside, 1.0 / 6.0, 0.0), exact=~inside)


def hard_swish(x):
    inside = (x > -3) & (x < 3)
    return _out(x, np.where(x <= -3, 0.0, np.where(x >= 3, 1.0, (2.0 * x + 3.0) / 6.0)), exact=~inside)


def softsign(x):
    a = 1.0 + np.abs(x)
    return _out(x, 1.0 / (a * a))


# ---- second derivatives ---------------------------------------------------------

def elu2(x, alpha=1.0):
    tail = (x <= -800) & (alpha < 2.0**54)
    y = np.where((x > 0) | tail, 0.0, alpha * np.exp(np.minimum(x, 0.0)))
    return _out(x, y, exact=(x > 0) | tail | (alpha == 0))


def celu2(x, alpha=1.0):
    e, amp = _exp_over(x, alpha)
    tail = x / alpha <= -800
    return _out(x, np.where((x > 0) | tail, 0.0, e / alpha), amp, exact=(x > 0) | tail)


def selu2(x):
    tail = x <= -800
    y = np.where((x > 0) | tail, 0.0, (_SELU_SCALE * _SELU_ALPHA) * np.exp(np.minimum(x, 0.0)))
    return _out(x, y, exact=(x > 0) | tail)


def gelu2(x, approximate=False):
    if approximate:
        u2, u1, s, sm = _gelu_tanh_u(x)
        th = np.tanh(0.5 * u2)
        b1, b2, b3 = 4.0 * u1, 2.0 * x * (6.0 * _K * _C * x), -4.0 * x * u1 * u1 * th
        y = s * sm * (b1 + b2 + b3)
        amp = _cond(b1, b2, b3) * (1.0 + np.abs(u2))
        tail = np.abs(x) >= 25
    else:
        y = _INV_SQRT_2PI * np.exp(-0.5 * (x * x)) * (2.0 - x * x)  # x*x exact, 2 - x*x one rounding
        amp = 0.0
        tail = np.abs(x) >= 40
    return _out(x, np.where(tail, -0.0, y), amp, exact=tail)


def silu2(x):
    b = -x * np.tanh(0.5 * x)
    y = _sig(x) * _sig(-x) * (2.0 + b)
    tail = np.abs(x) >= 800
    return _out(x, np.where(tail, -0.0, y), _cond(2.0, b), exact=tail)


def mish2(x):
    g, S = _mish_parts(x)
    s, sm = _sig(x), _sig(-x)
    b1, b2 = x * sm, -2.0 * x * g * s
    y = S * s * (2.0 + b1 + b2)
    tail = (x <= -800) | (x >= 400)
    return _out(x, np.where(tail, -0.0, y), _cond(2.0, b1, b2), exact=tail)


def sigmoid2(x):
    e = _e_neg_abs(x)
    y = -(e / ((1.0 + e) * (1.0 + e))) * np.tanh(0.5 * x)
    tail = np.abs(x) >= 800
    return _out(x, np.where(tail, np.copysign(0.0, -x), y), exact=tail)


def log_sigmoid2(x):
    e = _e_neg_abs(x)
    tail = np.abs(x) >= 800
    return _out(x, np.where(tail, -0.0, -(e / ((1.0 + e) * (1.0 + e)))), exact=tail)


def tanh2(x):
    e = np.exp(-2.0 * np.abs(x))
    tail = np.abs(x) >= 400
    y = -2.0 * np.tanh(x) * (4.0 * e / ((1.0 + e) * (1.0 + e)))
    return _out(x, np.where(tail, np.copysign(0.0, -x), y), exact=tail)


def softplus2(x):
    e = _e_neg_abs(x)
    tail = np.abs(x) >= 800
    return _out(x, np.where(tail, 0.0, e / ((1.0 + e) * (1.0 + e))), exact=tail)


def softsign2(x):
    a = 1.0 + np.abs(x)
    return _out(x, -2.0 * np.sign(x) / (a * a * a))


# ---- the ops written one module each, in reference/ops/ ----------------------------

def _gather():
    from . import ops

    for name, fn in ops.provided("float64_d1").items():
        globals()[name] = fn
    for name, fn in ops.provided("float64_d2").items():
        globals()[f"{name}2"] = fn


_gather()
