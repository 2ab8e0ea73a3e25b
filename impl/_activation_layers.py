"""Layer classes for the elementwise activations: thin, printable wrappers.

Each layer validates its parameters at construction (the same rules as the
functional op) and calls ``impl.functional`` in ``__call__``.
"""

from __future__ import annotations

from . import _activations as F
from ._activations import _check_bounds
from ._core import check_finite_param
from ._module import Module

__all__ = [
    "ReLU", "ReLU6", "LeakyReLU", "ELU", "CELU", "SELU", "GELU", "SiLU", "Mish",
    "Sigmoid", "LogSigmoid", "Tanh", "Softplus", "Hardsigmoid", "Hardswish", "Softsign",
    "Hardtanh",
]


def _simple(name, fn, doc):
    def __call__(self, x):
        return fn(x)

    return type(name, (Module,), {"__call__": __call__, "__doc__": doc, "__module__": __name__})


ReLU = _simple("ReLU", F.relu, "``relu(x) = max(x, 0)``.")
ReLU6 = _simple("ReLU6", F.relu6, "``relu6(x) = min(max(x, 0), 6)``.")
SELU = _simple("SELU", F.selu, "Scaled ELU with the standard constants.")
SiLU = _simple("SiLU", F.silu, "``silu(x) = x * sigmoid(x)`` (a.k.a. swish).")
Mish = _simple("Mish", F.mish, "``mish(x) = x * tanh(softplus(x))``.")
Sigmoid = _simple("Sigmoid", F.sigmoid, "``sigmoid(x) = 1 / (1 + exp(-x))``.")
LogSigmoid = _simple("LogSigmoid", F.log_sigmoid, "``log_sigmoid(x) = -softplus(-x)``.")
Tanh = _simple("Tanh", F.tanh, "Hyperbolic tangent.")
Softplus = _simple("Softplus", F.softplus, "``softplus(x) = log(1 + exp(x))``.")
Hardsigmoid = _simple("Hardsigmoid", F.hard_sigmoid, "``relu6(x + 3) / 6``.")
Hardswish = _simple("Hardswish", F.hard_swish, "``x * relu6(x + 3) / 6``.")
Softsign = _simple("Softsign", F.softsign, "``x / (1 + |x|)``.")


class LeakyReLU(Module):
    """``x`` for x >= 0, ``negative_slope * x`` below (default slope 0.01)."""

    def __init__(self, negative_slope: float = 0.01):
        self.negative_slope = check_finite_param("negative_slope", negative_slope)

    def __call__(self, x):
        return F.leaky_relu(x, negative_slope=self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class ELU(Module):
    """``x`` for x > 0, ``alpha * expm1(x)`` otherwise (``alpha >= 0``, default 1.0)."""

    def __init__(self, alpha: float = 1.0):
        self.alpha = check_finite_param("alpha", alpha, nonnegative=True)

    def __call__(self, x):
        return F.elu(x, alpha=self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}"


class CELU(Module):
    """``max(0, x) + min(0, alpha * expm1(x / alpha))`` (``alpha > 0``, default 1.0)."""

    def __init__(self, alpha: float = 1.0):
        self.alpha = check_finite_param("alpha", alpha, positive=True)

    def __call__(self, x):
        return F.celu(x, alpha=self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}"


class GELU(Module):
    """GELU, exact erf form by default; ``approximate=True`` for the tanh form."""

    def __init__(self, approximate: bool = False):
        if not isinstance(approximate, bool):
            raise TypeError(f"approximate must be a bool, got {approximate!r}; pass True or False")
        self.approximate = approximate

    def __call__(self, x):
        return F.gelu(x, approximate=self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate}"


class Hardtanh(Module):
    """``min(max(x, min_val), max_val)`` (``min_val < max_val``, default -1.0 and 1.0)."""

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0):
        self.min_val, self.max_val = _check_bounds(min_val, max_val)

    def __call__(self, x):
        return F.hard_tanh(x, min_val=self.min_val, max_val=self.max_val)

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}"
