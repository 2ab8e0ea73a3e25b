"""The derivative conventions of docs/conventions.md, one small named test each.

Each test checks the implementation (``jax.grad``, float32 and float64) AND
the mpmath reference (``reference.derivatives``, every dtype) at the
convention's points, bitwise (the sign of a zero counts).  The golden tests
compare the same points too (the golden inputs hold every kink, ±0, ±inf and
nan); these tests say what the convention is when one of them fails.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mpmath

from reference import FORMATS, correctly_rounded, round_to_format
from reference import derivatives as RD
from reference.activations import SELU_ALPHA, SELU_SCALE
from tools.dtypes import DTYPES
from tools.registry import by_family
from tools.registry import op as op_record

from .helpers import NP_DTYPES, x64_for

# every test here differentiates the op under test (jax.grad), and checks a convention
pytestmark = [pytest.mark.jax_transforms, pytest.mark.convention]

# the implementation is checked in float32 (the path float16 and bfloat16 share:
# a float64 formula rounded once) and float64; the golden tests check every dtype
IMPL_DTYPES = ("float32", "float64")


def _impl_derivatives(fn, params, points, dtype, order):
    """``fn^(order)`` at ``points`` via ``vmap(grad)``, in ``dtype``, as float64 numpy.

    Run op by op (``jax.disable_jit``): the same derivative rules without an XLA
    compilation per op, dtype and order; the compiled path is measured at these
    same points by the golden tests."""
    f = functools.partial(fn, **params)
    d = jax.grad(f)
    if order == 2:
        d = jax.grad(d)
    with x64_for(dtype), jax.disable_jit():
        x = jnp.asarray(np.asarray(points, dtype=np.float64).astype(NP_DTYPES[dtype]), dtype=NP_DTYPES[dtype])
        return np.asarray(jax.vmap(d)(x)).astype(np.float64)


def _same(a, b):
    return (a == b and math.copysign(1, a) == math.copysign(1, b)) or (math.isnan(a) and math.isnan(b))


def _round(value, dtype):
    """``value`` (a float, or an ``mpf`` for values like 1/6) rounded to ``dtype``."""
    if isinstance(value, float) and (value == 0 or not math.isfinite(value)):
        return value
    return round_to_format(mpmath.mpf(value), FORMATS[dtype])[0]


def _check(impl_op, op, points, expected, order=1, **params):
    """The implementation in every dtype and the reference agree with ``expected``
    (rounded to the dtype) at ``points``."""
    ref_fn = getattr(RD, f"{'d' if order == 1 else 'd2'}_{op}")
    fn = impl_op(op)
    name = f"{op}{chr(8242) * order}"
    problems = []
    for dtype in DTYPES:
        got = _impl_derivatives(fn, params, points, dtype, order) if dtype in IMPL_DTYPES else [None] * len(points)
        for x, e, g in zip(points, expected, got):
            want = _round(e, dtype)
            ref, _ = correctly_rounded(ref_fn, x, FORMATS[dtype], params)
            if not _same(ref, want):
                problems.append(f"reference {name}({x!r}) in {dtype} = {ref!r}, the convention says {want!r}")
            if g is not None and not _same(float(g), want):
                problems.append(f"{name}({x!r}) in {dtype} (jax.grad, order {order}) differs from the contract's "
                                f"convention: expected {want!r}, got {float(g)!r}")
    assert not problems, "\n".join(problems) + (
        f"\n(docs/conventions.md; reproduce: pytest tests/test_derivative_conventions.py -k {op})")


def _exact(f):
    with mpmath.workprec(256):
        return f()


def test_relu_derivative_is_zero_at_zero(impl_op):
    _check(impl_op, "relu", [0.0, -0.0, 0.001, -0.001], [0.0, 0.0, 1.0, 0.0])


def test_leaky_relu_derivative_at_zero_is_negative_slope(impl_op):
    _check(impl_op, "leaky_relu", [0.0, -0.0, 0.001], [0.1, 0.1, 1.0], negative_slope=0.1)


def test_relu6_derivative_is_zero_at_both_kinks(impl_op):
    _check(impl_op, "relu6", [0.0, 6.0, 5.5, 6.5], [0.0, 0.0, 1.0, 0.0])


def test_hard_sigmoid_derivative_is_zero_at_both_kinks(impl_op):
    sixth = _exact(lambda: mpmath.mpf(1) / 6)
    _check(impl_op, "hard_sigmoid", [-3.0, 3.0, 2.5, -3.5], [0.0, 0.0, sixth, 0.0])


def test_hard_swish_derivative_is_zero_at_minus_3_and_one_at_3(impl_op):
    _check(impl_op, "hard_swish", [-3.0, 3.0, -1.5], [0.0, 1.0, 0.0])


def test_elu_derivatives_at_zero_are_alpha(impl_op):
    _check(impl_op, "elu", [0.0, -0.0], [1.0, 1.0])
    _check(impl_op, "elu", [0.0, -0.0], [1.0, 1.0], order=2)


def test_celu_derivatives_at_zero_are_one_and_one_over_alpha(impl_op):
    _check(impl_op, "celu", [0.0, -0.0], [1.0, 1.0], alpha=2.0)
    _check(impl_op, "celu", [0.0, -0.0], [0.5, 0.5], order=2, alpha=2.0)


def test_selu_derivatives_at_zero_are_scale_times_alpha(impl_op):
    sa = _exact(lambda: mpmath.mpf(SELU_SCALE) * mpmath.mpf(SELU_ALPHA))  # the exact product
    _check(impl_op, "selu", [0.0, -0.0], [sa, sa])
    _check(impl_op, "selu", [0.0, -0.0], [sa, sa], order=2)


def test_odd_second_derivatives_are_minus_sign_zero_at_signed_zero(impl_op):
    for op in ("tanh", "sigmoid", "softsign"):  # softsign'' jumps from 2 to -2 at 0
        _check(impl_op, op, [0.0, -0.0], [-0.0, 0.0], order=2)


ACT = by_family("activations")


@pytest.mark.parametrize("case", ACT, ids=[c.id for c in ACT])
def test_derivatives_at_infinity_are_the_limits_and_nan_propagates(case, impl_op):
    """At ±inf the derivative is its limit (never NaN; a limit 0 approached from
    below is -0), and NaN gives NaN, for the first and, where defined, the second
    derivative (float32; the golden tests cover every dtype)."""
    fn = impl_op(case.op)
    points = [math.inf, -math.inf, math.nan]
    problems = []
    for order, ref_fn in enumerate(op_record(case.op).derivatives, 1):
        got = _impl_derivatives(fn, case.params, points, "float32", order)
        name = f"{case.id}{chr(8242) * order}"
        for x, g in zip(points, got):
            want, _ = correctly_rounded(ref_fn, x, FORMATS["float32"], case.params)
            if math.isinf(x) and math.isnan(want):
                problems.append(f"reference {name}({x}) is NaN; the convention is the limit")
            if not _same(float(g), want):
                problems.append(f"{name}({x}) differs from the contract's convention: expected {want!r} "
                                f"({'the limit' if math.isinf(x) else 'NaN propagates'}), got {float(g)!r}")
    assert not problems, "\n".join(problems) + (
        f"\n(docs/conventions.md; reproduce: pytest tests/test_derivative_conventions.py -k '{case.id}')")


# the piecewise-constant ops of the 16-bit dtypes: (op, parameters, derivative inside, bounds)
_PIECEWISE = [
    ("relu", {}, 1.0, (0.0, math.inf)),
    ("leaky_relu", {"negative_slope": 0.01}, 1.0, (0.0, math.inf)),
    ("leaky_relu", {"negative_slope": 0.2}, 1.0, (0.0, math.inf)),
    ("leaky_relu", {"negative_slope": 1e-39}, 1.0, (0.0, math.inf)),  # a bfloat16 subnormal slope
    ("relu6", {}, 1.0, (0.0, 6.0)),
    ("hard_sigmoid", {}, 1.0 / 6.0, (-3.0, 3.0)),
    ("hard_tanh", {}, 1.0, (-1.0, 1.0)),
    ("hard_tanh", {"min_val": -0.3, "max_val": 0.7}, 1.0, (-0.3, 0.7)),
    ("hard_tanh", {"min_val": 0.0, "max_val": 70000.0}, 1.0, (0.0, 70000.0)),
    ("hard_tanh", {"min_val": -1e30, "max_val": 1e-45}, 1.0, (-1e30, 1e-45)),
    ("hard_tanh", {"min_val": -(2.0 ** -140), "max_val": 2.0 ** -133}, 1.0, (-(2.0 ** -140), 2.0 ** -133)),
    # a bound of 0, either sign: both zeros lie at or beyond it
    ("hard_tanh", {"min_val": -1.0, "max_val": 0.0}, 1.0, (-1.0, 0.0)),
    ("hard_tanh", {"min_val": -0.0, "max_val": 1.0}, 1.0, (-0.0, 1.0)),
    ("hard_tanh", {"min_val": -1e-40, "max_val": 0.0}, 1.0, (-1e-40, 0.0)),
]


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("op, params, inside, bounds", _PIECEWISE,
                         ids=[f"{op}{sorted(p.items())}" for op, p, _, _ in _PIECEWISE])
def test_piecewise_ops_on_every_16_bit_pattern(impl_op, op, params, inside, bounds, dtype):
    """relu', leaky_relu', relu6', hard_sigmoid', and hard_tanh with its derivative, on all 65536
    patterns of a 16-bit dtype, compiled (``jit``, ``jit(grad)``), bit for bit (the sign of a
    zero counts; NaN for NaN): the derivative is ``inside`` (rounded to the dtype) on the open
    interval ``bounds`` (``x > 0`` for relu and leaky_relu: positive subnormals and +inf
    included), else the slope (leaky_relu) or +0; hard_tanh is the bound, rounded, at and
    beyond each bound, else ``x`` itself (subnormals included: its exact value).  The expected
    values are exact comparisons of float64 numbers on the host; the bounds' roundings come
    from ``reference.round_to_format``.  The 16-bit dtypes take their own path (selects on the
    bit patterns), which the float32 checks above do not reach."""
    npdt = NP_DTYPES[dtype]
    x = np.arange(1 << 16, dtype=np.uint16).view(npdt)
    with np.errstate(invalid="ignore"):  # the signalling NaN patterns
        xs = x.astype(np.float64)
    fn = functools.partial(impl_op(op), **params)
    lo, hi = bounds
    below = _round(params.get("negative_slope", 0.0), dtype)
    inner = (xs > lo) & ((xs < hi) | (hi == math.inf))  # relu, leaky_relu: +inf is inside
    checks = [("derivative", jax.jit(jax.grad(lambda t: jnp.sum(fn(t).astype(jnp.float32)))),
               np.where(inner, _round(inside, dtype), below))]
    if op == "hard_tanh":
        checks.append(("value", jax.jit(fn), np.where(xs <= lo, _round(lo, dtype),
                                                       np.where(xs >= hi, _round(hi, dtype), xs))))
    for what, f, want in checks:
        got = np.asarray(f(jnp.asarray(x)))
        want = np.where(np.isnan(xs), np.nan, want).astype(npdt)
        same = (got.view(np.uint16) == want.view(np.uint16)) | (np.isnan(got) & np.isnan(want))
        bad = np.flatnonzero(~same)
        assert bad.size == 0, (f"{op} {what} in {dtype} ({params}): {bad.size} of 65536 patterns differ from the "
                               f"convention, first at x = {x[bad[0]]!r} (bits {int(x.view(np.uint16)[bad[0]]):#06x}): "
                               f"expected {want[bad[0]]!r}, got {got[bad[0]]!r} (docs/conventions.md; reproduce: "
                               f"pytest tests/test_derivative_conventions.py -k every_16_bit)")
