"""Elementwise activations, accurate to the last bit.

Every op is a chain ``[f, f', f'', ...]`` of float64 formulas written without
cancellation.  The value is ``f`` evaluated in float64 and rounded once to the
input dtype (``_core.in_float64``); its JVP is ``f'`` evaluated the same way (a
``jax.custom_jvp``), whose JVP is ``f''``, and so on; past the last closed
form, JAX differentiates the float64 formula itself.  So ``jax.grad`` gets a
derivative that is as accurate as the value (``tanh'`` is ``sech**2`` computed as
``4t/(1+t)**2`` with ``t = exp(-2|x|)``, never ``1 - tanh**2``, and is not 0 in
the tails).  NaN inputs give NaN values and NaN derivatives.

Derivatives at kinks (``docs/conventions.md``): ``relu'(0) = 0``;
``leaky_relu'(0) = negative_slope`` (the left derivative, as for relu);
``relu6'`` is 0 at 0 and at 6; ``hard_sigmoid'`` is 0 at -3 and 3;
``hard_swish'`` is 0 at -3 and 1 at 3; ``elu'(0) = alpha``, ``celu'(0) = 1``,
``selu'(0) = scale * alpha`` (the x <= 0 branch, as in PyTorch).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from ._core import as_float_array, check_finite_param, in_float64

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_SQRT_HALF = 0.70710678118654752440  # 1/sqrt(2), binary64
_INV_SQRT_2PI = 0.39894228040143267794  # 1/sqrt(2 pi), binary64
_SQRT_2_OVER_PI = 0.79788456080286535588  # sqrt(2/pi), binary64
_GELU_C = 0.044715


def _keep_nan(formula):
    def f(t, *params):
        return jnp.where(jnp.isnan(t), t, formula(t, *params))
    return f


def _chain(*formulas):
    """An op from float64 formulas ``[f, f', f'', ...]`` (see module docstring)."""
    first = _keep_nan(formulas[0])
    if len(formulas) == 1:
        def op(x, params):
            return in_float64(lambda t: first(t, *params), x)
        return op
    deriv = _chain(*formulas[1:])

    @functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
    def op(x, params):
        return in_float64(lambda t: first(t, *params), x)

    @op.defjvp
    def _jvp(params, primals, tangents):
        (x,), (dx,) = primals, tangents
        return op(x, params), deriv(x, params) * dx

    return op


def _split26(c: float):
    """``c = hi + lo`` with ``hi`` on 26 significant bits (a Python-side Veltkamp split)."""
    m, e = math.frexp(c)
    hi = math.ldexp(math.floor(math.ldexp(m, 26)), e - 26)
    return hi, c - hi


def _two_product_narrow(t, c: float):
    """``t * c = hi + lo`` exactly, for ``t`` with at most 24 significant bits (a float32,
    bfloat16 or float16 value in float64): both partial products are exact in
    float64 and TwoSum adds them without error."""
    c_hi, c_lo = _split26(c)
    a, b = t * c_hi, t * c_lo
    hi = a + b
    bb = hi - a
    lo = (a - (hi - bb)) + (b - bb)
    return hi, lo


def _round_to_odd_f64(hi, lo):
    """``hi`` with its last bit forced odd toward ``lo`` when ``lo != 0``: the
    round-to-odd of ``hi + lo``, which the later float32 rounding (or round-to-odd
    and float16/bfloat16 rounding) turns into one correct rounding."""
    bits = jax.lax.bitcast_convert_type(hi, jnp.uint64)
    even = (bits & 1) == 0
    toward_bigger = (lo > 0) == (hi > 0)
    step = jnp.where(toward_bigger, jnp.uint64(1), jnp.uint64(0xFFFFFFFFFFFFFFFF))
    fix = (lo != 0) & even & jnp.isfinite(hi) & (hi != 0)
    return jax.lax.bitcast_convert_type(jnp.where(fix, bits + step, bits), jnp.float64)


def _sig(t):
    """sigmoid in float64: 1/(1+exp(-t)); exp overflow gives the right limit 0."""
    return 1.0 / (1.0 + jnp.exp(-t))


def _sech2(t):
    e = jnp.exp(-2.0 * jnp.abs(t))
    return 4.0 * e / ((1.0 + e) * (1.0 + e))


def _zero(t, *p):
    return jnp.zeros_like(t)


# ---- the formulas (float64 in, float64 out) -------------------------------------

_RELU = _chain(lambda t: jnp.where(t > 0, t, 0.0),
               lambda t: jnp.where(t > 0, 1.0, 0.0), _zero)
_RELU6 = _chain(lambda t: jnp.where(t > 0, jnp.minimum(t, 6.0), 0.0),
                lambda t: jnp.where((t > 0) & (t < 6), 1.0, 0.0), _zero)
def _leaky_f(t, s, narrow_input):
    # select on the sign bit: a comparison would see a subnormal input as 0 on
    # devices that treat subnormal inputs as zero, and pass it through unscaled
    neg = jnp.signbit(t)
    if narrow_input:
        hi, lo = _two_product_narrow(t, s)
        return jnp.where(neg, _round_to_odd_f64(hi, lo), t)
    return jnp.where(neg, t * s, t)  # float64 input: one rounding of the product


_LEAKY = _chain(_leaky_f, lambda t, s, n: jnp.where(t > 0, 1.0, s), _zero)


def _elu_f(t, a):
    return jnp.where(t > 0, t, a * jnp.expm1(jnp.minimum(t, 0.0)))


_ELU = _chain(_elu_f,
              lambda t, a: jnp.where(t > 0, 1.0, a * jnp.exp(jnp.minimum(t, 0.0))),
              lambda t, a: jnp.where(t > 0, 0.0, a * jnp.exp(jnp.minimum(t, 0.0))))
_CELU = _chain(lambda t, a: jnp.where(t > 0, t, a * jnp.expm1(jnp.minimum(t, 0.0) / a)),
               lambda t, a: jnp.where(t > 0, 1.0, jnp.exp(jnp.minimum(t, 0.0) / a)),
               lambda t, a: jnp.where(t > 0, 0.0, jnp.exp(jnp.minimum(t, 0.0) / a) / a))
_SELU = _chain(lambda t: SELU_SCALE * _elu_f(t, SELU_ALPHA),
               lambda t: jnp.where(t > 0, SELU_SCALE, (SELU_SCALE * SELU_ALPHA) * jnp.exp(jnp.minimum(t, 0.0))),
               lambda t: jnp.where(t > 0, 0.0, (SELU_SCALE * SELU_ALPHA) * jnp.exp(jnp.minimum(t, 0.0))))


def _phi(t):
    return _INV_SQRT_2PI * jnp.exp(-0.5 * t * t)


def _gelu_f(t):
    y = 0.5 * t * jax.lax.erfc(-t * _SQRT_HALF)
    return jnp.where(t == -jnp.inf, -0.0, y)


def _gelu_d1(t):
    d = 0.5 * jax.lax.erfc(-t * _SQRT_HALF) + t * _phi(t)
    return jnp.where(jnp.isinf(t), jnp.where(t > 0, 1.0, 0.0), d)


def _gelu_d2(t):
    return jnp.where(jnp.isinf(t), 0.0, _phi(t) * (2.0 - t * t))


_GELU = _chain(_gelu_f, _gelu_d1, _gelu_d2)


def _gelu_tanh_u2(t):
    """2u = 2 sqrt(2/pi) (t + c t^3), with t clamped so t^3 cannot overflow."""
    tc = jnp.clip(t, -1e100, 1e100)
    return 2.0 * _SQRT_2_OVER_PI * (tc + _GELU_C * tc * tc * tc), tc


def _gelu_tanh_f(t):
    u2, _ = _gelu_tanh_u2(t)
    return jnp.where(t == -jnp.inf, -0.0, t * _sig(u2))


def _gelu_tanh_d1(t):
    u2, tc = _gelu_tanh_u2(t)
    d = _sig(u2) + tc * _sig(u2) * _sig(-u2) * (2.0 * _SQRT_2_OVER_PI) * (1.0 + 3.0 * _GELU_C * tc * tc)
    return jnp.where(jnp.abs(t) > 1e50, jnp.where(t > 0, 1.0, 0.0), d)


_GELU_TANH = _chain(_gelu_tanh_f, _gelu_tanh_d1)


def _silu_f(t):
    return jnp.where(t == -jnp.inf, -0.0, t * _sig(t))


def _silu_d1(t):
    d = _sig(t) * (1.0 + t * _sig(-t))
    return jnp.where(jnp.isinf(t), jnp.where(t > 0, 1.0, 0.0), d)


def _silu_d2(t):
    s, sm = _sig(t), _sig(-t)
    d = s * sm * (2.0 + t * (sm - s))
    return jnp.where(jnp.isinf(t), 0.0, d)


_SILU = _chain(_silu_f, _silu_d1, _silu_d2)


def _mish_parts(t):
    """n = e^t (e^t + 2) and tanh(softplus(t)) = n / (n + 2) = 1 - 2 / (n + 2)."""
    e = jnp.exp(jnp.minimum(t, 40.0))
    n = e * (e + 2.0)
    th = jnp.where(t > 0, 1.0 - 2.0 / (n + 2.0), n / (n + 2.0))
    return n, th


def _mish_f(t):
    _, th = _mish_parts(t)
    return jnp.where(t == -jnp.inf, -0.0, t * th)


def _mish_d1(t):
    n, th = _mish_parts(t)
    sech2 = 4.0 * (n + 1.0) / ((n + 2.0) * (n + 2.0))
    d = th + t * sech2 * _sig(t)
    return jnp.where(jnp.isinf(t), jnp.where(t > 0, 1.0, 0.0), jnp.where(t > 40, 1.0, d))


_MISH = _chain(_mish_f, _mish_d1)
_SIGMOID = _chain(_sig,
                  lambda t: _sig(t) * _sig(-t),
                  lambda t: _sig(t) * _sig(-t) * (_sig(-t) - _sig(t)))
_LOG_SIGMOID = _chain(lambda t: jnp.where(t > 0, -jnp.log1p(jnp.exp(-t)), t - jnp.log1p(jnp.exp(jnp.minimum(t, 0.0)))),
                      lambda t: _sig(-t),
                      lambda t: -_sig(t) * _sig(-t))
_TANH = _chain(jnp.tanh, _sech2, lambda t: -2.0 * jnp.tanh(t) * _sech2(t))
_SOFTPLUS = _chain(lambda t: jnp.maximum(t, 0.0) + jnp.log1p(jnp.exp(-jnp.abs(t))),
                   _sig,
                   lambda t: _sig(t) * _sig(-t))
_HARD_SIGMOID = _chain(lambda t: jnp.clip(t + 3.0, 0.0, 6.0) / 6.0,
                       lambda t: jnp.where((t > -3) & (t < 3), 1.0 / 6.0, 0.0), _zero)
_HARD_SWISH = _chain(lambda t: jnp.where(t <= -3, -0.0, jnp.where(t >= 3, t, t * (t + 3.0) / 6.0)),
                     lambda t: jnp.where(t <= -3, 0.0, jnp.where(t >= 3, 1.0, (2.0 * t + 3.0) / 6.0)),
                     lambda t: jnp.where((t > -3) & (t < 3), 1.0 / 3.0, 0.0))
_SOFTSIGN = _chain(lambda t: jnp.where(jnp.isinf(t), jnp.sign(t), t / (1.0 + jnp.abs(t))),
                   lambda t: 1.0 / ((1.0 + jnp.abs(t)) * (1.0 + jnp.abs(t))),
                   lambda t: -2.0 * jnp.sign(t) / ((1.0 + jnp.abs(t)) ** 3))


# ---- the public functions -------------------------------------------------------

@jax.jit
def relu(x):
    r"""Rectified linear unit, :math:`\max(x, 0)`.

    ``relu(x <= 0) = +0``; ``relu'(0) = 0``.  Exact in every dtype.

    >>> relu(jnp.array([-2.0, 0.0, 3.0]))
    Array([0., 0., 3.], dtype=float32)
    """
    return _RELU(as_float_array(x), ())


@jax.jit
def relu6(x):
    r""":math:`\min(\max(x, 0), 6)`; derivative 1 on (0, 6), 0 elsewhere (0 at both kinks)."""
    return _RELU6(as_float_array(x), ())


@functools.partial(jax.jit, static_argnames=("negative_slope",))
def leaky_relu(x, negative_slope=0.01):
    r""":math:`x` for :math:`x \ge 0`, ``negative_slope * x`` below, rounded once.

    ``negative_slope`` is a static Python float; its exact binary64 value is
    used (0.01 is 0.01000000000000000020816...).  ``leaky_relu'(0) = negative_slope``.
    """
    s = check_finite_param("negative_slope", negative_slope)
    x = as_float_array(x)
    return _LEAKY(x, (s, x.dtype != jnp.float64))


@functools.partial(jax.jit, static_argnames=("alpha",))
def elu(x, alpha=1.0):
    r""":math:`x` for :math:`x > 0`, :math:`\alpha\,\mathrm{expm1}(x)` otherwise (``alpha >= 0``)."""
    a = check_finite_param("alpha", alpha, nonnegative=True)
    return _ELU(as_float_array(x), (a,))


@functools.partial(jax.jit, static_argnames=("alpha",))
def celu(x, alpha=1.0):
    r""":math:`\max(0,x) + \min(0, \alpha\,\mathrm{expm1}(x/\alpha))` (``alpha > 0``)."""
    a = check_finite_param("alpha", alpha, positive=True)
    return _CELU(as_float_array(x), (a,))


@jax.jit
def selu(x):
    r"""``scale * elu(x, alpha)`` with scale = 1.0507009873554804934 and
    alpha = 1.6732632423543772848 (their binary64 values)."""
    return _SELU(as_float_array(x), ())


@functools.partial(jax.jit, static_argnames=("approximate",))
def gelu(x, approximate=False):
    r"""Gaussian error linear unit.

    Exact form (default): :math:`\tfrac{x}{2}\,\mathrm{erfc}(-x/\sqrt2)`, the erfc
    form of :math:`x\Phi(x)`, which keeps full relative accuracy in the negative
    tail (``1 + erf`` cancels there).  ``approximate=True``: the tanh form
    :math:`\tfrac{x}{2}(1+\tanh(u))` with :math:`u=\sqrt{2/\pi}(x+0.044715x^3)`,
    evaluated as :math:`x\,\sigma(2u)`.  ``gelu(-inf) = -0``.
    """
    if not isinstance(approximate, (bool, np.bool_)):
        raise TypeError(f"approximate must be a bool, got {approximate!r}; pass True or False")
    op = _GELU_TANH if approximate else _GELU
    return op(as_float_array(x), ())


@jax.jit
def silu(x):
    r""":math:`x\,\sigma(x) = x / (1 + e^{-x})`; ``silu(-inf) = -0``."""
    return _SILU(as_float_array(x), ())


@jax.jit
def mish(x):
    r""":math:`x \tanh(\mathrm{softplus}(x))`, as :math:`x\,n/(n+2)`, :math:`n=e^x(e^x+2)`."""
    return _MISH(as_float_array(x), ())


@jax.jit
def sigmoid(x):
    r""":math:`1/(1+e^{-x})`; derivative :math:`\sigma(x)\sigma(-x)` (not ``s(1-s)``)."""
    return _SIGMOID(as_float_array(x), ())


@jax.jit
def log_sigmoid(x):
    r""":math:`-\log(1+e^{-x}) = \min(x,0) - \mathrm{log1p}(e^{-|x|})`; derivative :math:`\sigma(-x)`."""
    return _LOG_SIGMOID(as_float_array(x), ())


@jax.jit
def tanh(x):
    r"""Hyperbolic tangent; derivative :math:`\mathrm{sech}^2 x = 4t/(1+t)^2`, :math:`t = e^{-2|x|}`."""
    return _TANH(as_float_array(x), ())


@jax.jit
def softplus(x):
    r""":math:`\log(1+e^x) = \max(x,0) + \mathrm{log1p}(e^{-|x|})`; derivative :math:`\sigma(x)`."""
    return _SOFTPLUS(as_float_array(x), ())


@jax.jit
def hard_sigmoid(x):
    r""":math:`\mathrm{relu6}(x+3)/6`; derivative 1/6 on (-3, 3), 0 elsewhere."""
    return _HARD_SIGMOID(as_float_array(x), ())


@jax.jit
def hard_swish(x):
    r""":math:`x\,\mathrm{relu6}(x+3)/6`; -0 for :math:`x \le -3`; derivative :math:`(2x+3)/6` on (-3, 3)."""
    return _HARD_SWISH(as_float_array(x), ())


@jax.jit
def softsign(x):
    r""":math:`x/(1+|x|)`; derivative :math:`1/(1+|x|)^2`."""
    return _SOFTSIGN(as_float_array(x), ())

