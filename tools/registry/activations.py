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

from vetted_layers_suite import contract

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


def _op(name, golden, *, exact=(), second_order=False, special=None, known_failures=None, rejects=(),
        **fields):
    """The ``Op`` record of the activation ``name`` from the contract's ``checks(name)``: its
    references are the functions of that name in ``reference.activations``/``float64`` and
    ``d_<name>``/``d2_<name>`` in ``reference.derivatives`` (``<name>``/``<name>2`` in
    ``float64_derivatives``); a missing one is left out, and the completeness tests name it
    (a missing second derivative of an op with ``second_order`` too).
    The special values hold for every golden parameter set; ``rejects`` are impl's input rules
    (tests/input_rules.py), not part of the record."""
    derivatives = tuple(f for f in (getattr(RD, f"d_{name}", None), getattr(RD, f"d2_{name}", None))[:1 + second_order]
                        if f is not None)
    formulas = tuple(f for f in (getattr(FD, name, None), getattr(FD, f"{name}2", None))[:1 + second_order]
                     if f is not None)
    probe = Op(name, "activations", None, None)
    return Op(name, "activations", getattr(R, name, None), getattr(F64, name, None),
              settings=tuple(golden) or (({}, ""),), derivatives=derivatives, float64_derivatives=formulas,
              exact_float64=exact, known_failures=known_failures or {}, docs="docs/conventions.md",
              special_values={probe.case_id(params): dict(special) for params, _ in golden} if special else {},
              **fields)


# Measured shortfalls (case id -> figure and reason, a strict xfail), by op: none today.
KNOWN_FAILURES: dict = {}

# One record per activation of the contract, built from its ``@_checked`` data
# (vetted_layers_suite/contract.py): adding an activation adds nothing here.
OPS = [_op(name, known_failures=KNOWN_FAILURES.get(name), **contract.checks(name)) for name in contract.ACTIVATIONS]


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
