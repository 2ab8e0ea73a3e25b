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
``selu'(0) = scale * alpha`` (the x <= 0 branch, as in PyTorch; their second
derivatives at 0 likewise: ``alpha``, ``1/alpha``, ``scale * alpha``).  At ±inf
every derivative is its limit, never NaN, with -0 for a limit 0 approached
from below (``gelu'(-inf) = -0``, ``silu''(±inf) = -0``); a derivative that
underflows keeps the sign of the exact value (``_negative_tail``); the odd
second derivatives (``tanh''``, ``sigmoid''``) are ∓0 at ±0.

Second derivatives are closed forms too (``gelu`` in both forms, ``silu``,
``mish``, ``sigmoid``, ``log_sigmoid``, ``tanh``, ``softplus``, the elu
family), so ``jax.grad(jax.grad(f))`` is as accurate as ``f'``.  Products and
quotients that would round more than once are compensated where float64
results need it (``_one_plus``, ``_two_square``: ``sigmoid'``, ``tanh'``,
``softsign'`` within 2 ulp of float64).

float64 inputs take the same closed forms in double-double arithmetic
(``_act64``, on the kernels of ``_dd``), rounded once: within 0.5 ulp + 2**-10
and almost always correctly rounded (``f64`` of ``_chain``).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

from . import _act64, _fast64
from ._core import _narrow_host, as_float_array, by_table, check_finite_param, in_float64

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


def _chain(*formulas, native=None, fast32=None, pair32=None, f64=None, own_copy=False, tiny=None):
    """An op from float64 formulas ``[f, f', f'', ...]`` (see module docstring).

    Ops with a closed-form derivative take bfloat16/float16 values from a table
    (``_core.by_table``); the last formula of a chain stays a float64 evaluation
    so that JAX can differentiate it.  ``native(x)``, when given, computes the
    value in the input dtype instead (for exact ops: relu, relu6), one callable
    or a tuple aligned with ``formulas`` (their exact derivatives too), called
    as ``native(x, *params)``; a native that returns ``None`` (one written for
    the 16-bit dtypes alone) leaves ``x`` to the paths below.
    ``fast32``, when given, holds float64 formulas for float32 inputs built on
    the vectorizable kernels of ``_fast64`` (relative error below about
    2**-49, so the float32 rounding is correct except within that distance of
    a rounding boundary): one formula (the value's) or a tuple aligned with
    ``formulas`` (``None`` where there is none), so that the derivatives that
    ``jax.grad`` evaluates on every training step run on them too.  float64
    inputs take ``f64`` (below) and the tables keep ``formulas``.
    ``pair32(t, *params) -> (f, f')``, when given, evaluates the value and the
    first derivative of a float32 input together, sharing their expensive parts
    (gelu's ``exp`` and ``erfcx``), for the JVP, where both are needed (a
    training step needs both).  The pair is computed in one loop
    (``_computed_once``: it pays where the shared part is most of the cost, as
    in gelu; where it is not, the 8-byte word it writes costs more than it
    saves) and is itself a ``custom_jvp`` whose derivative is the chain's next
    one, so higher derivatives keep their closed forms.
    ``f64``, when given, holds ``(formula, hi[, slope])`` for float64 inputs, aligned with
    ``formulas`` like ``fast32``: a double-double formula of ``_act64`` used for ``|t| <= hi``
    (``_act64.guarded``), the float64 formula elsewhere; the tables and the other dtypes never use
    them.
    ``own_copy=True``: the JVP evaluates the derivative on its own copy of ``x`` (an
    optimization barrier), for ops whose value and first derivative share subexpressions
    that XLA would otherwise compute once and write out in a training step (mish; a scan of
    every op's training-step temporaries found no other).  Not set elsewhere: it changes the
    lowered program of the derivative, and with it the exhaustive sweeps' records.
    ``tiny``: ``(k, toward)`` or ``None``, aligned with ``formulas``: next to 0 that formula's
    exact value lies strictly between ``k t`` and its float64 neighbour towards ``toward``, and
    its table (bfloat16) takes that neighbour there (``_tiny_linear``): gelu, its tanh form,
    silu and hard_swish (``t/2 + c t**2``, towards +inf), sigmoid'' (``-t/8 (1 - t**2/3)``,
    towards 0)."""
    fast32 = tuple(fast32) if isinstance(fast32, (tuple, list)) else (fast32,)
    fast32 = fast32 + (None,) * (len(formulas) - len(fast32))
    native = tuple(native) if isinstance(native, (tuple, list)) else (native,)
    native = native + (None,) * (len(formulas) - len(native))
    f64 = tuple(f64) if isinstance(f64, (tuple, list)) else (f64,)
    f64 = f64 + (None,) * (len(formulas) - len(f64))
    tiny = tuple(tiny) if isinstance(tiny, (tuple, list)) else (tiny,)
    tiny = tiny + (None,) * (len(formulas) - len(tiny))
    first = _keep_nan(formulas[0])
    tabled = _tiny_linear(first, *tiny[0]) if tiny[0] is not None else first
    fast = _keep_nan(fast32[0]) if fast32[0] is not None else None
    dd = _keep_nan(_act64.guarded(f64[0][0], formulas[0], *f64[0][1:])) if f64[0] is not None else None
    if len(formulas) == 1:
        def evaluated(x, params):
            y = native[0](x, *params) if native[0] is not None else None
            if y is not None:
                return y
            if dd is not None and x.dtype == jnp.float64:
                return dd(x, *params)
            if fast is not None and x.dtype == jnp.float32:
                return in_float64(lambda t: fast(t, *params), x)
            return in_float64(lambda t: first(t, *params), x)

        # the last formula of a chain (a second derivative) in bfloat16/float16: its value from a
        # table as well (built on the host: no flushed subnormal), its derivative JAX's of the
        # float64 evaluation
        @functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
        def looked_up(x, params):
            return by_table(tabled, looked_up, x, *params)

        @looked_up.defjvp
        def _looked_up_jvp(params, primals, tangents):
            (x,), (dx,) = primals, tangents
            return looked_up(x, params), jax.jvp(lambda u: evaluated(u, params), (x,), (dx,))[1]

        def op(x, params):
            if x.dtype.itemsize == 2 and native[0] is None:
                return looked_up(x, params)
            return evaluated(x, params)
        return op
    deriv = _chain(*formulas[1:], fast32=fast32[1:], native=native[1:], f64=f64[1:], tiny=tiny[1:])

    @functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
    def op(x, params):
        y = native[0](x, *params) if native[0] is not None else None
        if y is not None:
            return y
        if dd is not None and x.dtype == jnp.float64:
            return dd(x, *params)
        if fast is not None and x.dtype == jnp.float32:
            return in_float64(lambda t: fast(t, *params), x)
        return by_table(tabled if x.dtype.itemsize == 2 else first, op, x, *params)

    pair = _pair_op(_keep_nan_pair(pair32), deriv) if pair32 is not None else None

    @op.defjvp
    def _jvp(params, primals, tangents):
        (x,), (dx,) = primals, tangents
        if pair is not None and x.dtype == jnp.float32 and native[0] is None:
            y, d = pair(x, params)
            return y, d * dx
        if own_copy:
            # the derivative from its own copy of x: XLA would otherwise merge the
            # subexpressions it shares with the value (mish: exp and two quotients) and write
            # them out as float64 arrays in a program that needs both (64 MiB at 2**22
            # elements); the barrier costs nothing at run time
            xd, _ = lax.optimization_barrier((x, np.int32(0)))
            return op(x, params), deriv(xd, params) * dx
        return op(x, params), deriv(x, params) * dx

    return op


# Below |t| = 2**-60, a formula whose exact value is k t + r(t), with r of one sign and
# |r(t)| < 2**-61 |t| |k| (gelu, its tanh form, silu, hard_swish: k = 1/2, r = c t**2 with
# 0 < c < 1/2; sigmoid'': k = -1/8, r = t**3/24 - ..., towards 0), lies strictly between k t
# (exact: k is a power of two) and the next float64 beyond it in r's direction (r is below half
# an ulp of k t), and no rounding boundary of a narrower format lies strictly between two
# adjacent float64 numbers: so that neighbour, rounded, is the correctly rounded value in every
# narrower format.  The float64 formulas give k t itself there (r is lost), which is wrong where
# k t is a midpoint of the format: bfloat16 subnormal results (gelu(5 * 2**-133) =
# 2.5 * 2**-133 + ..., whose correct rounding is 3 * 2**-133, not the even 2 * 2**-133).
# float16's smallest nonzero |t| is 2**-24: unaffected.
_TINY_BELOW = 2.0 ** -60


def _tiny_linear(formula, k, toward):
    """``formula`` with ``nextafter(k t, toward)`` for ``0 < |t| < 2**-60`` (the comment above)."""
    def f(t, *params):
        small = (jnp.abs(t) < _TINY_BELOW) & (t != 0)
        return jnp.where(small, jnp.nextafter(k * t, jnp.full_like(t, toward)), formula(t, *params))
    return f


def _keep_nan_pair(formula):
    def f(t, *params):
        y, d = formula(t, *params)
        nan = jnp.isnan(t)
        return jnp.where(nan, t, y), jnp.where(nan, t, d)
    return f


def _computed_once(y, d):
    """``(y, d)``, two float32 arrays computed by one loop over their shared work.

    XLA's CPU backend does not fuse one loop with two outputs: handed ``y`` and ``d``
    separately, it writes two loops that each recompute every shared intermediate
    (gelu's ``exp`` and ``erfcx``: the pair would cost two evaluations).  Packed into
    one 64-bit word, they are computed once and written once (8 bytes an element,
    what ``y`` and ``d`` take anyway); unpacking is a shift and a bitcast that fuse
    into each consumer.  The same values bit for bit, except that a NaN ``d`` becomes
    the canonical quiet NaN."""
    u32, u64 = jnp.uint32, jnp.uint64
    d = jnp.where(jnp.isnan(d), jnp.nan, d)  # low word never 0xffffffff: the remainder below is the identity
    packed = (lax.bitcast_convert_type(y, u32).astype(u64) << 32) | lax.bitcast_convert_type(d, u32).astype(u64)
    # XLA duplicates cheap producers into each consumer and materializes expensive ones; a
    # remainder is expensive to XLA, and by 2**64 - 1 it is a compare and a select to LLVM
    packed = packed % jnp.uint64(0xFFFFFFFFFFFFFFFF)
    return (lax.bitcast_convert_type((packed >> 32).astype(u32), y.dtype),
            lax.bitcast_convert_type(packed.astype(u32), d.dtype))


def _pair_op(pair32, deriv):
    """``(f(x), f'(x))`` of a float32 ``x`` from ``pair32`` in float64, each rounded once, as a
    ``custom_jvp``: the tangent of ``f`` is ``f' dx`` and that of ``f'`` comes from ``deriv``
    (the chain of the higher derivatives)."""

    @functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
    def pair(x, params):
        with jax.enable_x64(True):
            y, d = pair32(x.astype(jnp.float64), *params)
            return _computed_once(y.astype(x.dtype), d.astype(x.dtype))

    @pair.defjvp
    def _pair_jvp(params, primals, tangents):
        (x,), (dx,) = primals, tangents
        y, d = pair(x, params)
        dd = jax.jvp(lambda v: deriv(v, params), (x,), (dx,))[1]
        return (y, d), (d * dx, dd)

    return pair


def _split(c: float, bits: int = 26):
    """``c = hi + lo`` with ``hi`` on ``bits`` significant bits (a Python-side Veltkamp split)."""
    m, e = math.frexp(c)
    hi = math.ldexp(math.floor(math.ldexp(m, bits)), e - bits)
    return hi, c - hi


def _two_product_narrow(t, c: float):
    """``t * c = hi + lo`` exactly, for ``t`` with at most 24 significant bits (a float32,
    bfloat16 or float16 value in float64): both partial products are exact in
    float64 and TwoSum adds them without error."""
    c_hi, c_lo = _split(c)
    a, b = t * c_hi, t * c_lo
    hi = a + b
    bb = hi - a
    lo = (a - (hi - bb)) + (b - bb)
    # t = ±inf: a + b is inf - inf (NaN) when c_hi and c_lo differ in sign (negative slopes) and
    # b = inf * 0 when c_lo = 0 (short slopes such as 0.5); the product is t * c, lo 0
    inf = jnp.isinf(t)
    return jnp.where(inf, t * c, hi), jnp.where(inf, 0.0, lo)


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


def _one_plus(a):
    """``1 + a = s + l`` exactly (TwoSum).  The barrier keeps XLA from folding
    ``(1 + a) - 1`` into ``a``, which would make ``l`` 0."""
    s = 1.0 + a
    sb = jax.lax.optimization_barrier(s)
    bb = sb - 1.0
    return s, (1.0 - (sb - bb)) + (a - bb)


def _two_square(s):
    """``s * s = p + e`` exactly (Dekker: a Veltkamp split of ``s`` into 26-bit
    halves, whose partial products are exact), for ``|s| < 2**996``."""
    c = 134217729.0 * s  # 2**27 + 1
    cb = jax.lax.optimization_barrier(c)
    hi = cb - (cb - s)
    lo = s - hi
    p = s * s
    return p, ((hi * hi - p) + 2.0 * hi * lo) + lo * lo


def _over_square_one_plus(num, a):
    """``num / (1 + a)^2`` for ``a >= 0`` with one rounded quotient: ``1 + a = s + l``
    and ``s^2 = p + e`` exactly, ``(1 + a)^2 = p (1 + c)`` with ``c ~ (e + 2 s l) / p``,
    so the result is ``q - q c``, ``q = num / p``.  Past ``a = 2**150`` (where ``s^2``
    nearly overflows and ``c`` is below 2**-150) it is ``(num / s) / s``."""
    s, l = _one_plus(a)
    big = s > 2.0**150
    p, e = _two_square(jnp.where(big, 1.0, s))
    q = num / p
    return jnp.where(big, (num / s) / s, q - q * ((e + 2.0 * s * l) / p))


# ln 4 = _LN4_HI + _LN4_LO, _LN4_HI on the 2**-43 grid: for 512 <= a < 1024,
# -a + _LN4_HI is exact, so 4 e^-a = exp(-a + _LN4_HI) (1 + _LN4_LO) to 1 ulp,
# without the subnormal e^-a that a device flushing subnormals would zero
_LN4_HI = 1.3862943611198943
_LN4_LO = -3.728377347448607e-15


def _sech2(t):
    """``sech^2 t = 4e / (1 + e)^2``, ``e = exp(-2|t|)``, never ``1 - tanh^2``."""
    a = 2.0 * jnp.abs(t)
    e = jnp.exp(-a)
    four_e = jnp.where(a >= 512, jnp.exp(_LN4_HI - a) * (1.0 + _LN4_LO), 4.0 * e)
    return _over_square_one_plus(four_e, e)


def _sig_d1(t):
    """``sigmoid'(t) = e / (1 + e)^2``, ``e = exp(-|t|)`` (not ``s(1 - s)``)."""
    e = jnp.exp(-jnp.abs(t))
    return _over_square_one_plus(e, e)


def _tanh_k(t, k, near):
    """``tanh(k t / 2)`` for k = 1 or 2: XLA's tanh where ``|t| < near``, else
    ``sign(t) (1 - e) / (1 + e)`` with ``e = exp(-k|t|)`` (XLA's float64 tanh is
    up to 7 ulp off next to ±1; ``1 - e`` does not cancel for ``k|t| >= 1``)."""
    e = jnp.exp(-k * jnp.abs(t))
    s, l = _one_plus(e)
    far = jnp.sign(t) * ((1.0 - e) / s) * (1.0 - l / s)
    return jnp.where(jnp.abs(t) < near, jnp.tanh(0.5 * k * t), far)


def _zero(t, *p):
    return jnp.zeros_like(t)


def _negative_tail(t, d, at_minus_inf=-0.0):
    """``d`` with the signed zeros of a derivative that is negative in the left tail:
    where it underflows (``+0 + -0`` gives +0) it is -0, and at -inf it is
    ``at_minus_inf`` (the limit, -0 when approached from below)."""
    d = jnp.where((d == 0) & (t < 0), -0.0, d)
    return jnp.where(t == -jnp.inf, at_minus_inf, d)


# ---- the formulas (float64 in, float64 out) -------------------------------------

def _select_bits(mask, a, b):
    """``where(mask, a, b)`` on the bit patterns: XLA may carry out a bfloat16/float16
    float select in float32 with subnormals flushed; an integer select cannot."""
    u = {2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint64}[a.dtype.itemsize]
    bits = lambda v: jax.lax.bitcast_convert_type(v, u)
    return jax.lax.bitcast_convert_type(jnp.where(mask, bits(a), bits(b)), a.dtype)


def _as_signed(x):
    return jax.lax.bitcast_convert_type(x, {2: jnp.int16, 4: jnp.int32, 8: jnp.int64}[x.dtype.itemsize])


def _relu_native(x, *_):
    """relu in the input dtype, exact: +0 for x <= 0 (-0 included), NaN for NaN, positive
    subnormals kept (a float comparison may read them as zero).  On the bit patterns read as
    signed integers, a float with the sign bit set is negative, and of those the NaNs, and only
    they, lie above the pattern of -inf (-2**23 for float32); so relu keeps ``bits`` where
    ``bits > bits(-inf)`` and is +0 elsewhere.  A comparison and a select (four flops an element
    to XLA's cost analysis, with the bit casts): its cost model calls the loop memory-bound and
    does not split it over threads (the earlier nine were
    "compute-bound": a thread hand-off on every call of 2**12 elements or more, about 25 us at
    2**14 on 2 cores)."""
    i = _as_signed(x)
    return jax.lax.bitcast_convert_type(jnp.where(i > _as_signed(jnp.array(-jnp.inf, x.dtype)), i, 0), x.dtype)


def _relu6_native(x, *_):
    """relu6 on the bit patterns: NaN where ``|bits| > bits(inf)``, else ``clip(bits, 0,
    bits(6))`` (the non-negative floats' patterns are ordered as their values)."""
    i = _as_signed(x)
    nan = (i & ~_as_signed(jnp.array(-0.0, x.dtype))) > _as_signed(jnp.array(jnp.inf, x.dtype))
    return jax.lax.bitcast_convert_type(jnp.where(nan, i, jnp.clip(i, 0, _as_signed(jnp.array(6, x.dtype)))),
                                        x.dtype)


def _positive(x):
    """``x > 0`` read from the bit pattern (+inf included, NaN not): a comparison would read a
    positive subnormal as 0 on devices that treat subnormal inputs as zero."""
    u = {2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint64}[x.dtype.itemsize]
    bits = jax.lax.bitcast_convert_type(x, u)
    inf_bits = jax.lax.bitcast_convert_type(jnp.array(jnp.inf, x.dtype), u)
    return (bits > 0) & (bits <= inf_bits)


def _step(x, below):
    """``1`` for ``x > 0`` (positive subnormals and +inf included), ``below`` (a value of
    ``x``'s dtype) elsewhere, NaN for NaN.  For the 16-bit dtypes, selects on the bit patterns
    alone: a float ``isnan`` and select made XLA convert them to float32 and back, which cost
    the derivative 1.3-1.6x jax.nn's at 2**18-2**22 elements (docs/performance.md); float32 and
    float64 keep the float test (no conversion there, and fewer operations an element, which
    XLA's cost model weighs when it splits a loop over threads)."""
    if x.dtype.itemsize != 2:
        d = jnp.where(_positive(x), jnp.ones_like(x), jnp.full_like(x, below))
        return jnp.where(jnp.isnan(x), x, d)
    u = jnp.uint16
    cast = lambda v: jax.lax.bitcast_convert_type(jnp.asarray(v, x.dtype), u)
    bits = jax.lax.bitcast_convert_type(x, u)
    inf_bits = cast(jnp.inf)
    sign = cast(-0.0)
    nan = (bits & ~sign) > inf_bits
    if x.dtype == jnp.bfloat16:  # XLA's bfloat16 conversions give the quiet NaN of x's sign
        bits_nan = (bits & sign) | cast(jnp.nan)
    else:
        bits_nan = bits
    step = jnp.where((bits > 0) & (bits <= inf_bits), cast(1.0), cast(below))
    return jax.lax.bitcast_convert_type(jnp.where(nan, bits_nan, step), x.dtype)


def _relu_d1_native(x, *_):
    """relu' in the input dtype: 1 for x > 0 (positive subnormals and +inf included), else 0
    (0 at 0), NaN for NaN: exact, no conversion, no table."""
    return _step(x, 0.0)


def _relu6_d1_native(x, *_):
    """relu6' in the input dtype: 1 on (0, 6), 0 elsewhere (0 at both kinks), NaN for NaN."""
    if x.dtype.itemsize == 2:
        return _box16(x, 0.0, 6.0, 1.0, quiet=False)  # NaN as before: x's own
    one = jnp.where(_positive(x) & (x < 6), jnp.ones_like(x), jnp.zeros_like(x))
    return jnp.where(jnp.isnan(x), x, one)


# ---- piecewise-constant pieces of the 16-bit dtypes, on the bit patterns --------------
# Read as int16, a bfloat16 or float16 pattern b maps to the key b ^ ((b >> 15) & 0x7fff),
# which orders the non-NaN values as the floats are ordered (-0 just below +0): comparisons
# with a bound are then one integer comparison, with no conversion to float32 and no
# flushing of bfloat16's subnormals (which a float32 comparison may read as 0).  A bound v
# (a Python float) becomes the key of a value of the dtype: for x on the dtype's grid,
# x > v exactly when x > RD(v) (v rounded down), and x < v exactly when x < RU(v); a rounded
# bound of 0 takes the key of +0 for ">" and of -0 for "<", so that both zeros compare as 0.

def _key16(x):
    b = lax.bitcast_convert_type(x, jnp.int16)
    return b ^ ((b >> 15) & jnp.int16(0x7FFF))


def _key_of_bits(b):
    return ((b ^ 0x7FFF) - 0x10000) if b & 0x8000 else b


def _neighbours16(v, dtype):
    """The keys of the values of ``dtype`` next to the float ``v`` (below, above; the same
    twice when ``v`` is one), on the host, exactly (no arithmetic of the device, which may
    flush a subnormal)."""
    with np.errstate(over="ignore"):  # overflow: +-inf, one of v's neighbours
        near = np.array(v, np.dtype(dtype))  # one of the two neighbours of v (it may round twice)
    key = _key_of_bits(int(near.view(np.uint16)))
    n = float(near)
    return (key, key) if n == v else (key, key + 1) if n < v else (key - 1, key)


def _bound_key16(v, dtype, up):
    """The key of ``v`` rounded up (``up``) or down to ``dtype``, the zero rule above."""
    key = _neighbours16(v, dtype)[1 if up else 0]
    if key in (-1, 0):  # a zero
        key = -1 if up else 0
    return key


def _const16(v, dtype):
    """``v`` (a finite Python float) rounded once to ``dtype`` on the host (``_narrow_host``, the
    tables' rounding), without the flush of a subnormal result that a device's conversion may
    make."""
    return _narrow_host(np.asarray(v, np.float64), dtype)


def _nan16(x, y, quiet=True):
    """``y``, with NaN where ``x`` is NaN, on the bit patterns: bfloat16 the quiet NaN of x's
    sign, as XLA's conversions give; float16 x's pattern, made quiet (``quiet``, as a float32
    round trip does) or as it is."""
    u = lax.bitcast_convert_type(x, jnp.uint16)
    nan = (u & jnp.uint16(0x7FFF)) > lax.bitcast_convert_type(jnp.array(jnp.inf, x.dtype), jnp.uint16)
    if x.dtype == jnp.bfloat16:
        u = (u & jnp.uint16(0x8000)) | lax.bitcast_convert_type(jnp.array(jnp.nan, x.dtype), jnp.uint16)
    elif quiet:
        u = u | jnp.uint16(0x0200)
    return lax.bitcast_convert_type(jnp.where(nan, u, lax.bitcast_convert_type(y, jnp.uint16)), x.dtype)


def _box16(x, lo, hi, inside, quiet=True):
    """``inside`` (rounded to x's dtype) where ``lo < x < hi``, +0 elsewhere, NaN for NaN
    (``_nan16``): the derivatives of relu6, hard_sigmoid and hard_tanh, for a 16-bit ``x``."""
    k = _key16(x)
    hit = (k > _bound_key16(lo, x.dtype, False)) & (k < _bound_key16(hi, x.dtype, True))
    return _nan16(x, jnp.where(hit, _const16(inside, x.dtype), jnp.zeros((), x.dtype)), quiet)


# ---- float32 value paths on the _fast64 kernels ---------------------------------
# Each is the float64 formula of its op with XLA's exp/expm1/log1p replaced by
# _fast64's; the kernels clamp their argument to [-708, 709], and each comment
# says why the clamp cannot change a float32 result.

def _sig32(t):
    # -t > 709: 1/(1 + 8e307) ~ 1e-308 and the exact value both round to +0;
    # -t < -708: both give 1
    return 1.0 / (1.0 + _fast64.exp(-t))


# Next to 0, sigmoid(t) = 1/2 + t/4 - t**3/48 + ... and silu'(t) = 1/2 + t/2 - t**3/12 + ...: for
# t > 0, tanh(t/2) lies in (t/2 - t**3/24, t/2) and sech**2 = 1 - tanh**2, so 1/2 + t/4 - sigmoid(t)
# lies in (0, t**3/48) and 1/2 + t/2 - silu'(t) in (0, t**3/12); both functions minus 1/2 are odd,
# so for either sign of t the exact value lies less than |t|**3/12 from h = 1/2 + k t (k = 1/4,
# 1/2), on the side of 1/2.  For a float32 t with |t| in [2**e, 2**(e + 1)), e <= -13 (|t| <
# 2**-12), h is a multiple of 2**(e - 25) and |t|**3/12 < 2**(e - 26).  So the correctly rounded
# value is h rounded to nearest float32, with a tie broken toward 1/2.  h is a float32 midpoint
# for k = 1/4 at t = (2j + 1) 2**-23 (t > 0) and -(2j + 1) 2**-24, for k = 1/2 at (2j + 1) 2**-24
# and -(2j + 1) 2**-25, for every |t| < 2**-12; the float64 formulas land on such a midpoint, or on
# its far side, for 65 (sigmoid) and 98 (silu') float32 inputs, all with 2**-25 <= |t| < 2**-16.
# h - sign(t) 2**-50 rounds right on every input: it lies on the side of 1/2 of a midpoint h, and
# where h is on the far side of a midpoint it stays there, h being at least 2**-49 from it (|k t|
# reaches the first midpoint, 2**-26 below 1/2 or 2**-25 above, only for e >= -24 (k = 1/4) or
# e >= -25 (k = 1/2), where h is a multiple of 2**(e - 25) or 2**(e - 24) and exact in float64, as
# is the subtraction).  For smaller |t|, and for t = ±0 (where the code subtracts -2**-50), the
# result stays strictly between the midpoints 1/2 - 2**-26 and 1/2 + 2**-25, whatever the float64
# roundings, and rounds to 1/2, as the exact value does.
_NEAR_HALF = 2.0 ** -12


def _near_half(t, k, f):
    """``f(t)`` (sigmoid or silu', float64 from a float32 ``t``) with ``1/2 + k t`` decided next to
    0 (the comment above): correctly rounded there on every float32 input."""
    h = 0.5 + k * t - jnp.where(t > 0, 2.0 ** -50, -(2.0 ** -50))
    return jnp.where(jnp.abs(t) < _NEAR_HALF, h, f(t))


def _sig32_cr(t):
    return _near_half(t, 0.25, _sig32)


def _silu32(t):
    # t < -709: t / 8e307 and the exact value both round to -0 (inf: -0 by the where)
    return jnp.where(t == -jnp.inf, -0.0, t / (1.0 + _fast64.exp(-t)))


def _tanh32(t):
    # tanh|t| = -q / (2 + q), q = expm1(-2|t|): no cancellation; |t| > 354: both give 1
    # (one use of the quotient: XLA does not fuse a divide into two consumers)
    q = _fast64.expm1(-2.0 * jnp.abs(t))
    return (q / (2.0 + q)) * jnp.where(jnp.signbit(t), 1.0, -1.0)


def _elu32(t, a):
    # t < -708: expm1 gives -1 + 3e-308 -> -alpha, as the exact value rounds
    return jnp.where(t > 0, t, a * _fast64.expm1(jnp.minimum(t, 0.0)))


def _softplus_parts32(t):
    """``log1p(exp(-|t|))``; |t| > 708: 3e-308 for a value below it, both add nothing
    to |t| > 708 and both round to +0 in float32."""
    return _fast64.log1p_unit(_fast64.exp(-jnp.abs(t)))


def _mish32(t):
    e = _fast64.exp(jnp.minimum(t, 40.0))  # t < -708: t * n/(n+2) rounds to -0 either way
    n = e * (e + 2.0)
    th = jnp.where(t > 0, 1.0 - 2.0 / (n + 2.0), n / (n + 2.0))
    return jnp.where(t == -jnp.inf, -0.0, t * th)


# gelu (erf form) for float32 inputs.  For a float32 t, t*t is exact in float64, so
# exp(-t*t/2) = exp(-w**2), w = |t|/sqrt 2, carries no argument rounding (the error that
# erfc(w) magnifies 2 w**2 times); erfc(w) = exp(-w**2) erfcx(w), where erfcx is insensitive
# to the rounding of w.  -z = t/sqrt 2: erfc(-z) = 2 - erfc(w) for t >= 0 (no cancellation:
# erfc(w) <= 1).  Past |t| = 14.5 (w = 10.25 < 11, erfcx's domain) the value rounds to -0 on
# the left (|gelu| <= phi(t) < 2**-150) and to t on the right; the derivative needs |t| > 15
# (|gelu'| ~ |t| phi(t) < 2**-150) and is 1 within 2**-26 past t = 8.
_GELU_CLIP = 15.0


def _gelu_erfc_parts32(t):
    """``(E, R, tc)``: ``E = exp(-t^2/2)`` (t clipped to +-15: exp's clamp is never reached) and
    ``R = erfcx(|t|/sqrt 2)``, so erfc(|t|/sqrt 2) = E R."""
    tc = jnp.clip(t, -_GELU_CLIP, _GELU_CLIP)
    e = _fast64.exp(-0.5 * (tc * tc))
    r = _fast64.erfcx_unit(jnp.abs(tc) * _SQRT_HALF)
    return e, r, tc


def _gelu_from_parts32(t, e, r):
    er = e * r
    return jnp.where(t < -14.5, -0.0, 0.5 * t * jnp.where(t >= 0, 2.0 - er, er))


def _gelu_d1_from_parts32(t, e, r, tc):
    # Phi(t) + t phi(t) = E (R/2 + t/sqrt(2 pi)) for t < 0 (cancels next to the zero t = -0.7518,
    # as the float64 formula does), 1 - E R/2 + t E/sqrt(2 pi) for t >= 0
    d = jnp.where(tc < 0, e * (0.5 * r + tc * _INV_SQRT_2PI), 1.0 - 0.5 * (e * r) + tc * (e * _INV_SQRT_2PI))
    return _negative_tail(t, jnp.where(t > 8.0, 1.0, jnp.where(t < -_GELU_CLIP, -0.0, d)))


def _gelu32(t):
    e, r, _ = _gelu_erfc_parts32(t)
    return _gelu_from_parts32(t, e, r)


def _gelu_d1_32(t):
    return _gelu_d1_from_parts32(t, *_gelu_erfc_parts32(t))


def _gelu_pair32(t):
    """``(gelu(t), gelu'(t))`` from one ``exp`` and one ``erfcx``."""
    e, r, tc = _gelu_erfc_parts32(t)
    return _gelu_from_parts32(t, e, r), _gelu_d1_from_parts32(t, e, r, tc)


def _gelu_d2_32(t):
    # phi(t) (2 - t^2); t^2 exact; |t| > 15: below 2**-150 in magnitude, -0 (negative in both tails)
    tc = jnp.clip(t, -_GELU_CLIP, _GELU_CLIP)
    d = (_INV_SQRT_2PI * _fast64.exp(-0.5 * (tc * tc))) * (2.0 - tc * tc)
    return jnp.where((jnp.abs(t) > _GELU_CLIP) | (d == 0), -0.0, d)


def _gelu_tanh32(t):
    u2, _ = _gelu_tanh_u2(t)
    return jnp.where(t == -jnp.inf, -0.0, t * _sig32(u2))


# ---- float32 derivative paths on the _fast64 kernels ----------------------------
# The same cancellation-free formulas as the float64 ones below, with XLA's exp
# replaced by _fast64.exp and without the compensated products (_one_plus,
# _two_square) that only float64 results need: a float32 derivative tolerates a
# float64 relative error of a few 2**-53 (budget <= 2 ulp; rounded once, it is
# correctly rounded except within that distance of a boundary).  No
# optimization barrier, and every intermediate has one consumer chain, so XLA
# fuses each into a single loop with no float64 temporaries in memory.
# Clamps: _fast64.exp(t) takes t in [-708, 709]; each use says why the clamp
# cannot change a float32 result.

def _sig_d1_32(t):
    # e^-|t| / (1 + e^-|t|)^2; |t| > 708: about 3e-308 against an exact value below
    # 2**-1000, both +0 in float32
    e = _fast64.exp(-jnp.abs(t))
    d = 1.0 + e
    return e / (d * d)


def _sech2_32(t):
    # 4 e / (1 + e)^2, e = e^(-2|t|); |t| > 354: both +0 in float32
    e = _fast64.exp(-2.0 * jnp.abs(t))
    d = 1.0 + e
    return (4.0 * e) / (d * d)


def _over_d2_32(t, num_pos, num_neg):
    """``num / (1 + e)^2`` with ``e = e^-|t|`` and ``num = num_pos(e)`` for t >= 0, else
    ``num_neg(e)``: the products of ``sigmoid(t) = 1/(1+e)`` or ``e/(1+e)`` and
    ``sigmoid(-t)`` over one common denominator, so there is ONE quotient (XLA does
    not fuse a quotient with two consumers: it would write a float64 temporary)."""
    e = _fast64.exp(-jnp.abs(t))
    d = 1.0 + e
    return jnp.where(t >= 0, num_pos(e, d), num_neg(e, d)) / (d * d)


def _silu_d1_32(t):
    # s (1 + t s_) = (1 + e + t e) / (1 + e)^2 for t >= 0, e (1 + e + t) / (1 + e)^2 below
    # (cancels next to the zero t = -1.278 as the float64 formula does); t < -708: about
    # -2e-305 against an exact value below 2**-1000, both -0 in float32; ±inf by the wheres
    d = _over_d2_32(t, lambda e, d: d + t * e, lambda e, d: e * (d + t))
    return _negative_tail(t, jnp.where(t == jnp.inf, 1.0, d))


def _silu_d2_32(t):
    # s s_ (2 - t tanh(t/2)), s s_ = e / (1 + e)^2
    d = _over_d2_32(t, lambda e, d: e, lambda e, d: e) * (2.0 - t * _tanh32(0.5 * t))
    return jnp.where(jnp.isinf(t), -0.0, d)


def _mish_d1_32(t):
    # t < -110: |mish'(t)| <= 2 (|t| + 1) e^t < 2**-150, which rounds to -0 in float32 (the
    # clamped exp, and the flushed subnormal 1 / (1 + e^-t) past t = -709, would leave +3e-308)
    e = _fast64.exp(jnp.minimum(t, 40.0))
    n = e * (e + 2.0)
    th = jnp.where(t > 0, 1.0 - 2.0 / (n + 2.0), n / (n + 2.0))
    sech2 = 4.0 * (n + 1.0) / ((n + 2.0) * (n + 2.0))
    d = th + t * sech2 * _sig32(t)
    return _negative_tail(t, jnp.where(t > 40, 1.0, jnp.where(t < -110, -0.0, d)))


def _gelu_tanh_d1_32(t):
    # s + t s s_ k(t) = s (1 + t s_ k) with s = sigmoid(2u), k = 2 sqrt(2/pi)(1 + 3c t^2):
    # (d + t k e) / d^2 for 2u >= 0, e (d + t k) / d^2 below (d = 1 + e, e = e^-|2u|);
    # |2u| > 708: the clamped e changes nothing a float32 result can see (the term is below
    # 2**-1000 of the other, or the value is below 2**-1000 and rounds to -0)
    u2, tc = _gelu_tanh_u2(t)
    k = (2.0 * _SQRT_2_OVER_PI) * (1.0 + 3.0 * _GELU_C * tc * tc)
    tk = tc * k
    d = _over_d2_32(u2, lambda e, d: d + tk * e, lambda e, d: e * (d + tk))
    return _negative_tail(t, jnp.where(jnp.abs(t) > 1e50, jnp.where(t > 0, 1.0, -0.0), d))


def _exp_left32(t):
    # e^min(t, 0); t < -708: 3e-308 against an exact value below 2**-1000, both +0 in float32
    return _fast64.exp(jnp.minimum(t, 0.0))


_RELU = _chain(lambda t: jnp.where(t > 0, t, 0.0),
               lambda t: jnp.where(t > 0, 1.0, 0.0), _zero, native=(_relu_native, _relu_d1_native))
_RELU6 = _chain(lambda t: jnp.where(t > 0, jnp.minimum(t, 6.0), 0.0),
                lambda t: jnp.where((t > 0) & (t < 6), 1.0, 0.0), _zero,
                native=(_relu6_native, _relu6_d1_native))
def _leaky_f(t, s, mode):
    # select on the sign bit: a comparison would see a subnormal input as 0 on
    # devices that treat subnormal inputs as zero, and pass it through unscaled
    neg = jnp.signbit(t)
    if mode == "float64":
        return jnp.where(neg, t * s, t)  # float64 input: one rounding of the product
    exact = lambda t: _round_to_odd_f64(*_two_product_narrow(t, s))
    if mode == "float32-cpu":
        # see _rounds_once_on_cpu: the same bits as ``exact`` where XLA flushes float32
        # subnormal results, at a third of its cost
        product = lax.platform_dependent(t, cpu=lambda t: t * s, default=exact)
    else:
        product = exact(t)
    return jnp.where(neg, product, t)


def _cpu_device():
    """The CPU device, or None where JAX runs without its CPU backend (``JAX_PLATFORMS=cuda``)."""
    try:
        return jax.devices("cpu")[0]
    except RuntimeError:
        return None


@functools.lru_cache(maxsize=1)
def _cpu_rounds_then_flushes() -> bool:
    """Whether XLA's CPU backend converts float64 to float32 as the proof of
    ``_rounds_once_on_cpu`` assumes: round to 24 bits as if the exponent range were unbounded,
    then flush a result below ``2**-126`` to ±0 (tininess detected after rounding, as on x86).
    Probed on boundary values, once a process."""
    cpu = _cpu_device()
    if cpu is None:
        return False
    probe = np.array([2.0 ** -140, -(2.0 ** -140), 2.0 ** -126 * (1 - 2.0 ** -30), 2.0 ** -127 * 1.5], np.float64)
    expect = np.array([0.0, -0.0, 2.0 ** -126, 0.0], np.float32)
    with jax.ensure_compile_time_eval(), jax.enable_x64(True):
        got = np.asarray(jax.jit(lambda v: v.astype(jnp.float32))(jax.device_put(probe, cpu)))
    return bool(np.array_equal(got.view(np.uint32), expect.view(np.uint32)))


@functools.lru_cache(maxsize=None)
def _rounds_once_on_cpu(s: float) -> bool:
    r"""Whether ``float32(float64(x) * s)`` is ``leaky_relu``'s correctly rounded product for
    every float32 ``x`` on XLA's CPU backend, proved at trace time for this slope.

    That backend converts float64 to float32 by rounding to 24 bits as if the exponent range
    were unbounded and then flushing a result below ``2**-126`` to ±0 (tininess after rounding;
    ``_cpu_rounds_then_flushes`` probes this and the proof is not used otherwise).  The exact
    path's round-to-odd value and the float64 product ``p = fl64(x s)`` then convert alike
    unless ``p`` is itself a 25-bit float32 midpoint and ``x s`` is not exact (every other
    float64 value has the same 24-bit neighbours on the same side as ``x s``; flushing depends
    on the rounded value only).  Scaling ``x`` by a power of two scales ``p`` exactly, so this
    depends only on the significand ``m`` of ``x`` (odd ``m`` below ``2**24`` cover every
    float32): with ``p = m s = a + b`` split exactly (``s = hi + lo`` on 26 and 27 bits, both
    partial products exact), ``p`` is a midpoint when its lowest set bit is 24 places below its
    leading bit, and inexact when the Fast2Sum error ``b - (p - a)`` is not 0.  The overflow
    threshold ``2**128 - 2**103`` is such a midpoint too.  (A backend that kept subnormal
    results would need more: ``25 * 2**-148 * 0.01`` rounds to the subnormal midpoint
    ``2**-150`` in float64.)  2**23 significands, about 0.3 s once per slope: 0.01, 0.02, 0.1,
    0.2, 0.3 and 1.2 pass; many other slopes do not (0.33: 81344 significands; 8 of 12
    random three-decimal slopes in (0.001, 0.5)) and keep the exact path."""
    s = abs(s)
    if s == 0.0:
        return True
    if not 2.0 ** -64 <= s <= 2.0 ** 64 or not _cpu_rounds_then_flushes():
        return False
    hi, lo = _split(s)
    chunk = 1 << 21
    for start in range(1, 1 << 24, 2 * chunk):
        m = np.arange(start, min(start + 2 * chunk, 1 << 24), 2, dtype=np.float64)
        a, b = m * hi, m * lo
        p = a + b
        inexact = (b - (p - a)) != 0
        bits = p.view(np.uint64)
        lead = (bits >> np.uint64(52)).astype(np.int64) - 1023
        sig = (bits & np.uint64((1 << 52) - 1)) | np.uint64(1 << 52)
        lowest = lead - 52 + np.log2((sig & (~sig + np.uint64(1))).astype(np.float64)).astype(np.int64)
        if np.any(inexact & (lowest == lead - 24)):
            return False
    return True


def _leaky_d1_native(x, s, mode):
    """leaky_relu' in the input dtype: 1 for x > 0 (positive subnormals and +inf included, read
    from the bit pattern), else ``negative_slope`` correctly rounded to the dtype (computed once,
    at trace time: on the host for the 16-bit dtypes, whose subnormal slope a device conversion
    would flush, by the float64 path otherwise), NaN for NaN: no conversion, no table."""
    if x.dtype.itemsize == 2:
        return _step(x, _const16(s, x.dtype))
    with jax.ensure_compile_time_eval():
        slope = in_float64(lambda t: t * 0.0 + s, jnp.zeros((), x.dtype))
    return _step(x, slope)


_LEAKY = _chain(_leaky_f, lambda t, s, n: jnp.where(t > 0, 1.0, s), _zero, native=(None, _leaky_d1_native))


def _leaky_bf16_float32(x, s):
    """leaky_relu of a bfloat16 ``x`` in float32 arithmetic: ``s = hi + lo`` with ``hi`` on 16
    bits, so that ``x * hi`` is exact (8 + 16 bits), both products scaled by ``2**k`` (the
    largest power keeping ``|x s| 2**k`` below float32's range: results near bfloat16's
    smallest normal stay normal in float32), rounded to bfloat16 and scaled back.  Not
    correct for every slope (two roundings); ``_bf16_product_on_cpu`` decides where it is
    used."""
    hi, lo = _split(s, 16)
    k = max(0, math.floor(-math.log2(abs(s))) - 1) if s != 0 else 0
    h, l, back = (np.float32(math.ldexp(hi, k)), np.float32(math.ldexp(lo, k)), np.float32(2.0 ** -k))
    x32 = x.astype(jnp.float32)
    p = x32 * h if l == 0 else x32 * h + x32 * l  # l = 0 (slopes such as 0.5): no inf * 0
    p = p.astype(jnp.bfloat16).astype(jnp.float32) * back
    return jnp.where(jnp.signbit(x), p.astype(jnp.bfloat16), x)


@functools.lru_cache(maxsize=None)
def _bf16_product_on_cpu(s: float) -> bool:
    """Whether ``_leaky_bf16_float32`` gives, on XLA's CPU backend, the exact path's bits on
    every bfloat16 input (the positive subnormals aside, which it returns unchanged, as the
    exact value is, where the float64 path reads them as 0): an exhaustive proof, both
    evaluated on all 65536 patterns on the CPU at trace time (about 0.2 s, once per slope).
    0.001, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3 and 0.5 pass; 0.33 and negative slopes do not, and
    keep the table; so does a process without the CPU backend."""
    cpu = _cpu_device()
    if cpu is None:
        return False
    with jax.ensure_compile_time_eval():
        every = jax.device_put(lax.bitcast_convert_type(jnp.arange(65536, dtype=jnp.uint16), jnp.bfloat16), cpu)
        exact = jax.jit(lambda x: in_float64(lambda t: _leaky_f(t, s, "exact"), x))(every)
        fast = jax.jit(lambda x: _leaky_bf16_float32(x, s))(every)
        exact, fast, x = (np.asarray(v).astype(np.float32) for v in (exact, fast, every))
    same = (exact.view(np.uint32) == fast.view(np.uint32)) | (np.isnan(exact) & np.isnan(fast))
    return bool(np.all(same | (x > 0)) and np.all(fast[x > 0] == x[x > 0]))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _leaky_bf16(x, s):
    """bfloat16 leaky_relu for a slope ``_bf16_product_on_cpu`` accepts: the float32 formula on
    the CPU, the table elsewhere; the derivative is the chain's."""
    return lax.platform_dependent(x, cpu=lambda x: _leaky_bf16_float32(x, s),
                                  default=lambda x: _LEAKY(x, (s, "exact")))


@_leaky_bf16.defjvp
def _leaky_bf16_jvp(s, primals, tangents):
    (x,), (dx,) = primals, tangents
    return _leaky_bf16(x, s), jax.jvp(lambda v: _LEAKY(v, (s, "exact")), (x,), (dx,))[1]


def _elu_f(t, a):
    return jnp.where(t > 0, t, a * jnp.expm1(jnp.minimum(t, 0.0)))


_ELU = _chain(_elu_f,
              lambda t, a: jnp.where(t > 0, 1.0, a * jnp.exp(jnp.minimum(t, 0.0))),
              lambda t, a: jnp.where(t > 0, 0.0, a * jnp.exp(jnp.minimum(t, 0.0))),
              fast32=(lambda t, a: _elu32(t, a),
                      lambda t, a: jnp.where(t > 0, 1.0, a * _exp_left32(t)),
                      lambda t, a: jnp.where(t > 0, 0.0, a * _exp_left32(t))),
              f64=((_act64.elu, 800.0), (_act64.elu_d1, 800.0), (_act64.elu_d2, 800.0)))
_CELU = _chain(lambda t, a: jnp.where(t > 0, t, a * jnp.expm1(jnp.minimum(t, 0.0) / a)),
               lambda t, a: jnp.where(t > 0, 1.0, jnp.exp(jnp.minimum(t, 0.0) / a)),
               lambda t, a: jnp.where(t > 0, 0.0, jnp.exp(jnp.minimum(t, 0.0) / a) / a),
               fast32=(lambda t, a: jnp.where(t > 0, t, a * _fast64.expm1(jnp.minimum(t, 0.0) / a)),
                       lambda t, a: jnp.where(t > 0, 1.0, _exp_left32(t / a)),
                       lambda t, a: jnp.where(t > 0, 0.0, _exp_left32(t / a) / a)),
               f64=((_act64.celu, 1e6, 1.0), (_act64.celu_d1, 1e6), (_act64.celu_d2, 1e6)))
_SELU = _chain(lambda t: SELU_SCALE * _elu_f(t, SELU_ALPHA),
               lambda t: jnp.where(t > 0, SELU_SCALE, (SELU_SCALE * SELU_ALPHA) * jnp.exp(jnp.minimum(t, 0.0))),
               lambda t: jnp.where(t > 0, 0.0, (SELU_SCALE * SELU_ALPHA) * jnp.exp(jnp.minimum(t, 0.0))),
               fast32=(lambda t: SELU_SCALE * _elu32(t, SELU_ALPHA),
                       lambda t: jnp.where(t > 0, SELU_SCALE, (SELU_SCALE * SELU_ALPHA) * _exp_left32(t)),
                       lambda t: jnp.where(t > 0, 0.0, (SELU_SCALE * SELU_ALPHA) * _exp_left32(t))),
               f64=((lambda t: jnp.where(t > 0, SELU_SCALE * t, _act64.selu_left(t)), 800.0,
                     (_act64.SELU_SCALE_ALPHA, SELU_SCALE)),
                    (lambda t: jnp.where(t > 0, SELU_SCALE, _act64.selu_d_left(t)), 800.0),
                    (lambda t: jnp.where(t > 0, 0.0, _act64.selu_d_left(t)), 800.0)))


def _phi(t):
    return _INV_SQRT_2PI * jnp.exp(-0.5 * t * t)


def _gelu_f(t):
    y = 0.5 * t * jax.lax.erfc(-t * _SQRT_HALF)
    return jnp.where(t == -jnp.inf, -0.0, y)


def _gelu_d1(t):
    d = 0.5 * jax.lax.erfc(-t * _SQRT_HALF) + t * _phi(t)
    return _negative_tail(t, jnp.where(t == jnp.inf, 1.0, d))


def _gelu_d2(t):
    # negative in both tails: -0 where it underflows, for |t| > 40 (|gelu''| < 2**-1100;
    # t*t would overflow for float64 |t| > 1.3e154) and at ±inf
    d = _phi(t) * (2.0 - t * t)
    return jnp.where((jnp.abs(t) > 40) | (d == 0), -0.0, d)


_GELU = _chain(_gelu_f, _gelu_d1, _gelu_d2, fast32=(_gelu32, _gelu_d1_32, _gelu_d2_32), pair32=_gelu_pair32,
               f64=((_act64.gelu, 39.5, 0.5), (_act64.gelu_d1, 39.5), (_act64.gelu_d2, 39.5)), tiny=((0.5, math.inf),))


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
    return _negative_tail(t, jnp.where(jnp.abs(t) > 1e50, jnp.where(t > 0, 1.0, -0.0), d))


def _gelu_tanh_d2(t):
    """``s s_ (4u' + 2t u'' - 4t u'^2 tanh u)``, ``s = sigmoid(2u)``, ``s_ = sigmoid(-2u)``,
    ``u' = sqrt(2/pi)(1 + 3c t^2)``, ``u'' = 6 sqrt(2/pi) c t``; negative in both tails."""
    u2, tc = _gelu_tanh_u2(t)
    u1 = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_C * tc * tc)
    bracket = 4.0 * u1 + (12.0 * _SQRT_2_OVER_PI * _GELU_C) * tc * tc - 4.0 * tc * u1 * u1 * jnp.tanh(0.5 * u2)
    w = _sig(u2) * _sig(-u2)
    return jnp.where((w == 0) | (jnp.abs(t) > 1e50), -0.0, w * bracket)


_GELU_TANH = _chain(_gelu_tanh_f, _gelu_tanh_d1, _gelu_tanh_d2, fast32=(_gelu_tanh32, _gelu_tanh_d1_32),
                    f64=((_act64.gelu_tanh, 30.0), (_act64.gelu_tanh_d1, 30.0), (_act64.gelu_tanh_d2, 30.0)),
                    tiny=((0.5, math.inf),))


def _silu_f(t):
    return jnp.where(t == -jnp.inf, -0.0, t * _sig(t))


def _silu_d1(t):
    d = _sig(t) * (1.0 + t * _sig(-t))
    return _negative_tail(t, jnp.where(t == jnp.inf, 1.0, d))


def _silu_d2(t):
    # sigmoid(-t) - sigmoid(t) = -tanh(t/2), without its cancellation at 0;
    # negative in both tails (-0 where it underflows and at ±inf)
    d = _sig(t) * _sig(-t) * (2.0 - t * jnp.tanh(0.5 * t))
    return jnp.where(jnp.isinf(t), -0.0, d)


_SILU = _chain(_silu_f, _silu_d1, _silu_d2, fast32=(_silu32, lambda t: _near_half(t, 0.5, _silu_d1_32), _silu_d2_32),
               f64=((_act64.silu, 800.0), (_act64.silu_d1, 800.0), (_act64.silu_d2, 800.0)), tiny=((0.5, math.inf),))


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
    return _negative_tail(t, jnp.where(t > 40, 1.0, d))


def _mish_d2(t):
    """``S s (2 + t s_ - 2 t g s)`` with ``g = tanh(softplus t)``, ``S = 1 - g^2``,
    ``s = sigmoid(t)``, ``s_ = sigmoid(-t)``; for t > 0, g and S from ``w = e^-t``
    (``S = 4 w^2 (1+w)^2 / d^2``, ``d = 1 + 2w + 2w^2``), which keeps S accurate
    where ``e^t`` would overflow.  Negative in both tails."""
    e = jnp.exp(jnp.minimum(t, 0.0))
    n = e * (e + 2.0)
    w = jnp.exp(-jnp.maximum(t, 0.0))
    dd = 1.0 + 2.0 * w + 2.0 * w * w
    g = jnp.where(t > 0, 1.0 - 2.0 * w * w / dd, n / (n + 2.0))
    big_s = jnp.where(t > 0, 4.0 * (w * (1.0 + w)) ** 2 / (dd * dd), 4.0 * (n + 1.0) / ((n + 2.0) * (n + 2.0)))
    s, sm = _sig(t), _sig(-t)
    ss = big_s * s
    d = ss * (2.0 + t * sm - 2.0 * t * g * s)
    return jnp.where(jnp.isinf(t) | (ss == 0), -0.0, d)


_MISH = _chain(_mish_f, _mish_d1, _mish_d2, fast32=(_mish32, _mish_d1_32), own_copy=True,
               f64=((_act64.mish, 800.0, _act64.MISH_SLOPE), (_act64.mish_d1, 800.0), (_act64.mish_d2, 800.0)))
_SIGMOID = _chain(_sig,
                  _sig_d1,
                  # sigmoid(-t) - sigmoid(t) = -tanh(t/2): exact in sign, accurate at 0
                  lambda t: -_sig_d1(t) * _tanh_k(t, 1.0, 1.0),
                  fast32=(_sig32_cr, _sig_d1_32, lambda t: -_sig_d1_32(t) * _tanh32(0.5 * t)),
                  f64=((_act64.sigmoid, 800.0), (_act64.sigmoid_d1, 800.0), (_act64.sigmoid_d2, 800.0)),
                  tiny=(None, None, (-0.125, 0.0)))
_LOG_SIGMOID = _chain(lambda t: jnp.where(t > 0, -jnp.log1p(jnp.exp(-t)), t - jnp.log1p(jnp.exp(jnp.minimum(t, 0.0)))),
                      lambda t: _sig(-t),
                      lambda t: -_sig_d1(t),
                      fast32=(lambda t: jnp.minimum(t, 0.0) - _softplus_parts32(t),
                              lambda t: _sig32_cr(-t), lambda t: -_sig_d1_32(t)),
                      f64=((_act64.log_sigmoid, 800.0), (lambda t: _act64.sigmoid(-t), 800.0),
                           (lambda t: -_act64.sigmoid_d1(t), 800.0)))
_TANH = _chain(jnp.tanh, _sech2, lambda t: -2.0 * _tanh_k(t, 2.0, 0.5) * _sech2(t),
               fast32=(_tanh32, _sech2_32, lambda t: -2.0 * _tanh32(t) * _sech2_32(t)),
               f64=((_act64.tanh, 400.0), (_act64.tanh_d1, 400.0), (_act64.tanh_d2, 400.0)))
_SOFTPLUS = _chain(lambda t: jnp.maximum(t, 0.0) + jnp.log1p(jnp.exp(-jnp.abs(t))),
                   _sig,
                   _sig_d1,
                   fast32=(lambda t: jnp.maximum(t, 0.0) + _softplus_parts32(t), _sig32_cr, _sig_d1_32),
                   f64=((_act64.softplus, 800.0), (_act64.sigmoid, 800.0), (_act64.sigmoid_d1, 800.0)))
_HARD_SIGMOID = _chain(lambda t: jnp.clip(t + 3.0, 0.0, 6.0) / 6.0,
                       lambda t: jnp.where((t > -3) & (t < 3), 1.0 / 6.0, 0.0), _zero,
                       f64=((_act64.hard_sigmoid, 1e300),),
                       native=(None, lambda x: _box16(x, -3.0, 3.0, 1.0 / 6.0) if x.dtype.itemsize == 2 else None))
_HARD_SWISH = _chain(lambda t: jnp.where(t <= -3, -0.0, jnp.where(t >= 3, t, t * (t + 3.0) / 6.0)),
                     lambda t: jnp.where(t <= -3, 0.0, jnp.where(t >= 3, 1.0, (2.0 * t + 3.0) / 6.0)),
                     lambda t: jnp.where((t > -3) & (t < 3), 1.0 / 3.0, 0.0),
                     f64=((_act64.hard_swish, 1e300, 0.5), (_act64.hard_swish_d1, 1e300)), tiny=((0.5, math.inf),))
def _softsign_d1_32(t):
    # 1 / (1 + |t|)^2 in plain float64 (three roundings, 2**-51 relative: enough for a float32
    # result; the compensated _over_square_one_plus is for float64 results, and its
    # optimization barrier splits the fusion); 1 + |t| is exact for |t| >= 2**-29
    a = 1.0 + jnp.abs(t)
    return jnp.where(jnp.isinf(t), 0.0, 1.0 / (a * a))


_SOFTSIGN = _chain(lambda t: jnp.where(jnp.isinf(t), jnp.sign(t), t / (1.0 + jnp.abs(t))),
                   lambda t: jnp.where(jnp.isinf(t), 0.0, _over_square_one_plus(1.0, jnp.abs(t))),
                   lambda t: -2.0 * jnp.sign(t) / ((1.0 + jnp.abs(t)) ** 3),
                   fast32=(None, _softsign_d1_32),
                   f64=((_act64.softsign, 1e290), (_act64.softsign_d1, 1e300)))


# ---- the parameters of the public functions -----------------------------------------
# One checker per op with parameters, used by the op (at trace time) and by its layer class (at
# construction): the keyword arguments in, the checked values out, or an error naming the
# parameter, the value and the fix.

def _leaky_relu_params(negative_slope: float = 0.01):
    return {"negative_slope": check_finite_param("negative_slope", negative_slope)}


def _elu_params(alpha: float = 1.0):
    return {"alpha": check_finite_param("alpha", alpha, nonnegative=True)}


def _celu_params(alpha: float = 1.0):
    return {"alpha": check_finite_param("alpha", alpha, positive=True)}


def _gelu_params(approximate: bool = False):
    if not isinstance(approximate, (bool, np.bool_)):
        raise TypeError(f"approximate must be a bool, got {approximate!r}; pass True or False")
    return {"approximate": bool(approximate)}


def _hard_tanh_params(min_val: float = -1.0, max_val: float = 1.0):
    lo, hi = check_finite_param("min_val", min_val), check_finite_param("max_val", max_val)
    if not lo < hi:
        raise ValueError(f"hard_tanh: min_val must be below max_val, got min_val={min_val!r}, "
                         f"max_val={max_val!r}; pass min_val < max_val, such as -1.0 and 1.0")
    return {"min_val": lo, "max_val": hi}


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

    On XLA's CPU backend float32 and bfloat16 inputs take cheaper programs (two roundings)
    for the slopes where a trace-time proof shows they give the correctly rounded product
    on every input (``_rounds_once_on_cpu``, ``_bf16_product_on_cpu``): 0.01, 0.1, 0.2, 0.3
    and others; the rest, and other backends, round an exact TwoProduct once.
    """
    s = _leaky_relu_params(negative_slope)["negative_slope"]
    x = as_float_array(x)
    if x.dtype == jnp.float64:
        mode = "float64"
    elif x.dtype == jnp.float32 and _rounds_once_on_cpu(s):
        mode = "float32-cpu"
    elif x.dtype == jnp.bfloat16 and _bf16_product_on_cpu(s):
        return _leaky_bf16(x, s)
    else:
        mode = "exact"
    return _LEAKY(x, (s, mode))


@functools.partial(jax.jit, static_argnames=("alpha",))
def elu(x, alpha=1.0):
    r""":math:`x` for :math:`x > 0`, :math:`\alpha\,\mathrm{expm1}(x)` otherwise (``alpha >= 0``)."""
    return _ELU(as_float_array(x), (_elu_params(alpha)["alpha"],))


@functools.partial(jax.jit, static_argnames=("alpha",))
def celu(x, alpha=1.0):
    r""":math:`\max(0,x) + \min(0, \alpha\,\mathrm{expm1}(x/\alpha))` (``alpha > 0``)."""
    return _CELU(as_float_array(x), (_celu_params(alpha)["alpha"],))


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
    op = _GELU_TANH if _gelu_params(approximate)["approximate"] else _GELU
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



def _hard_tanh16(x, lo, hi):
    """hard_tanh of a 16-bit ``x`` on the bit patterns: ``lo`` (rounded to the dtype) for
    ``x <= lo``, else ``hi`` for ``x >= hi``, else ``x``; NaN for NaN."""
    if x.dtype.itemsize != 2:
        return None
    k = _key16(x)
    y = jnp.where(k <= _bound_key16(lo, x.dtype, False), _const16(lo, x.dtype),
                  jnp.where(k >= _bound_key16(hi, x.dtype, True), _const16(hi, x.dtype), x))
    return _nan16(x, y)


_HARD_TANH = _chain(lambda t, lo, hi: jnp.where(t <= lo, lo, jnp.where(t >= hi, hi, t)),
                    lambda t, lo, hi: jnp.where((t > lo) & (t < hi), 1.0, 0.0), _zero,
                    native=(_hard_tanh16, lambda x, lo, hi: _box16(x, lo, hi, 1.0) if x.dtype.itemsize == 2 else None))


@functools.partial(jax.jit, static_argnames=("min_val", "max_val"))
def hard_tanh(x, min_val=-1.0, max_val=1.0):
    r""":math:`\min(\max(x, \mathrm{min\_val}), \mathrm{max\_val})` (PyTorch's ``Hardtanh``).

    ``x`` inside ``(min_val, max_val)`` is returned as it is (so -0 -> -0); at or beyond a
    bound, the bound's exact binary64 value rounded once to the dtype.  Derivative 1 on
    ``(min_val, max_val)``, 0 elsewhere (0 at both kinks, as in PyTorch).  ``min_val <
    max_val``, both finite Python floats.
    """
    p = _hard_tanh_params(min_val, max_val)
    return _HARD_TANH(as_float_array(x), (p["min_val"], p["max_val"]))


# ---- the layer classes of impl.nn ------------------------------------------------
# (class name, op, what the class says).  impl._activation_layers builds each class from its op:
# the constructor takes the op's parameters with the op's defaults and checks them with the op's
# checker (_<op>_params), and calling the layer calls the op.

LAYERS = (
    ("ReLU", "relu", "``relu(x) = max(x, 0)``."),
    ("ReLU6", "relu6", "``relu6(x) = min(max(x, 0), 6)``."),
    ("LeakyReLU", "leaky_relu", "``x`` for x >= 0, ``negative_slope * x`` below (default slope 0.01)."),
    ("ELU", "elu", "``x`` for x > 0, ``alpha * expm1(x)`` otherwise (``alpha >= 0``, default 1.0)."),
    ("CELU", "celu", "``max(0, x) + min(0, alpha * expm1(x / alpha))`` (``alpha > 0``, default 1.0)."),
    ("SELU", "selu", "Scaled ELU with the standard constants."),
    ("GELU", "gelu", "GELU, exact erf form by default; ``approximate=True`` for the tanh form."),
    ("SiLU", "silu", "``silu(x) = x * sigmoid(x)`` (a.k.a. swish)."),
    ("Mish", "mish", "``mish(x) = x * tanh(softplus(x))``."),
    ("Sigmoid", "sigmoid", "``sigmoid(x) = 1 / (1 + exp(-x))``."),
    ("LogSigmoid", "log_sigmoid", "``log_sigmoid(x) = -softplus(-x)``."),
    ("Tanh", "tanh", "Hyperbolic tangent."),
    ("Softplus", "softplus", "``softplus(x) = log(1 + exp(x))``."),
    ("Hardsigmoid", "hard_sigmoid", "``relu6(x + 3) / 6``."),
    ("Hardswish", "hard_swish", "``x * relu6(x + 3) / 6``."),
    ("Softsign", "softsign", "``x / (1 + |x|)``."),
    ("Hardtanh", "hard_tanh", "``min(max(x, min_val), max_val)`` (``min_val < max_val``, default -1.0 and 1.0)."),
)

__all__ = sorted(op for _, op, _ in LAYERS)  # the public ops (impl.functional re-exports them)
