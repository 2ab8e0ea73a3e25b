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
  evaluation rounded once); a measured shortfall is recorded in the op's
  ``known_failures`` (none today).

``OPS`` holds one ``Op`` record per activation (``tools.registry.Op``): references,
golden settings, special values, kinks, sweeps, properties, known failures (of the
values here and of the derivatives of ``tools/registry/gradients.py``), layer class.
"""

from __future__ import annotations

import numpy as np

from reference import FORMATS
from reference import activations as R
from reference import derivatives as RD
from reference import fast as fast_tier
from reference import float64 as F64
from reference import float64_derivatives as FD

from . import Budget, Case, Op

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
# No op has a float64 known failure (issue #19).
_EXACT64 = Budget(0.5, 100.0, "a comparison/select, or one rounded product/quotient: correctly rounded")
_T64 = ("target <= 1 ulp and >= 99 % correctly rounded: double-double evaluation (below ~2**-62 relative) "
        "rounded once; measured 0.5 ulp, 100 % correctly rounded on the golden inputs")


def _f64(known_failure=""):
    return Budget(1.0, 99.0, _T64, known_failure)


# Special values (tokens of ``tools.special_values.resolve``): odd-at-zero functions keep the sign of zero.
_NAN = "nan"
_SAT_ODD = {"-0": -0.0, "0": 0.0, "nan": _NAN}


def _op(name, *settings, exact_float64=(), known_failures=None, **fields):
    """The ``Op`` record of the activation ``name``: its references are the functions of that
    name in ``reference.activations``/``float64`` and ``d_<name>``/``d2_<name>`` in
    ``reference.derivatives`` (``<name>``/``<name>2`` in ``float64_derivatives``); a missing one
    is left out, and the completeness test names it."""
    second = fields.pop("second_order", False)
    derivatives = tuple(f for f in (getattr(RD, f"d_{name}", None), getattr(RD, f"d2_{name}", None))[:1 + second]
                        if f is not None)
    formulas = tuple(f for f in (getattr(FD, name, None), getattr(FD, f"{name}2", None))[:1 + second]
                     if f is not None)
    return Op(name, "activations", getattr(R, name, None), getattr(F64, name, None),
              settings=settings or (({}, ""),), derivatives=derivatives, float64_derivatives=formulas,
              exact_float64=exact_float64, known_failures=known_failures or {}, docs="docs/conventions.md",
              **fields)


_MONO, _ODD = frozenset({"monotone"}), frozenset({"monotone", "odd"})

OPS = [
    _op("relu", ({}, "max(x, 0)"), exact_float64=(0, 1), kinks=(0.0,), layer="ReLU", properties=_MONO,
        special_values={"relu": {"-inf": 0.0, "-max": 0.0, "-tiny": 0.0, "-0": 0.0, "0": 0.0, "tiny": "x",
                                 "max": "x", "inf": "inf", "nan": _NAN, "-1": 0.0, "1": 1.0}}),
    _op("relu6", ({}, "min(max(x, 0), 6)"), exact_float64=(0, 1), kinks=(0.0, 6.0), layer="ReLU6",
        properties=_MONO,
        special_values={"relu6": {"-inf": 0.0, "-max": 0.0, "-0": 0.0, "0": 0.0, "6": 6.0, "max": 6.0, "inf": 6.0,
                                  "nan": _NAN, "-tiny": 0.0}}),
    _op("leaky_relu", ({"negative_slope": 0.01}, "default slope 0.01"),
        ({"negative_slope": 0.1}, "the tutorial's slope 0.1"), exact_float64=(0, 1), kinks=(0.0,),
        layer="LeakyReLU", properties=_MONO,
        sweeps=({"negative_slope": 0.2}, {"negative_slope": 0.0}, {"negative_slope": 3.0}),
        special_values={f"leaky_relu[negative_slope={s}]": {"-inf": "-inf", "-0": -0.0, "0": 0.0, "inf": "inf",
                                                            "max": "x", "nan": _NAN, "-tiny": -0.0, "tiny": "x"}
                        for s in (0.01, 0.1)}),
    _op("elu", ({}, "alpha * expm1(x) for x <= 0"), second_order=True, kinks=(0.0,), layer="ELU",
        properties=_MONO, sweeps=({"alpha": 0.5}, {"alpha": 2.0}, {"alpha": 0.25}),
        special_values={"elu": {"-inf": -1.0, "-max": -1.0, **_SAT_ODD, "inf": "inf", "max": "x", "tiny": "x",
                                "-tiny": "x"}}),
    _op("celu", ({"alpha": 2.0}, "alpha * expm1(x / alpha) for x <= 0"), second_order=True, kinks=(0.0,),
        layer="CELU", properties=_MONO, sweeps=({"alpha": 0.5}, {"alpha": 1.0}, {"alpha": 3.0}),
        special_values={"celu[alpha=2.0]": {"-inf": -2.0, "-max": -2.0, **_SAT_ODD, "inf": "inf", "max": "x",
                                            "tiny": "x"}}),
    _op("selu", ({}, "scale * alpha * expm1(x) for x <= 0"), second_order=True, kinks=(0.0,), layer="SELU",
        properties=_MONO,
        special_values={"selu": {**_SAT_ODD, "inf": "inf", "max": "inf", "-inf": "selu(-inf)"}}),
    _op("gelu", ({}, "x/2 erfc(-x/sqrt 2)"), ({"approximate": True}, "tanh form with 0.044715"),
        second_order=True, layer="GELU", sweeps=({"approximate": False},),
        special_values={cid: {"-inf": -0.0, "-max": -0.0, **_SAT_ODD, "inf": "inf", "max": "x"}
                        for cid in ("gelu", "gelu[approximate=True]")}),
    _op("silu", ({}, "x / (1 + exp(-x))"), second_order=True, layer="SiLU",
        special_values={"silu": {"-inf": -0.0, "-max": -0.0, **_SAT_ODD, "inf": "inf", "max": "x"}}),
    _op("mish", ({}, "x tanh(softplus(x))"), second_order=True, layer="Mish",
        special_values={"mish": {"-inf": -0.0, "-max": -0.0, **_SAT_ODD, "inf": "inf", "max": "x"}}),
    _op("sigmoid", ({}, "1 / (1 + exp(-x))"), second_order=True, layer="Sigmoid", properties=_MONO,
        special_values={"sigmoid": {"-inf": 0.0, "-max": 0.0, "-0": 0.5, "0": 0.5, "tiny": 0.5, "-tiny": 0.5,
                                    "inf": 1.0, "max": 1.0, "nan": _NAN}}),
    _op("log_sigmoid", ({}, "-log1p(exp(-x))"), second_order=True, layer="LogSigmoid", properties=_MONO,
        special_values={"log_sigmoid": {"-inf": "-inf", "-max": "x", "inf": -0.0, "max": -0.0, "0": "-ln2",
                                        "-0": "-ln2", "nan": _NAN}}),
    _op("tanh", ({}, "tanh"), second_order=True, layer="Tanh", properties=_ODD,
        special_values={"tanh": {"-inf": -1.0, "-max": -1.0, **_SAT_ODD, "inf": 1.0, "max": 1.0, "tiny": "x",
                                 "-tiny": "x"}}),
    _op("softplus", ({}, "log1p(exp(x))"), second_order=True, layer="Softplus", properties=_MONO,
        special_values={"softplus": {"-inf": 0.0, "-max": 0.0, "inf": "inf", "max": "x", "0": "ln2", "-0": "ln2",
                                     "nan": _NAN}}),
    _op("hard_sigmoid", ({}, "relu6(x + 3) / 6"), exact_float64=(1,), kinks=(-3.0, 3.0), layer="Hardsigmoid",
        properties=_MONO,
        special_values={"hard_sigmoid": {"-inf": 0.0, "-max": 0.0, "-3": 0.0, "-0": 0.5, "0": 0.5, "3": 1.0,
                                         "max": 1.0, "inf": 1.0, "nan": _NAN}}),
    _op("hard_swish", ({}, "x relu6(x + 3) / 6"), kinks=(-3.0, 3.0), layer="Hardswish",
        special_values={"hard_swish": {"-inf": -0.0, "-max": -0.0, "-3": -0.0, **_SAT_ODD, "3": 3.0, "max": "x",
                                       "inf": "inf"}}),
    _op("softsign", ({}, "x / (1 + |x|)"), kinks=(0.0,), layer="Softsign", properties=_ODD,
        special_values={"softsign": {"-inf": -1.0, "-max": -1.0, **_SAT_ODD, "inf": 1.0, "max": 1.0}}),
    _op("hard_tanh", ({}, "min(max(x, -1), 1)"), exact_float64=(0, 1), kinks=(-1.0, 1.0), layer="Hardtanh",
        properties=_ODD,
        sweeps=({"min_val": -2.0, "max_val": 2.0}, {"min_val": 0.0, "max_val": 6.0},
                {"min_val": -0.1, "max_val": 0.25}),
        special_values={"hard_tanh": {"-inf": -1.0, "-max": -1.0, "-1": -1.0, **_SAT_ODD, "tiny": "x", "-tiny": "x",
                                      "1": 1.0, "max": 1.0, "inf": 1.0}}),
]


def _budgets(f64: Budget):
    return {"float32": _F32, "bfloat16": _B16, "float16": _H16, "float64": f64}


def _case(o: Op, params: dict, doc: str) -> Case:
    cid = o.case_id(params)
    f64 = _EXACT64 if 0 in o.exact_float64 else _f64(o.known_failures.get(cid, ""))
    return Case(cid, o.name, tuple(sorted(params.items())), o.reference, o.float64, _budgets(f64), "activations",
                doc)


CASES = [_case(o, params, doc) for o in OPS for params, doc in o.settings]


SHARED_INPUTS = True  # the cases of this family use golden/inputs/<dtype>.npy


def golden_arrays(case, dtype, xs, fallback_map=map):
    """``{"rounded", "residual"}`` for the shared inputs ``xs`` of ``dtype``, plus the
    number of results that needed mpmath (the rest came from the fast tier)."""
    bound, _ = F64.relative_bound(case.op, case.params)
    rounded, residual, n_fb = fast_tier.correctly_rounded_array(
        case.reference, case.float64_formula, xs.astype(np.float64), FORMATS[dtype], case.params, fallback_map,
        bound=bound)
    return {"rounded": rounded.astype(xs.dtype), "residual": residual}, n_fb


# Parameter values the golden cases above do not hold (``Op.sweeps``): tests/test_parameters.py checks
# each op at these against live mpmath (float32 and bfloat16, the op's budgets), so an implementation
# that ignores or mis-scales a parameter (elu's alpha is 1.0 in every golden case) is caught.
PARAMETER_SWEEPS = {o.name: o.sweeps for o in OPS if o.sweeps}
