"""hard_tanh: ``min(max(x, min_val), max_val)``, every reference in one place.

Conventions: ``x`` strictly between the bounds is returned as it is (so -0 -> -0); at or beyond
a bound, the bound (its exact binary64 value); ±inf -> the bounds; NaN -> NaN.  The derivative
is 1 on ``(min_val, max_val)`` and 0 elsewhere (0 at both kinks, the outer pieces' slope, and at
±inf).  Every result is exact, so the float64 formulas carry no bound (``exact`` everywhere).
"""

from __future__ import annotations

import math

import numpy as np

from .._convert import to_fraction


# ---- exact (the mpmath tier's role: reference.activations, reference.derivatives) ------------

def value(x: float, min_val: float = -1.0, max_val: float = 1.0):
    """``min(max(x, min_val), max_val)``: ``x`` strictly between the bounds (so -0 -> -0),
    else the bound, its exact binary64 value as a Fraction (rounded once; a zero bound is
    returned as it is); ±inf -> the bounds."""
    if math.isnan(x):
        return x
    if min_val < x < max_val:
        return x
    bound = min_val if x <= min_val else max_val
    return bound if bound == 0 else to_fraction(bound)


def d1(x: float, min_val: float = -1.0, max_val: float = 1.0):
    """1 on ``(min_val, max_val)``, 0 elsewhere (0 at both kinks and at ±inf)."""
    if math.isnan(x):
        return math.nan
    return 1.0 if min_val < x < max_val else 0.0


# ---- float64 (reference.float64, reference.float64_derivatives) -------------------------------

def float64(x, min_val=-1.0, max_val=1.0):
    return np.where(np.isnan(x), x, np.where(x <= min_val, min_val, np.where(x >= max_val, max_val, x)))


def float64_d1(x, min_val=-1.0, max_val=1.0):
    from ..float64_derivatives import _out  # (imported here: that module gathers this one)

    return _out(x, np.where((x > min_val) & (x < max_val), 1.0, 0.0), exact=np.ones(x.shape, bool))
