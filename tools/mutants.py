"""Deliberately broken variants of ``impl.functional``: what the conformance suite must catch.

Each variant is a namespace equal to ``impl.functional`` with ONE function
replaced by a plausible numerical or convention bug, the kind a reviewer
hunts for: a cancelling formula, a float32 intermediate, a lost sign of zero,
a derivative that is right in the middle and wrong in the tails, a default
that differs from the contract.  ``python -m tools.mutate`` runs the relevant
tests against each (``pytest --impl tools.mutants:VARIANTS.<name>``) and
reports which test caught it; a variant that passes is a hole in the suite,
to be closed with a test (never by editing the variant away).

Every variant declares ``CONFORMANCE_VARIANT_OF = "impl.functional"``: the
registry's known failures (measured on impl.functional, for the functions a
variant leaves untouched) then stay strict xfails, as for impl.functional.

A variant carries one bug.  The numerical variants (``@isolated``) return
impl.functional's own results at +-0, +-inf and nan, so that a careless
formula's incidental special-value slip (``2*sigmoid(2x)-1`` is +0 at -0)
cannot be what catches it: the suite must see the bug itself.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types

import jax
import jax.numpy as jnp
import numpy as np

import impl.functional as F
from impl.numerics import as_float_array
from impl.numerics import round_once as narrow

__all__ = ["Mutant", "MUTANTS", "VARIANTS", "by_name"]

_PUBLIC = {n: getattr(F, n) for n in dir(F) if not n.startswith("_") and callable(getattr(F, n))}


@dataclasses.dataclass(frozen=True)
class Mutant:
    name: str
    op: str  # the contract function it replaces
    bug: str  # what is wrong, in a reviewer's words
    fn: object

    @property
    def namespace(self):
        ns = types.SimpleNamespace(**_PUBLIC)
        setattr(ns, self.op, self.fn)
        ns.CONFORMANCE_VARIANT_OF = "impl.functional"
        ns.CONFORMANCE_PEER = f"impl.functional with a broken {self.op}: {self.bug}"
        return ns


MUTANTS: list[Mutant] = []


def mutant(op, bug):
    def register(fn):
        MUTANTS.append(Mutant(fn.__name__, op, bug, fn))
        return fn
    return register


def isolated(op):
    """The decorated variant of ``op``, with impl.functional's results at +-0, +-inf and nan."""
    def deco(fn):
        @functools.wraps(fn)
        def call(x, **kwargs):
            x = as_float_array(x)
            special = ~jnp.isfinite(x) | (x == 0)
            return jnp.where(special, getattr(F, op)(x, **kwargs), fn(x, **kwargs))
        return call
    return deco


def _f64(formula):
    """An op evaluated as ``formula`` in float64 and rounded once (``_in64``, the impl's own
    policy), so that the only bug is the formula's."""
    def op(x):
        return _in64(formula, x)
    return op


def _native(formula):
    """``formula`` evaluated in the input's own dtype (no float64 internals)."""
    def op(x):
        return formula(as_float_array(x))
    return op


def _with_jvp(value_fn, deriv_in_dtype):
    """``value_fn`` (correct) whose derivative is ``deriv_in_dtype(x, y)``, evaluated in x's dtype."""
    @jax.custom_jvp
    def op(x):
        return value_fn(x)

    @op.defjvp
    def _jvp(primals, tangents):
        (x,), (dx,) = primals, tangents
        y = value_fn(x)
        return y, deriv_in_dtype(x, y).astype(y.dtype) * dx

    def call(x):
        return op(as_float_array(x))
    return call


# ---- values: formulas ------------------------------------------------------------

@mutant("gelu", "0.5*x*(1+erf(x/sqrt2)): 1+erf cancels in the negative tail (even in float64)")
@isolated("gelu")
def gelu_one_plus_erf(x, approximate=False):
    if approximate:
        return F.gelu(x, approximate=True)
    # -inf handled as in impl, so that the cancellation is the only bug
    return _f64(lambda t: jnp.where(t == -jnp.inf, -0.0, 0.5 * t * (1.0 + jax.lax.erf(t / math.sqrt(2.0)))))(x)


@mutant("softplus", "log(1 + exp(x)) without log1p: 0 instead of exp(x) below x = -37 (in float64)")
@isolated("softplus")
def softplus_without_log1p(x):
    return _f64(lambda t: jnp.where(t > 30, t, jnp.log(1.0 + jnp.exp(t))))(x)


@mutant("elu", "alpha*(exp(x)-1) instead of expm1: cancels near 0")
@isolated("elu")
def elu_exp_minus_one(x, alpha=1.0):
    return _f64(lambda t: jnp.where(t > 0, t, alpha * (jnp.exp(jnp.minimum(t, 0.0)) - 1.0)))(x)


@mutant("tanh", "tanh as 2*sigmoid(2x)-1: cancels near 0")
@isolated("tanh")
def tanh_via_sigmoid(x):
    return _f64(lambda t: 2.0 / (1.0 + jnp.exp(-2.0 * t)) - 1.0)(x)


@mutant("log_sigmoid", "log(sigmoid(x)): -inf once sigmoid underflows (x < -745 in float64)")
@isolated("log_sigmoid")
def log_sigmoid_of_sigmoid(x):
    return _f64(lambda t: jnp.log(1.0 / (1.0 + jnp.exp(-t))))(x)


@mutant("celu", "alpha*expm1(x) instead of alpha*expm1(x/alpha): the parameter convention of elu")
@isolated("celu")
def celu_elu_convention(x, alpha=1.0):
    return _f64(lambda t: jnp.where(t > 0, t, alpha * jnp.expm1(jnp.minimum(t, 0.0))))(x)


@mutant("selu", "scale and alpha rounded to float32 (1.0507010 and 1.6732632)")
@isolated("selu")
def selu_float32_constants(x):
    scale, alpha = float(np.float32(1.0507009873554804934)), float(np.float32(1.6732632423543772848))
    return _f64(lambda t: scale * jnp.where(t > 0, t, alpha * jnp.expm1(jnp.minimum(t, 0.0))))(x)


@mutant("gelu", "tanh form with 0.0447 for 0.044715 (a truncated constant)")
@isolated("gelu")
def gelu_truncated_constant(x, approximate=False):
    if not approximate:
        return F.gelu(x)
    c = math.sqrt(2.0 / math.pi)
    return _f64(lambda t: 0.5 * t * (1.0 + jnp.tanh(c * (t + 0.0447 * t * t * t))))(x)


# ---- values: precision -----------------------------------------------------------

@mutant("sigmoid", "1/(1+exp(-x)) in float32 (and in the input's dtype below it)")
@isolated("sigmoid")
def sigmoid_float32(x):
    def f(t):
        w = t.astype(jnp.promote_types(t.dtype, jnp.float32))
        return (1.0 / (1.0 + jnp.exp(-w))).astype(t.dtype)
    return _native(f)(x)


@mutant("silu", "float32 internals instead of float64 for float16/bfloat16/float32 inputs")
@isolated("silu")
def silu_float32_internals(x):
    def f(t):
        if t.dtype == jnp.float64:
            return F.silu(t)
        w = t.astype(jnp.float32)
        return (w / (1.0 + jnp.exp(-w))).astype(t.dtype)
    return _native(f)(x)


@mutant("mish", "x*tanh(softplus(x)) in the input's dtype")
@isolated("mish")
def mish_native(x):
    return _native(lambda t: t * jnp.tanh(jax.nn.softplus(t)))(x)


@mutant("leaky_relu", "negative_slope rounded to float32 before the (otherwise exact) product")
@isolated("leaky_relu")
def leaky_relu_float32_slope(x, negative_slope=0.01):
    s = float(np.float32(negative_slope))
    return _f64(lambda t: jnp.where(jnp.signbit(t), t * s, t))(x)


@mutant("sigmoid", "float64 -> float16/bfloat16 by plain astype: rounds twice (through float32), no round-to-odd")
@isolated("sigmoid")
def sigmoid_double_rounding(x):
    x = as_float_array(x)
    if x.dtype not in (jnp.float16, jnp.bfloat16):
        return F.sigmoid(x)
    with jax.enable_x64(True):
        return (1.0 / (1.0 + jnp.exp(-x.astype(jnp.float64)))).astype(x.dtype)


# ---- special values and signs of zero ---------------------------------------------

@mutant("gelu", "gelu(-inf) = nan: -inf * erfc(+inf) = -inf * 0")
def gelu_nan_at_minus_inf(x, approximate=False):
    if approximate:
        return F.gelu(x, approximate=True)
    return _f64(lambda t: 0.5 * t * jax.lax.erfc(-t / math.sqrt(2.0)))(x)


@mutant("tanh", "a zero shortcut returning +0: tanh(-0) = +0")
def tanh_positive_zero(x):
    x = as_float_array(x)
    return jnp.where(x == 0, jnp.zeros_like(x), F.tanh(x))


@mutant("hard_swish", "+0 instead of -0 for x <= -3 (x * 0 written as a literal 0)")
def hard_swish_positive_zero(x):
    x = as_float_array(x)
    return jnp.where(x <= -3, jnp.zeros_like(x), F.hard_swish(x))


@mutant("softsign", "x/(1+|x|) without the infinity case: nan at +-inf")
def softsign_nan_at_inf(x):
    return _f64(lambda t: t / (1.0 + jnp.abs(t)))(x)


@mutant("relu6", "where(x > 0, min(x, 6), 0): nan becomes 0")
def relu6_nan_to_zero(x):
    return _native(lambda t: jnp.where(t > 0, jnp.minimum(t, 6.0), 0.0).astype(t.dtype))(x)


@mutant("leaky_relu", "select on x < 0 instead of the sign bit: a subnormal negative input read as zero "
                      "(DAZ) passes through unscaled")
def leaky_relu_compare_not_signbit(x, negative_slope=0.01):
    x = as_float_array(x)
    return jnp.where(x < 0, F.leaky_relu(x, negative_slope=negative_slope), x)


# ---- conventions and the contract ---------------------------------------------------

@mutant("gelu", "default approximate=True (jax.nn's default) instead of the contract's False")
def gelu_default_approximate(x, approximate=True):
    return F.gelu(x, approximate=approximate)


@mutant("leaky_relu", "default negative_slope=0.1 (the tutorial's value) instead of the contract's 0.01")
def leaky_relu_default_slope(x, negative_slope=0.1):
    return F.leaky_relu(x, negative_slope=negative_slope)


@mutant("elu", "ignores alpha (always 1)")
def elu_ignores_alpha(x, alpha=1.0):
    return F.elu(x)


@mutant("sigmoid", "returns float32 for float16/bfloat16 inputs (forgot the final rounding)")
def sigmoid_promotes(x):
    x = as_float_array(x)
    return F.sigmoid(x).astype(jnp.promote_types(x.dtype, jnp.float32))


@mutant("softplus", "scalars come back with shape (1,)")
def softplus_scalar_shape(x):
    return jnp.atleast_1d(F.softplus(x))


@mutant("gelu", "switches jax_enable_x64 on globally (jax.config.update) instead of the local context")
def gelu_global_x64(x, approximate=False):
    jax.config.update("jax_enable_x64", True)
    return F.gelu(x, approximate=approximate)


@mutant("silu", "a round trip through the host (np.asarray): right values, not traceable by jit/vmap/grad")
def silu_on_host(x):
    return jnp.asarray(np.asarray(F.silu(x)))


# ---- derivatives: a correct value with a wrong derivative (custom_jvp) ---------------

@mutant("tanh", "derivative 1 - tanh(x)**2 in the input's dtype: 0 instead of sech^2 in the tails")
@isolated("tanh")
def tanh_grad_one_minus_square(x):
    return _with_jvp(F.tanh, lambda x, y: 1 - y * y)(x)


@mutant("sigmoid", "derivative s*(1-s) in the input's dtype: 0 instead of e^-x for large x")
@isolated("sigmoid")
def sigmoid_grad_s_one_minus_s(x):
    return _with_jvp(F.sigmoid, lambda x, y: y * (1 - y))(x)


@mutant("relu", "relu'(0) = 1 (the convention is relu'(0) = 0)")
def relu_grad_at_zero(x):
    return _with_jvp(F.relu, lambda x, y: jnp.where(x >= 0, 1.0, 0.0))(x)


# ---- softmax and normalization -----------------------------------------------------

def _in64(fn, x, *params):
    """``fn(x64, *params64)`` in float64, rounded once to x's dtype (the impl's own policy)."""
    x = as_float_array(x)
    with jax.enable_x64(True):
        ps = [None if p is None else jnp.asarray(p).astype(jnp.float64) for p in params]
        y = fn(x.astype(jnp.float64), *ps)
        return y if x.dtype == jnp.float64 else narrow(y, x.dtype)


def _finite_rows(op, mutated):
    """Rows (along ``axis``) holding a non-finite logit get impl's result: the variant's
    bug is then only what it does to finite logits."""
    def call(x, axis=-1):
        x = as_float_array(x)
        ok = jnp.all(jnp.isfinite(x), axis=axis, keepdims=True)
        return jnp.where(ok, mutated(x, axis), getattr(F, op)(x, axis=axis))
    return call


@mutant("softmax", "exp(x) / sum(exp(x)) without subtracting the maximum: overflows for logits > 709 (float64)")
def softmax_without_max(x, axis=-1):
    def f(t, axis):
        return _in64(lambda u: jnp.exp(u) / jnp.sum(jnp.exp(u), axis=axis, keepdims=True), t)
    return _finite_rows("softmax", f)(x, axis)


@mutant("log_softmax", "log(softmax(x)): -inf where the probability underflows")
def log_softmax_of_softmax(x, axis=-1):
    def f(t, axis):
        return _in64(lambda u: jnp.log(jax.nn.softmax(u, axis=axis)), t)
    return _finite_rows("log_softmax", f)(x, axis)


def _norm_rows(t, axes, eps, w, b, variance):
    m = jnp.mean(t, axis=axes, keepdims=True)
    y = (t - m) / jnp.sqrt(variance(t, m, axes) + eps)
    y = y if w is None else y * w
    return y if b is None else y + b


def _two_pass(t, m, axes):
    return jnp.mean((t - m) ** 2, axis=axes, keepdims=True)


@mutant("layer_norm", "variance as E[x^2] - E[x]^2 (in float64): cancels at large mean offsets")
def layer_norm_fast_variance(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    axes = tuple(range(-len(ns), 0))
    fast = lambda t, m, a: jnp.mean(t * t, axis=a, keepdims=True) - m * m  # noqa: E731
    return _in64(lambda t, w, b: _norm_rows(t, axes, eps, w, b, fast), x, weight, bias)


@mutant("layer_norm", "eps outside the square root: (x - mean) / (sqrt(var) + eps)")
def layer_norm_eps_outside_sqrt(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    axes = tuple(range(-len(ns), 0))

    def f(t, w, b):
        m = jnp.mean(t, axis=axes, keepdims=True)
        d = t - m
        y = d / (jnp.sqrt(_two_pass(t, m, axes)) + eps)
        y = jnp.where(d == 0, 0.0, y)  # a constant row still gives exactly 0 (then bias)
        y = y if w is None else y * w
        return y if b is None else y + b
    return _in64(f, x, weight, bias)


@mutant("layer_norm", "float32 internals (two-pass) instead of float64")
def layer_norm_float32_internals(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    x = as_float_array(x)
    if x.dtype == jnp.float64:
        return F.layer_norm(x, normalized_shape, weight, bias, eps=eps)
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    axes = tuple(range(-len(ns), 0))
    t = x.astype(jnp.float32)
    w = None if weight is None else jnp.asarray(weight, jnp.float32)
    b = None if bias is None else jnp.asarray(bias, jnp.float32)
    return _norm_rows(t, axes, eps, w, b, _two_pass).astype(x.dtype)


@mutant("rms_norm", "eps outside the square root: x / (sqrt(mean(x^2)) + eps)")
def rms_norm_eps_outside_sqrt(x, normalized_shape, weight=None, eps=1e-6):
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    axes = tuple(range(-len(ns), 0))

    def f(t, w):
        r = jnp.sqrt(jnp.mean(t * t, axis=axes, keepdims=True))
        y = jnp.where(t == 0, 0.0, t / (r + eps))
        return y if w is None else y * w
    return _in64(f, x, weight)


@mutant("group_norm", "channels assigned to groups round-robin (c % G) instead of contiguously")
def group_norm_strided_groups(x, num_groups, weight=None, bias=None, eps=1e-5):
    x = as_float_array(x)
    C, G = x.shape[-1], int(num_groups)
    perm = np.argsort(np.arange(C) % G, kind="stable")  # channels of group g, gathered together
    inv = np.argsort(perm)
    w = None if weight is None else jnp.asarray(weight)[perm]
    b = None if bias is None else jnp.asarray(bias)[perm]
    return F.group_norm(x[..., perm], G, w, b, eps=eps)[..., inv]


@mutant("instance_norm", "the batch axis included in the statistics (a batch norm per sample)")
def instance_norm_over_batch(x, weight=None, bias=None, eps=1e-5):
    x = as_float_array(x)
    axes = tuple(range(0, x.ndim - 1))
    return _in64(lambda t, w, b: _norm_rows(t, axes, eps, w, b, _two_pass), x, weight, bias)


@mutant("batch_norm", "momentum convention swapped: new = momentum * old + (1 - momentum) * batch")
def batch_norm_momentum_swapped(x, running_mean, running_var, weight=None, bias=None, *, training=False,
                                momentum=0.1, eps=1e-5, axis_name=None):
    return F.batch_norm(x, running_mean, running_var, weight, bias, training=training, momentum=1.0 - momentum,
                        eps=eps, axis_name=axis_name)


@mutant("batch_norm", "running variance updated with the biased batch variance")
def batch_norm_biased_running_var(x, running_mean, running_var, weight=None, bias=None, *, training=False,
                                  momentum=0.1, eps=1e-5, axis_name=None):
    y, rm, rv = F.batch_norm(x, running_mean, running_var, weight, bias, training=training, momentum=momentum,
                             eps=eps, axis_name=axis_name)
    if not training or rv is None:
        return y, rm, rv
    x = as_float_array(x)
    with jax.enable_x64(True):
        t = x.astype(jnp.float64)
        var = jnp.var(t, axis=tuple(range(x.ndim - 1)))
        rv = ((1.0 - momentum) * jnp.asarray(running_var).astype(jnp.float64) + momentum * var)
        rv = narrow(rv, jnp.asarray(running_var).dtype) if jnp.asarray(running_var).dtype != jnp.float64 else rv
    return y, rm, rv


def by_name(name: str) -> Mutant:
    for m in MUTANTS:
        if m.name == name:
            return m
    raise KeyError(f"no mutant {name!r}; known: {', '.join(m.name for m in MUTANTS)}")


def _check_names():
    names = [m.name for m in MUTANTS]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise RuntimeError(f"duplicate mutant names: {sorted(dup)}")


_check_names()

# ``pytest --impl tools.mutants:VARIANTS.<name>``
VARIANTS = types.SimpleNamespace(**{m.name: m.namespace for m in MUTANTS})
