"""Registry entries of the derivatives of the elementwise activations.

For every activation case ``<id>`` (``tools/registry/activations.py``) there is
``grad:<id>``, its first derivative, and for the ones whose ``Op`` record holds a
second derivative ``grad2:<id>``; the references, float64 formulas and known
failures are those of the ``Op`` record.  A case's ``op`` and ``kwargs`` are those of
the activation; the tests differentiate the op with ``jax.grad``/``vjp``/``jvp``
and compare with the golden derivative.  ``extra`` holds ``order`` (1 or 2)
and ``of`` (the activation case id).  A new differentiable family plugs in
the same way: cases ``grad:<id>`` with a reference derivative (a closed form,
or ``reference.derivatives.numerical(forward_reference)``) and a float64
formula returning ``(y, amp, exact)`` (``reference.float64_derivatives``).

Inputs (``grad_inputs``): the shared golden inputs of bfloat16 and float16 (all
of them); for float32 and float64 a deterministic subset of the shared set
that keeps every special region: every ``_STRIDE[dtype]``-th input, plus every
non-finite input, zero, subnormal, neighbour of a kink and every input in the
tails ``TAILS[dtype]``, where derivatives underflow or saturate (26055 of the
104719 float32 inputs, 4001 of the 11087 float64 ones).  Each case
file stores the sha256 of its inputs (``inputs_sha256``), so a changed subset
rule is reported rather than compared against the wrong values.

Budgets (derivations beside each; never widened to make a test pass):

* float32 first derivatives: <= 2 ulp (the target; peers: jax's ``tanh'`` and
  ``sigmoid'`` are 0 in the tails, its ``elu'`` is 0 for x <= -7.64, its
  ``silu'`` is 1.1e7 ulp off at x = -88.09, its ``softplus'`` 8.25 ulp).  The
  implementation evaluates a cancellation-free float64 formula and rounds it
  once, so it is 0.5 ulp + 2**-29 except next to a zero of the derivative,
  where float64 cancellation leaves about ``2**-53 |T| / |f'|`` relative
  (``T`` the cancelling terms): <= 0.6 ulp for float32 inputs, whose nearest
  approach to such a zero is far above 2**-40.  Hence also >= 99.9 % correctly
  rounded.
* bfloat16, float16: <= 1 ulp everywhere and >= 99.9 % correctly rounded (the
  target; float64 value, round-to-odd, one rounding: correct unless within
  ~2**-50 of a midpoint).
* float64: <= 1 ulp and >= 99 % correctly rounded (the target): each
  derivative is a double-double formula (``impl/_act64.py``) rounded once, its
  factor ``exp`` applied as a power of two last so that a normal result never
  passes through a flushed subnormal; see ``_T64``.
* second derivatives: the same figures, for the same reason (each is one
  cancellation-free float64 formula rounded once; ``gelu''``'s ``2 - x^2`` and
  the brackets of ``silu''``, ``mish''`` and the tanh-form ``gelu''`` cancel
  only next to their zeros, as above).
"""

from __future__ import annotations

import hashlib

import numpy as np

from reference import FORMATS
from reference import fast as fast_tier
from reference import float64_derivatives as FD
from tools.inputs import KINKS

from . import Budget, Case
from . import activations as _act

_F32 = Budget(2.0, 99.9, "target <= 2 ulp; float64 formula rounded once: 0.5 ulp + 2**-29, "
                         "<= 0.6 ulp next to a zero of the derivative")
_B16 = Budget(1.0, 99.9, "target <= 1 ulp and >= 99.9 % correctly rounded (float64 value, round-to-odd, one rounding)")
_H16 = Budget(1.0, 99.9, "target <= 1 ulp and >= 99.9 % correctly rounded (float64 value, round-to-odd, one rounding)")
_T64 = ("target <= 1 ulp and >= 99 % correctly rounded: double-double formula (below ~2**-62 relative, "
        "cancellations included) rounded once; measured 0.5 ulp, 100 % correctly rounded on the golden inputs")
_EXACT64 = Budget(0.5, 100.0, "a comparison/select of constants: correctly rounded")


def _f64(known_failure=""):
    return Budget(1.0, 99.0, _T64, known_failure)


def _grad_case(o, base: Case, order: int) -> Case:
    cid = f"{'grad' if order == 1 else 'grad2'}:{base.id}"
    f64 = _EXACT64 if order in o.exact_float64 else _f64(o.known_failures.get(cid, ""))
    doc = f"{'first' if order == 1 else 'second'} derivative of {base.id} ({base.doc})"
    return Case(cid, base.op, base.kwargs, o.derivatives[order - 1], o.float64_derivatives[order - 1],
                {"float32": _F32, "bfloat16": _B16, "float16": _H16, "float64": f64}, "gradients", doc,
                (("order", order), ("of", base.id)))


def _cases(order):
    """The ``grad:``/``grad2:`` cases of every activation case whose op has a reference and a
    float64 formula of that order (the completeness test names an op that lacks them)."""
    ops = {o.name: o for o in _act.OPS}
    return [_grad_case(ops[c.op], c, order) for c in _act.CASES
            if len(ops[c.op].derivatives) >= order and len(ops[c.op].float64_derivatives) >= order]


CASES = _cases(1) + _cases(2)


SHARED_INPUTS = True  # golden_arrays receives the shared inputs; float32/float64 are subset

_STRIDE = {"float32": 8, "float64": 4}
# |x| in the tails, where the derivatives underflow or saturate: up to float32's
# exp range (e^-104 is below its subnormals) and float64's (e^-745)
TAILS = {"float32": (10.0, 110.0), "float64": (10.0, 800.0)}


def grad_inputs(dtype: str, xs: np.ndarray) -> np.ndarray:
    """Indices of the shared golden inputs ``xs`` of ``dtype`` that the derivative
    cases use (see module docstring): all of them for 16-bit formats."""
    n = xs.shape[0]
    if dtype not in _STRIDE:
        return np.arange(n)
    x = xs.astype(np.float64)
    fmt = FORMATS[dtype]
    a = np.abs(x)
    lo, hi = TAILS[dtype]
    keep = (np.arange(n) % _STRIDE[dtype] == 0) | ~np.isfinite(x) | ((a >= lo) & (a <= hi)) | (a < fmt.min_normal)
    eps = 2.0 ** (1 - fmt.p)
    for k in KINKS:  # (the neighbours of 0 are the subnormals, kept above)
        if k != 0:
            keep |= np.abs(x - k) <= 64 * eps * abs(k)
    return np.flatnonzero(keep)


def inputs_digest(x: np.ndarray) -> np.ndarray:
    """sha256 of the input values (their bytes), as 32 uint8."""
    return np.frombuffer(hashlib.sha256(np.ascontiguousarray(x).tobytes()).digest(), dtype=np.uint8).copy()


def golden_arrays(case, dtype, xs, fallback_map=map):
    """``{"rounded", "residual", "inputs_sha256"}`` on ``grad_inputs(dtype, xs)``, plus the
    number of results that needed mpmath.

    The float64 formula's ``exact`` entries are stored as they are (residual 0);
    the rest go through the fast tier with the per-element bound
    ``BOUND * (1 + amp)`` (``reference.float64_derivatives``), and mpmath where that
    cannot decide."""
    x = xs[grad_inputs(dtype, xs)]
    x64 = x.astype(np.float64)
    fmt = FORMATS[dtype]
    with np.errstate(all="ignore"):
        y, amp, exact = case.float64_formula(x64, **case.params)
    rounded = np.empty(x64.shape, dtype=np.float64)
    residual = np.zeros(x64.shape, dtype=np.int16)
    rounded[exact] = y[exact]
    rest = np.flatnonzero(~exact)
    y_rest = y[rest]
    r, q, n_fb = fast_tier.correctly_rounded_array(
        case.reference, lambda _x, **_p: y_rest, x64[rest], fmt, case.params, fallback_map,
        bound=FD.BOUND * (1.0 + amp[rest]))
    rounded[rest] = r
    residual[rest] = q
    return {"rounded": rounded.astype(x.dtype), "residual": residual, "inputs_sha256": inputs_digest(x)}, n_fb
