"""Registry entries of the elementwise activations.

Budgets (the accuracy targets; never widened to make a test pass):

* float32: |error| <= 1 ulp on normal-range results (the project's target; the
  implementation evaluates in float64 and rounds once, so it can only miss
  correct rounding when the float64 value, good to ~2**-50 relative, falls
  within its own error of a float32 midpoint: a share of about 2**-26 of
  inputs, hence >= 99.9 % correctly rounded is required too).
* bfloat16 and float16: every result correctly rounded (the project's target:
  float64 evaluation, round-to-odd to float32, one rounding to 8 or 11 bits is
  a correct rounding unless the float64 value is within ~2**-50 of a midpoint,
  which the exhaustive golden sets show never happens).
* float64: <= 1 ulp and >= 99 % correctly rounded (``_T64``: double-double
  evaluation rounded once).
"""

from __future__ import annotations

import numpy as np

from reference import FORMATS
from reference import activations as R
from reference import fast as fast_tier
from reference import float64 as F64

from . import Budget, Case

_F32 = Budget(1.0, 99.9, "target <= 1 ulp; float64 evaluation rounded once gives 0.5 ulp + 2**-29")
_B16 = Budget(0.5, 100.0, "target: correctly rounded on all finite inputs (float64 evaluation + round-to-odd)")
_H16 = Budget(0.5, 100.0, "correctly rounded on all finite inputs (float64 evaluation + round-to-odd)")

# float64: the implementation evaluates each op in double-double arithmetic (impl/_dd.py,
# impl/_act64.py: error-free TwoSum/TwoProduct, exp/expm1/log1p/erfcx kernels below about
# 2**-64 relative) and rounds once, so a result is within 0.5 ulp + 2**-10 (the kernels'
# bounds, times the amplification |terms| / |result| of a cancellation, which double-double
# leaves at 2**-100 of the terms) and correctly rounded unless the exact value lies within
# that distance of a float64 midpoint (a share of about 2**-9 of inputs at worst); measured:
# 0.5 ulp and 100 % correctly rounded on every golden input (CPU).  Hence <= 1 ulp and
# >= 99 % correctly rounded.  Where a result is exact (relu, leaky_relu), _EXACT64.
_EXACT64 = Budget(0.5, 100.0, "a comparison/select, or one rounded product/quotient: correctly rounded")
_T64 = ("target <= 1 ulp and >= 99 % correctly rounded: double-double evaluation (below ~2**-62 relative) "
        "rounded once; measured 0.5 ulp, 100 % correctly rounded on the golden inputs")


def _f64(known_failure=""):
    return Budget(1.0, 99.0, _T64, known_failure)


_KNOWN64: dict = {}  # none: every float64 activation meets _T64 (issue #19)


def _budgets(f64: Budget):
    return {"float32": _F32, "bfloat16": _B16, "float16": _H16, "float64": f64}


def _case(op, f64_budget, doc, **kwargs):
    if f64_budget is None:
        key = "gelu_tanh" if kwargs.get("approximate") else op
        f64_budget = _f64(_KNOWN64.get(key, ""))
    kw = tuple(sorted(kwargs.items()))
    cid = op if not kw else op + "[" + ",".join(f"{k}={v}" for k, v in kw) + "]"
    return Case(cid, op, kw, getattr(R, op), F64.FORMULAS[op], _budgets(f64_budget), "activations", doc)


_ONE = None  # the float64 target budget, with the op's known failure if any

CASES = [
    _case("relu", _EXACT64, "max(x, 0)"),
    _case("relu6", _EXACT64, "min(max(x, 0), 6)"),
    _case("leaky_relu", _EXACT64, "default slope 0.01", negative_slope=0.01),
    _case("leaky_relu", _EXACT64, "the tutorial's slope 0.1", negative_slope=0.1),
    _case("elu", _ONE, "alpha * expm1(x) for x <= 0"),
    _case("celu", _ONE, "alpha * expm1(x / alpha) for x <= 0", alpha=2.0),
    _case("selu", _ONE, "scale * alpha * expm1(x) for x <= 0"),
    _case("gelu", _ONE, "x/2 erfc(-x/sqrt 2)"),
    _case("gelu", _ONE, "tanh form with 0.044715", approximate=True),
    _case("silu", _ONE, "x / (1 + exp(-x))"),
    _case("mish", _ONE, "x tanh(softplus(x))"),
    _case("sigmoid", _ONE, "1 / (1 + exp(-x))"),
    _case("log_sigmoid", _ONE, "-log1p(exp(-x))"),
    _case("tanh", _ONE, "tanh"),
    _case("softplus", _ONE, "log1p(exp(x))"),
    _case("hard_sigmoid", _ONE, "relu6(x + 3) / 6"),
    _case("hard_swish", _ONE, "x relu6(x + 3) / 6"),
    _case("softsign", _ONE, "x / (1 + |x|)"),
]


SHARED_INPUTS = True  # the cases of this family use golden/inputs/<dtype>.npy


def golden_arrays(case, dtype, xs, fallback_map=map):
    """``{"rounded", "residual"}`` for the shared inputs ``xs`` of ``dtype``, plus the
    number of results that needed mpmath (the rest came from the fast tier)."""
    bound, _ = F64.relative_bound(case.op, case.params)
    rounded, residual, n_fb = fast_tier.correctly_rounded_array(
        case.reference, case.float64_formula, xs.astype(np.float64), FORMATS[dtype], case.params, fallback_map,
        bound=bound)
    return {"rounded": rounded.astype(xs.dtype), "residual": residual}, n_fb


# Parameter values the golden cases above do not hold: tests/test_parameters.py checks each op
# at these against live mpmath (float32 and bfloat16, the op's budgets), so an implementation
# that ignores or mis-scales a parameter (elu's alpha is 1.0 in every golden case) is caught.
PARAMETER_SWEEPS = {
    "leaky_relu": ({"negative_slope": 0.2}, {"negative_slope": 0.0}, {"negative_slope": 3.0}),
    "elu": ({"alpha": 0.5}, {"alpha": 2.0}, {"alpha": 0.25}),
    "celu": ({"alpha": 0.5}, {"alpha": 1.0}, {"alpha": 3.0}),
    "gelu": ({"approximate": False},),
}
