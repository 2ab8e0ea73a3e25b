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

__all__ = ["FORMULAS", "relative_bound"]

# Relative error bounds, for results in [2**-1000, 2**1000] (the fast tier
# leaves everything else to mpmath).  Default: a few libm/scipy calls without
# cancellation, measured <= 2**-51 on the golden inputs; 2**-40 leaves margin.
_DEFAULT_BOUND = (2.0**-40, "a few libm/scipy calls without cancellation; measured <= 2**-51")
_BOUNDS = {
    # erfc(z) at z = -x/sqrt(2): the rounding of z is amplified 2 z**2 times;
    # z <= 26.6 for results >= 2**-1000: <= 1415 * 2**-53 ~ 2**-42.5 (measured 1.4e-13)
    "gelu": (2.0**-34, "erfc amplifies the rounding of x/sqrt(2) by 2z^2 <= 1415; measured 1.4e-13"),
    # exp(-2u) amplifies the rounding of 2u by |2u| <= 693 for results >= 2**-1000
    "gelu_tanh": (2.0**-34, "exp amplifies the rounding of 2u by |2u| <= 693; measured 1.35e-13"),
}


def relative_bound(op: str, params: dict):
    """``(bound, why)`` of the float64 formula of ``op`` with ``params``."""
    key = "gelu_tanh" if op == "gelu" and params.get("approximate") else op
    return _BOUNDS.get(key, _DEFAULT_BOUND)

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
