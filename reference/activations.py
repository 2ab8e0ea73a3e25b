"""mpmath definitions of the elementwise activations, on the EXACT input value.

Each function takes the input as a Python float ``x`` (exact: every supported
format embeds in binary64) and its parameters as Python floats, whose exact
binary64 values are used (``negative_slope=0.01`` means
0.01000000000000000020816681711721685..., not the decimal 1/100).  Specials
(nan, ±inf, signed zeros) are answered as Python floats by the rules written in
each docstring; a rational result (leaky_relu, selu for x > 0, hard_sigmoid,
hard_swish, softsign) is returned exactly as a ``fractions.Fraction``;
everything else returns an ``mpf`` computed in the caller's mpmath context (see
``_ziv.correctly_rounded``).  Formulas avoid cancellation so
the context precision bounds the relative error.

Sign-of-zero conventions (they are the IEEE results of the defining formula):
``relu``/``relu6``/``hard_sigmoid`` give +0 for x <= 0; odd-at-zero functions
(leaky_relu, elu, celu, selu, gelu, silu, mish, tanh, softsign, hard_swish)
keep the sign of a zero input; a result that is the limit 0 approached from
below is -0 (``gelu(-inf)``, ``silu(-inf)``, ``mish(-inf)``,
``hard_swish(x <= -3)``, ``log_sigmoid(+inf)``).
"""

from __future__ import annotations

import math

import mpmath
from mpmath import mpf

from ._convert import to_fraction, to_mpf

__all__ = [
    "relu", "relu6", "leaky_relu", "elu", "celu", "selu", "gelu", "silu", "mish",
    "sigmoid", "log_sigmoid", "tanh", "softplus", "hard_sigmoid", "hard_swish",
    "softsign", "SELU_ALPHA", "SELU_SCALE", "GELU_TANH_COEFF",
]

# SELU constants: the binary64 values of the literals every framework uses.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
# tanh-form GELU: 0.044715 is taken as its binary64 value; sqrt(2/pi) is exact.
GELU_TANH_COEFF = 0.044715


def relu(x: float):
    """``max(x, 0)``; ``relu(x <= 0) = +0``."""
    if math.isnan(x):
        return math.nan
    return x if x > 0 else 0.0


def relu6(x: float):
    """``min(max(x, 0), 6)``; +0 for x <= 0."""
    if math.isnan(x):
        return math.nan
    return 0.0 if x <= 0 else min(x, 6.0)


def leaky_relu(x: float, negative_slope: float = 0.01):
    """``x`` for x >= 0 (so -0 -> -0), ``negative_slope * x`` below."""
    if math.isnan(x) or x >= 0:
        return x
    if math.isinf(x) or negative_slope == 0:
        return math.copysign(math.inf if negative_slope else 0.0, -negative_slope)
    return to_fraction(negative_slope) * to_fraction(x)  # exact: rounded once, ties included


def elu(x: float, alpha: float = 1.0):
    """``x`` for x > 0, ``alpha * expm1(x)`` for x <= 0; -0 -> -0; -inf -> -alpha.
    With ``alpha = 0`` every x < 0 gives -0 (the IEEE product ``+0 * expm1(x)``, expm1(x) < 0)."""
    if math.isnan(x) or x > 0 or x == 0:
        return x
    if alpha == 0:
        return math.copysign(0.0, -alpha)
    if math.isinf(x):
        return -to_mpf(alpha)
    return to_mpf(alpha) * mpmath.expm1(to_mpf(x))


def celu(x: float, alpha: float = 1.0):
    """``max(0, x) + min(0, alpha * expm1(x / alpha))``; x/alpha exact (mpmath)."""
    if math.isnan(x) or x > 0 or x == 0:
        return x
    if math.isinf(x):
        return -to_mpf(alpha)
    a = to_mpf(alpha)
    return a * mpmath.expm1(to_mpf(x) / a)


def selu(x: float):
    """``SELU_SCALE * (x if x > 0 else SELU_ALPHA * expm1(x))``."""
    if math.isnan(x) or x == 0:
        return x
    if math.isinf(x):
        return x if x > 0 else -(to_mpf(SELU_SCALE) * to_mpf(SELU_ALPHA))
    if x > 0:
        return to_fraction(SELU_SCALE) * to_fraction(x)  # exact product, rounded once
    return to_mpf(SELU_SCALE) * to_mpf(SELU_ALPHA) * mpmath.expm1(to_mpf(x))


def gelu(x: float, approximate: bool = False):
    """Exact: ``x/2 * erfc(-x/sqrt(2))``.  Tanh form (``approximate=True``):
    ``x / (1 + exp(-2u))`` with ``u = sqrt(2/pi) * (x + 0.044715 x**3)``, which
    equals ``x/2 * (1 + tanh(u))`` without its cancellation.  -inf -> -0."""
    if math.isnan(x) or x == 0 or x == math.inf:
        return x
    if x == -math.inf:
        return -0.0
    if x <= -40 and not approximate:
        # |gelu(x)| <= exp(-x^2/2)/sqrt(2 pi) <= 2**-1154 here: -0 in every format (and
        # mpmath's erfc overflows a float for arguments beyond ~1e154 without gmpy2)
        return -0.0
    X = to_mpf(x)
    if approximate:
        u = mpmath.sqrt(2 / mpmath.pi) * (X + to_mpf(GELU_TANH_COEFF) * X**3)
        return X / (1 + mpmath.exp(-2 * u))
    return X / 2 * mpmath.erfc(-X / mpmath.sqrt(2))


def silu(x: float):
    """``x * sigmoid(x) = x / (1 + exp(-x))``; -inf -> -0."""
    if math.isnan(x) or x == 0 or x == math.inf:
        return x
    if x == -math.inf:
        return -0.0
    X = to_mpf(x)
    return X / (1 + mpmath.exp(-X))


def mish(x: float):
    """``x * tanh(softplus(x))``, evaluated as ``x * t(t+2) / (t(t+2) + 2)`` with
    ``t = exp(x)`` (no cancellation for either sign); -inf -> -0."""
    if math.isnan(x) or x == 0 or x == math.inf:
        return x
    if x == -math.inf:
        return -0.0
    X = to_mpf(x)
    if x > 0:  # tanh(softplus(x)) = 1 - 2 / (t^2 + 2t + 2)
        t = mpmath.exp(X)
        return X * (1 - 2 / (t * (t + 2) + 2))
    t = mpmath.exp(X)
    n = t * (t + 2)
    return X * n / (n + 2)


def sigmoid(x: float):
    """``1 / (1 + exp(-x))``; sigmoid(-inf) = +0, sigmoid(+inf) = 1."""
    if math.isnan(x):
        return x
    if math.isinf(x):
        return 1.0 if x > 0 else 0.0
    return 1 / (1 + mpmath.exp(-to_mpf(x)))


def log_sigmoid(x: float):
    """``-log1p(exp(-x))``; log_sigmoid(-inf) = -inf, log_sigmoid(+inf) = -0."""
    if math.isnan(x):
        return x
    if math.isinf(x):
        return -math.inf if x < 0 else -0.0
    X = to_mpf(x)
    if x < 0:  # -log1p(e^-x) = x - log1p(e^x), keeps full relative accuracy
        return X - mpmath.log1p(mpmath.exp(X))
    return -mpmath.log1p(mpmath.exp(-X))


def tanh(x: float):
    """Hyperbolic tangent; odd, ±inf -> ±1, -0 -> -0."""
    if math.isnan(x) or x == 0:
        return x
    if math.isinf(x):
        return math.copysign(1.0, x)
    return mpmath.tanh(to_mpf(x))


def softplus(x: float):
    """``log1p(exp(x))``; softplus(-inf) = +0, softplus(+inf) = +inf."""
    if math.isnan(x):
        return x
    if math.isinf(x):
        return x if x > 0 else 0.0
    X = to_mpf(x)
    if x > 0:
        return X + mpmath.log1p(mpmath.exp(-X))
    return mpmath.log1p(mpmath.exp(X))


def hard_sigmoid(x: float):
    """``relu6(x + 3) / 6``; +0 for x <= -3, 1 for x >= 3."""
    if math.isnan(x):
        return x
    if x <= -3:
        return 0.0
    if x >= 3:
        return 1.0
    return (to_fraction(x) + 3) / 6  # exact rational: (3 * 2**-24 + 3) / 6 is a float32 midpoint


def hard_swish(x: float):
    """``x * relu6(x + 3) / 6``; x for x >= 3; ``x * (+0)`` for x <= -3, i.e. -0
    (also at x = -inf, the limit); -0 -> -0."""
    if math.isnan(x):
        return x
    if x <= -3:
        return -0.0
    if x >= 3 or x == 0:
        return x
    X = to_fraction(x)
    return X * (X + 3) / 6  # exact rational (at x = 5 * 2**-1074: 2.5 ulp + x**2/6, just above the tie)


def softsign(x: float):
    """``x / (1 + |x|)``; ±inf -> ±1, -0 -> -0."""
    if math.isnan(x) or x == 0:
        return x
    if math.isinf(x):
        return math.copysign(1.0, x)
    X = to_fraction(x)
    return X / (1 + abs(X))  # exact rational


# ---- the ops written one module each, in reference/ops/ ----------------------------

def _gather():
    from . import ops

    for name, fn in ops.provided("value").items():
        globals()[name] = fn
        __all__.append(name)


_gather()
