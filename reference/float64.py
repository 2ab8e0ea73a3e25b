"""Independent float64 formulas (numpy/scipy), the cross-check of the mpmath references.

These share no code with ``reference.activations``: they are written from the
textbook definitions with scipy.special and numpy's expm1/log1p, vectorized
over float64 arrays.  They are also the fast tier of the golden regeneration
(``reference.fast``), which needs a relative error bound for each:
``relative_bound(op, params)``.  ``tests/test_reference.py`` checks every bound
against mpmath on float64 inputs, and with a 2**8 margin on float32 inputs
(the fast tier only serves float32 and narrower).
"""

from __future__ import annotations

import numpy as np
from scipy import special

__all__ = ["relative_bound"]

# Relative error bounds, for results in [2**-1000, 2**1000] (the fast tier
# leaves everything else to mpmath).  Default: a few libm/scipy calls without
# cancellation (gelu's arguments carried as double-doubles), measured
# <= 2**-51.5 on float32 inputs; 2**-43 keeps a 2**8 margin, as the tests require.
_DEFAULT_BOUND = (2.0**-43, "a few libm/scipy calls without cancellation; measured <= 2**-51.5")
_BOUNDS = {
    # erfc's region z in (0.5, 1): erfcx * exp and erfc both lose a few ulps there
    "gelu": (2.0**-42, "erfc/erfcx composition with double-double argument; measured <= 2**-50.1"),
}


def relative_bound(op: str, params: dict):
    """``(bound, why)`` of the float64 formula of ``op`` with ``params``."""
    key = "gelu_tanh" if op == "gelu" and params.get("approximate") else op
    return _BOUNDS.get(key, _DEFAULT_BOUND)

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def relu(x):
    return np.where(x > 0, x, 0.0)


def relu6(x):
    return np.where(np.isnan(x), x, np.clip(np.where(x > 0, x, 0.0), 0.0, 6.0))


def leaky_relu(x, negative_slope=0.01):
    return np.where(x >= 0, x, negative_slope * x)


def elu(x, alpha=1.0):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


def celu(x, alpha=1.0):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0) / alpha))


def selu(x):
    return _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0.0)))


_SPLIT = 134217729.0  # 2**27 + 1, Veltkamp's constant


def _split(a):
    t = _SPLIT * a
    hi = t - (t - a)
    return hi, a - hi


def _two_prod(a, b):
    """``a * b = p + e`` exactly (Dekker), for |a|, |b| well inside the float64 range."""
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


def _two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


# 1/sqrt(2) and 2*sqrt(2/pi) as double-doubles (hi + lo), from 40-digit decimals
_RSQRT2_HI, _RSQRT2_LO = 0.7071067811865476, -4.833646656726457e-17
_K_HI, _K_LO = 1.5957691216057308, -9.96930880911092e-17


def gelu(x, approximate=False):
    """Both forms carry the argument of erfc / exp as a double-double, so the
    rounding of ``x/sqrt(2)`` (or of ``2u``) is not amplified in the tails: a
    first-order correction ``f(z_hi + z_lo) = f(z_hi) + f'(z_hi) z_lo`` is added."""
    with np.errstate(all="ignore"):
        xs = np.clip(x, -1e30, 1e30)  # beyond, the result is 0 or x at any precision
        if approximate:
            # 2u = K (x + c x^3), K = 2 sqrt(2/pi), c = 0.044715 (binary64)
            x2, x2e = _two_prod(xs, xs)
            x3, x3e = _two_prod(x2, xs)
            x3e = x3e + x2e * xs
            cx3, cx3e = _two_prod(0.044715, x3)
            cx3e = cx3e + 0.044715 * x3e
            v, ve = _two_sum(xs, cx3)
            ve = ve + cx3e
            u2, u2e = _two_prod(_K_HI, v)
            u2e = u2e + _K_HI * ve + _K_LO * v
            s = special.expit(u2)
            y = x * (s + s * special.expit(-u2) * u2e)
            return np.where(np.isnan(x), x, np.where(np.abs(x) > 1e30, np.where(x > 0, x, -0.0), y))
        z, ze = _two_prod(-xs, _RSQRT2_HI)
        ze = ze - xs * _RSQRT2_LO
        # z > 0.5: erfc(z) = erfcx(z) exp(-z^2) with z^2 as a double-double (scipy's erfc
        # rounds z^2 before exp, which costs z^2 ulps); erfcx varies slowly, so z_lo only
        # enters through exp(-z^2): z^2 = z2 + z2e
        e = np.empty_like(z)
        b = z > 0.5
        zb, zeb = z[b], ze[b]
        z2, z2e = _two_prod(zb, zb)
        z2e = z2e + 2 * zb * zeb
        # |z2e| >= 1 only where z^2 >= 2**53 and exp(-z^2) is 0: the clip keeps that 0
        # positive (an unclipped 1 - z2e < 0 gave -0, so gelu(x << 0) = +0 instead of -0)
        e[b] = special.erfcx(zb) * np.exp(-z2) * (1 - np.clip(z2e, -1.0, 1.0))
        s_, zs, zes = ~b, z[~b], ze[~b]
        e[s_] = special.erfc(zs) - zes * (2 / np.sqrt(np.pi)) * np.exp(-zs * zs)
        y = 0.5 * x * e
        return np.where(np.isnan(x), x, np.where(np.abs(x) > 1e30, np.where(x > 0, x, -0.0), y))


def silu(x):
    return x * special.expit(x)


def mish(x):
    return x * np.tanh(np.logaddexp(0.0, x))


def sigmoid(x):
    return special.expit(x)


def log_sigmoid(x):
    return special.log_expit(x)


def tanh(x):
    return np.tanh(x)


def softplus(x):
    return np.logaddexp(0.0, x)


def hard_sigmoid(x):
    return np.clip(x + 3.0, 0.0, 6.0) / 6.0


def hard_swish(x):
    return x * (np.clip(x + 3.0, 0.0, 6.0) / 6.0)


def softsign(x):
    return x / (1.0 + np.abs(x))


# ---- the ops written one module each, in reference/ops/ ----------------------------

def _gather():
    from . import ops

    for name, fn in ops.provided("float64").items():
        globals()[name] = fn
    _BOUNDS.update(ops.provided("FLOAT64_BOUND"))


_gather()
