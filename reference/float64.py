"""Independent float64 formulas (numpy/scipy), the cross-check of the mpmath references.

These share no code with ``reference.activations``: they are written from the
textbook definitions with scipy.special and numpy's expm1/log1p, vectorized
over float64 arrays.  ``tests/test_reference.py`` requires them to agree with the
correctly rounded mpmath values to within ``FLOAT64_BOUND_ULPS`` ulps of
float64 on the golden inputs (the bound is what these formulas achieve:
each is a few correctly rounded libm/scipy calls composed without
cancellation, measured <= 4 ulp; 8 leaves room for platform libm differences).
"""

from __future__ import annotations

import numpy as np
from scipy import special

__all__ = ["FORMULAS", "FLOAT64_BOUND_ULPS"]

FLOAT64_BOUND_ULPS = 8.0

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _where(cond, a, b):
    return np.where(cond, a, b)


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


def gelu(x, approximate=False):
    if approximate:
        u = np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)
        return x * special.expit(2 * u)
    return 0.5 * x * special.erfc(-x / np.sqrt(2))


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


FORMULAS = {f.__name__: f for f in [
    relu, relu6, leaky_relu, elu, celu, selu, gelu, silu, mish, sigmoid,
    log_sigmoid, tanh, softplus, hard_sigmoid, hard_swish, softsign,
]}
