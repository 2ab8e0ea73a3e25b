r"""Softmax family and normalization layers, accurate at any mean offset.

Layout is channels-last: features are on the last axis.

Statistics (``docs/reductions.md`` has the whole story)
--------------------------------------------------------

Every op evaluates in float64 (``jax.enable_x64`` inside the jitted function,
without touching the global flag) and rounds the result to the input's dtype:
once for the softmax family (``_core.narrow``: round-to-odd through float32
for bfloat16/float16), through float32 for the normalizations (``_in64``).
The mean is subtracted by the *corrected two-pass* algorithm:

.. math::

   m_0 = \mathrm{fl}\Big(\sum x_i / n\Big),\quad u_i = x_i - m_0,\quad
   c = \sum u_i / n,\quad d_i = u_i - c,\quad
   \sigma^2 = \sum u_i^2 / n - c^2 .

(for inputs narrower than float64, ``m_0`` is the float32 mean, a float32
value, except in a sharded batch_norm: see ``_moments``).  ``m_0 + c`` is the mean as an unevaluated double-float64 sum, so ``d_i`` is the
deviation from the exact mean with an error of a few float64 ulps *of d_i*,
whatever the offset: the error does not grow with ``|mean| / std``
(``E[x^2] - E[x]^2`` loses ``2 log2(|mean|/std)`` bits, a float32 two-pass
``log2(|mean|/std)`` bits).  For float16/bfloat16/float32 inputs ``u_i`` is
exact unless ``|x_i|`` and ``|m_0|`` are more than ``2**28`` apart (the
difference then still has a relative error of ``2**-53``).  The divisions by
``n`` are true divisions (``_div_n``): XLA would multiply by a rounded ``1/n``
and the CPU backend may fuse ``x - s * (1/n)`` into an FMA in one place and
not in another, so the deviations of a constant row would not all be 0.
The output is

.. math::

   y_i = \frac{d_i}{\sqrt{\sigma^2 + \varepsilon}} \cdot w + b,

evaluated in float64 (``eps`` is its exact binary64 value, added to the
*biased* variance, as in PyTorch) and rounded once.  An exactly zero result
is ``+0``.  A constant input has ``d_i = 0`` exactly, so it gives exactly
``bias`` (``+0`` without bias), never NaN, even with ``eps = 0``.

batch_norm's running statistics follow PyTorch: ``running = (1 - momentum) *
running + momentum * batch``, with the batch's *unbiased* variance
``sigma^2 * n / (n - 1)`` (the output uses the biased one), evaluated in
float64 and rounded once to the dtype of the running statistics.

Softmax
-------

``s_j = x_j - max(x)`` is kept as an exact pair ``hi + lo`` (TwoSum);
``e_j = exp(hi_j) (1 + lo_j)``; with ``r`` the sum of the ``e_j`` without one
maximum (its ties, ``s_j = 0``, add exactly 1 each),

.. math::

   \mathrm{softmax}_j = e_j / (1 + r),\qquad
   \mathrm{log\_softmax}_j = s_j - \mathrm{log1p}(r),

so ``log_softmax`` of the largest logit is ``-log1p(r)`` with full relative
accuracy (``-7.56e-9``, not ``0``, for the logits ``[0, -18.7]``).  For
outputs narrower than float64, log_softmax rounds ``(hi - log1p r) + lo`` to
odd in float64 from its exact pair, so an ``s_j`` that sits on a float32
midpoint, minus a tiny ``log1p r``, is still rounded once and correctly (a
``log1p r`` that underflows in float64 counts as "just below").

Derivatives: every op carries a custom JVP evaluated in float64 and rounded
once to the input's dtype.  The normalizations (``eps > 0``; ``eps = 0`` is
differentiated through its float64 formula, with ``x`` widened once so that the gradient is
rounded once too: ``_one_widening``) use the textbook derivative
``r (dx - mean dx - xhat mean(xhat dx)) w + xhat dw + db`` (rms_norm:
``r (dx - x r^2 mean(x dx)) w + x r dw``; training batch_norm adds its running
statistics' tangents) from the value's statistics, with ``xhat`` recomputed by
each consumer (``_fresh``), so no float64 array is written between the passes;
softmax and log_softmax use ``p (dx - <p, dx>)`` and ``dx - <p, dx>`` with
``p`` in float64 (recomputed by each pass above ``_SMALL_P_BYTES`` from 4096 rows on;
stored otherwise), and
derivative 0 on rows whose value is a limit (``+inf`` entries, all ``-inf``);
a non-finite tangent where ``p = 0`` gives NaN, as plain automatic
differentiation does.  ``tests/test_reduction_vjps.py`` checks them against
exact VJPs.

Edge rows (NaN only from NaN input):

* a NaN entry makes the whole row NaN;
* ``-inf`` entries get probability ``+0`` (log ``-inf``) and do not count;
* ``+inf`` entries share the mass equally: ``k`` of them get ``1/k`` each
  (log ``-log k``), every other entry ``+0`` (log ``-inf``): the limit of
  ``softmax`` when those logits grow together;
* a row of only ``-inf`` is the uniform distribution ``1/n`` (log ``-log n``):
  softmax is shift-invariant, and that is its limit for a row of equal logits
  going to ``-inf``.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from . import _fast64
from ._activations import _round_to_odd_f64
from ._core import as_float_array, check_finite_param, narrow
from ._dd import two_sum as _two_sum  # Knuth's TwoSum, shared with the double-double kernels

__all__ = [
    "softmax", "log_softmax", "batch_norm", "layer_norm", "group_norm",
    "instance_norm", "rms_norm",
]


_NARROW = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))


# ---- parameter checks (trace time) ----------------------------------------------

def _check_axis(axis, ndim: int, name: str = "axis") -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {axis!r} ({type(axis).__name__}); pass e.g. {name}=-1")
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"{name}={axis} is out of range for an input of rank {ndim}; pass an axis in [{-ndim}, {ndim - 1}]"
            if ndim else f"{name}={axis}: the input is a scalar (rank 0); pass an array with at least one axis")
    return axis % ndim


def _check_eps(eps) -> float:
    return check_finite_param("eps", eps, nonnegative=True)


def _check_momentum(momentum) -> float:
    m = check_finite_param("momentum", momentum)
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum!r}; pass e.g. momentum=0.1 "
                         f"(running = (1 - momentum) * running + momentum * batch)")
    return m


def _check_bool(name, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r} ({type(value).__name__}); pass True or False")
    return bool(value)


def _normalized_shape(normalized_shape) -> tuple[int, ...]:
    if isinstance(normalized_shape, (int, np.integer)) and not isinstance(normalized_shape, bool):
        normalized_shape = (int(normalized_shape),)
    try:
        ns = tuple(normalized_shape)
    except TypeError:
        raise TypeError(f"normalized_shape must be an int or a tuple of ints, got {normalized_shape!r}; "
                        f"pass e.g. normalized_shape=(10,)") from None
    if not ns or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0 for d in ns):
        raise ValueError(f"normalized_shape must be a non-empty tuple of positive ints, got {normalized_shape!r}; "
                         f"pass e.g. normalized_shape=(10,)")
    return tuple(int(d) for d in ns)


def _param(p, name: str, shape: tuple, what: str):
    """``p`` as a float array of ``shape`` (``None`` passes through)."""
    if p is None:
        return None
    p = as_float_array(p, name)
    if tuple(p.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(p.shape)}, expected {tuple(shape)} ({what}); "
                         f"pass an array of shape {tuple(shape)} or None")
    return p


def _nonempty(x, n: int, op: str):
    if n == 0:
        raise ValueError(f"{op}: the statistics would be taken over zero elements (input shape {tuple(x.shape)}); "
                         f"pass an input with at least one element per statistic")


# ---- float64 helpers --------------------------------------------------------------

def _f64(a):
    return None if a is None else a.astype(jnp.float64)


def _div_n(a, n):
    """``a / n`` as a true, correctly rounded division.

    XLA rewrites a division by a broadcast scalar into a multiplication by its
    rounded reciprocal, and the CPU backend may then fuse ``t - s * (1/n)`` into
    one FMA in one place and not in another.  The mean of a constant row would
    then not be that constant, and its "zero" deviations would differ from 0 by
    an ulp of the mean.  Dividing by an opaque array of ``a``'s shape keeps a real
    division, so ``m0``, ``u`` and ``c`` are the same wherever they are used.
    """
    return a / lax.optimization_barrier(jnp.full(a.shape, n, jnp.float64))


def _fresh(*arrays):
    """The same values as new JAX values (``lax.optimization_barrier``), meant to keep XLA's
    common-subexpression pass from merging an expression recomputed from them with the
    original (what they achieve on jaxlib 0.10: the last paragraph).  Inside
    ``_one_widening`` (the ``eps = 0`` derivatives) they are the inputs themselves.

    On XLA's CPU backend a full-size float64 expression used by two fusions
    (say ``x - m0`` feeding both sums of ``_moments``) is written to memory
    once and read twice.  A float64 temporary of 32 MB or more is a fresh
    ``mmap`` at every call, whose page faults cost several times the whole
    op, so each consumer was written to recompute the expression from its own copy.

    On jaxlib 0.10 the barriers themselves are gone from the optimized HLO, but they still
    shape it: rms_norm's forward pass writes no float64 array with them and 8 MiB without at
    1024 rows of 1024 (``_rms_value``).  Not every arrangement keeps its copies apart:
    log_softmax's tie count and sum of exponentials, below 4096 rows, shared ``x - M`` until the
    count was written with expressions and constants of its own (``_tie_count``); each use is
    measured, not assumed.
    """
    if getattr(_ONE_WIDENING, "on", False):
        return arrays
    global _FRESH_TAG
    _FRESH_TAG += 1  # a distinct operand, so that two barriers of the same values stay two
    return lax.optimization_barrier(arrays + (np.int32(_FRESH_TAG),))[:-1]


_FRESH_TAG = 0
_ONE_WIDENING = threading.local()


@contextlib.contextmanager
def _one_widening():
    """Trace the derivatives of the ``eps = 0`` formulas (``_differentiated_once``), which JAX
    differentiates, without ``_fresh`` copies.

    Each copy, and each ``_wide`` of it, widens ``x`` on its own, and the transpose of each
    widening rounds that path's cotangent to ``x``'s dtype before the paths are added; the
    normalizations' paths cancel, and the gradient was off by tens to thousands of ulps
    (measured, float32: layer_norm up to 11,681 at rows of 1024, 132 at rows of 33; group,
    instance and batch norm 32-89; rms_norm with two copies 12,149).  Here ``x`` is widened once (``_wide`` shares one
    conversion per array), the cotangents meet in float64 and are rounded once.  The values
    are the same."""
    before = getattr(_ONE_WIDENING, "on", False), getattr(_ONE_WIDENING, "memo", None)
    _ONE_WIDENING.on, _ONE_WIDENING.memo = True, {}
    try:
        yield
    finally:
        _ONE_WIDENING.on, _ONE_WIDENING.memo = before


def _differentiated_once(formula, nondiff_argnums):
    """``formula`` as a ``custom_jvp`` whose derivative is JAX's derivative of ``formula``
    itself, traced inside ``_one_widening``: for the ``eps = 0`` normalizations, whose value
    keeps its ``_fresh`` copies (no float64 array written out) and whose derivatives widen
    ``x`` once, so that reverse mode rounds the gradient once.  The non-differentiable
    arguments are the trailing ones (as in every use here)."""
    first = nondiff_argnums[0]
    if tuple(nondiff_argnums) != tuple(range(first, first + len(nondiff_argnums))):
        raise ValueError(f"_differentiated_once needs the non-differentiable arguments last and "
                         f"contiguous, got nondiff_argnums={nondiff_argnums}; reorder the formula's arguments")
    op = jax.custom_jvp(formula, nondiff_argnums=nondiff_argnums)

    @op.defjvp
    def _jvp(*args):
        static, (primals, tangents) = args[:-2], args[-2:]
        with _one_widening():
            return jax.jvp(lambda *diff: formula(*diff, *static), primals, tangents)

    return op


def _wide(x):
    """``x`` in float64; inside ``_one_widening`` one conversion per array, shared by its uses."""
    memo = getattr(_ONE_WIDENING, "memo", None)
    if memo is None:
        return x.astype(jnp.float64)
    hit = memo.get(id(x))
    if hit is None or hit[0] is not x:
        hit = memo[id(x)] = (x, x.astype(jnp.float64))
    return hit[1]


def _moments(x, axes, axis_name=None, copy=0):
    """Corrected two-pass statistics of ``x`` over ``axes`` (keepdims), in float64.

    Returns ``(m0, c, var, n)``: the shift ``m0``, the correction ``c`` (so the
    deviations are ``(x - m0) - c`` and the mean ``m0 + c``), the biased
    variance and the element count (a Python int; summed over ``axis_name``
    when given).

    For a float32, bfloat16 or float16 ``x`` the shift is the float32 mean of
    ``x``: any shift works (the correction ``c`` makes the deviations exact), and
    one close to the mean keeps ``c * c`` from cancelling ``sum(u * u) / n``.
    The float32 sum (of terms scaled by ``2**-k >= 1/n``, so it cannot
    overflow) is within ``n 2**-24 sum |x|`` of the exact one, so ``|c| / sigma``
    stays below about ``n 2**-24 (1 + |mean| / sigma)``.  ``m0`` is a float32
    value, so ``u = x - m0`` (two float32 values) is exact in float64 unless
    ``|x|`` and ``|m0|`` are more than ``2**29`` apart.  The float32 pass costs
    a quarter of a float64 one.

    Each statistic is a separate single-output sum of an expression of the
    input, recomputed from ``_fresh`` copies, so that no full-size float64
    intermediate is written.  ``copy = j`` scales the float32 pass by
    ``2**-(k + j)`` instead (the same ``m0`` unless terms underflow; any shift
    would do): a second computation
    of the statistics (a derivative's) then shares no constant with the first,
    which XLA would broadcast to full size and write out for both (16 MiB at
    2**22 elements).
    """
    n = math.prod(x.shape[a] for a in axes)
    total = functools.partial(jnp.sum, axis=axes, keepdims=True)
    if x.dtype != jnp.float64 and axis_name is None:
        k = max(n - 1, 1).bit_length() + copy
        s0 = total(x.astype(jnp.float32) * jnp.float32(2.0 ** -k))
        m0 = (s0 * jnp.float32(2.0 ** k / n)).astype(jnp.float64)  # a float32 value: x - m0 is exact
    else:
        s1 = total(_wide(x))
        if axis_name is not None:
            s1 = lax.psum(s1, axis_name)
            n = lax.psum(n, axis_name)
        m0 = _div_n(s1, n)
    # the result does not depend on the shift (the correction c absorbs it: d/dm0 of
    # (x - m0) - mean(x - m0) is 0), so where JAX differentiates this (eps = 0) no cotangent
    # goes through the float32 pass, whose roundings would reach x's gradient
    m0 = lax.stop_gradient(m0)
    xa, ma = _fresh(x, m0)
    su = total(_wide(xa) - ma)
    xb, mb = _fresh(x, -m0)  # x + (-m0): the same values, an expression XLA does not merge with x - m0
    suu = total(jnp.square(_wide(xb) + mb))
    if axis_name is not None:
        su, suu = lax.psum((su, suu), axis_name)
    c = _div_n(su, n)
    var = jnp.maximum(_div_n(suu, n) - c * c, 0.0)
    return m0, c, var, n


def _deviations(x, m0, c):
    """``(x - m0) - c`` in float64, recomputed from fresh copies (see ``_fresh``)."""
    xo, mo, co = _fresh(x, m0, c)
    return (_wide(xo) - mo) - co


def _scale_centred(d, var, eps):
    """``d / sqrt(var + eps)`` for the batch statistics, where ``var >= 0`` (or NaN).

    With ``eps > 0`` (a static Python float) the divisor is positive, so the
    plain quotient needs no select.  (XLA compiles it as ``d * rsqrt(var + eps)``:
    float64 ``rsqrt`` measured within 1.17 ulp on the CPU, so the quotient is
    within about 1.7 ulp of float64, not one rounding.)  An elementwise
    select here would make XLA's CPU backend split the fusion and write the
    float64 deviations out to memory, which costs 4x the whole op.  ``eps = 0``
    takes ``_scale``.
    """
    if eps > 0:
        return d / jnp.sqrt(var + eps)
    return _scale(d, var, eps)


def _scale(d, var, eps):
    """``d / sqrt(var + eps)``.  ``var + eps == 0`` (only with ``eps = 0``): a zero ``d``
    stays 0 (a constant input, whose deviations are all exactly 0), a nonzero ``d``
    (eval mode with a zero running variance) gives ``±inf``.  The selects keep every
    branch finite where it is not taken, so gradients stay finite."""
    v = var + eps
    pos = v > 0
    y = d / jnp.sqrt(jnp.where(pos, v, 1.0))
    return jnp.where(pos | (d == 0), y, d * jnp.where(pos, 1.0, jnp.inf))


def _affine(y, w, b):
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y + 0.0  # an exact zero is +0 (-0 + 0 = +0)


def _in64(fn, out_dtypes, *arrays, once=True):
    """Evaluate ``fn(*float64 arrays)`` with x64 on and round each output to its dtype.

    ``once=True``: one rounding (``narrow``: round-to-odd through float32 for
    bfloat16/float16).  ``once=False``: a plain conversion, which XLA's CPU
    backend rounds through float32 for bfloat16/float16 (double rounding: the
    result is the correctly rounded one unless the float32 value lands exactly
    on a midpoint of the narrow format, about ``2**-16`` of bfloat16 and
    ``2**-13`` of float16 outputs, and is then within ``0.5 + 2**-17`` and
    ``0.5 + 2**-14`` ulp: half a float32 ulp in units of the narrow one).  The normalizations take ``once=False``:
    the round-to-odd's integer operations make XLA split the fusion and write
    the float64 result to memory, which made them 4x slower.
    """
    with jax.enable_x64(True):
        outs = fn(*[_f64(a) for a in arrays])
        return tuple(None if o is None else narrow(o, dt) if once else o.astype(dt)
                     for o, dt in zip(outs, out_dtypes))


# ---- softmax ---------------------------------------------------------------------

def _softmax64(t, axis, log, sticky):
    """softmax or log_softmax of float64 ``t`` along ``axis`` (module docstring).

    ``sticky``: the output is narrower than float64, so log_softmax hands over a
    round-to-odd value (one correct rounding later).  Not differentiated:
    ``_softmax_op`` carries the derivative.
    """
    n = t.shape[axis]
    M = jnp.max(t, axis=axis, keepdims=True)
    # XLA's CPU maximum reductions skip a NaN (from 4096 elements they return the largest other
    # entry, or -inf for a NaN in a row's last position), so NaN rows are found apart from M
    nan_row = jnp.any(jnp.isnan(t), axis=axis, keepdims=True)
    all_ninf = M == -jnp.inf
    special = nan_row | (M == jnp.inf) | all_ninf
    hi, lo = _two_sum(t, -jnp.where(special, 0.0, M))  # x - max = hi + lo exactly
    fin = jnp.isfinite(hi)
    lo = jnp.where(fin, lo, 0.0)
    e = jnp.exp(hi)
    e = e + e * lo
    # r: the sum without one maximum; its ties (hi == 0, e == 1 exactly) add 1 each
    top = hi == 0.0
    rest = jnp.sum(jnp.where(top, 0.0, e), axis=axis, keepdims=True)
    rest = rest + (jnp.sum(jnp.where(top, 1.0, 0.0), axis=axis, keepdims=True) - 1.0)
    pinf = t == jnp.inf
    k_inf = jnp.maximum(jnp.sum(jnp.where(pinf, 1.0, 0.0), axis=axis, keepdims=True), 1.0)
    if log:
        # (hi - L) + lo as an exact pair; for a narrower output its round-to-odd
        # keeps the sign of the tail, so that ``s_j`` on a float32 midpoint minus a
        # tiny ``L`` still rounds the right way (one correct rounding, not two)
        r_hi, r_lo = _two_sum(hi, -jnp.log1p(rest))
        reg, tail = _two_sum(r_hi, jnp.where(fin, r_lo + lo, 0.0))
        reg = jnp.where(fin, reg, hi)  # -inf entries: -inf (their pair tails are NaN)
        if sticky:
            # L > 0 exactly whenever another entry is finite, even where exp
            # underflowed to a rest of 0 in float64: the tail is then "just below"
            n_fin = jnp.sum(jnp.where(jnp.isfinite(t), 1.0, 0.0), axis=axis, keepdims=True)
            tail = jnp.where(fin, tail, 0.0)
            below = (tail == 0) & (rest == 0) & (n_fin > 1)
            tail = jnp.where(below, -jnp.finfo(jnp.float64).tiny, tail)
            reg = jnp.where(fin, _round_to_odd_f64(reg, tail), reg)
            reg = jnp.where(below & (reg == 0), -0.0, reg)  # -L rounds to -0
        # 0.0 - log(1) is +0 (an exact zero result is +0)
        sp = jnp.where(all_ninf, 0.0 - math.log(n), jnp.where(pinf, 0.0 - jnp.log(k_inf), -jnp.inf))
    else:
        reg = e / (1.0 + rest)
        sp = jnp.where(all_ninf, 1.0 / n, jnp.where(pinf, 1.0 / k_inf, 0.0))
    out = jnp.where(special, sp, reg)
    return jnp.where(nan_row, jnp.nan, out)


def _softmax_fast(x, axis, log, out_dtype, row_max=None):
    """softmax or log_softmax of a float32, bfloat16 or float16 ``x`` whose every
    row has a finite maximum, in float64, rounded to ``out_dtype`` (float64 for
    the derivative's ``p``).

    The same values as ``_softmax64``, arranged for XLA's CPU backend: every
    full-size expression is recomputed from its own copy of the input
    (``_fresh``), so that no float64 intermediate is written to memory.

    * ``s_j = x_j - M`` is exact in float64 for every entry that matters
      (``M`` and ``x_j`` are float32 values; where the difference needs more
      than 53 bits, ``|x_j| < 2**-29 |M|`` and its rounding error is below
      ``2**-53 |s_j|``), so no TwoSum is needed.
    * softmax: ``p_j = exp(s_j) * (1 / S)``: XLA's float64 exp (<= 1.3 ulp)
      and two roundings, under ``2**-50`` relative before the one rounding to
      float32 (``narrow`` for bfloat16/float16: one correct rounding).  The sum
      keeps XLA's exp (``_fast64.exp``'s integer and bitcast operations split
      XLA's reduction fusions, which made the sum 5x and the op 40x slower); below
      4096 rows, and for a bfloat16 or float16 value, the quotient, a loop fusion of
      its own there, takes ``_fast64.exp`` (under ``2**-51``, so the same bound), which
      vectorizes where XLA's float64 exp in such a loop does not.
    * log_softmax: ``L = log1p(r)`` with ``r`` the sum without one maximum
      (its ties add 1 each), and ``y_j = s_j - L'`` with
      ``L' = max(L, 2**-52 |s_j|)``.  Raising ``L`` to ``2**-52 |s_j|`` (it can
      only be smaller when ``r < 2**-52 |s_j|``) changes the value by less
      than the rounding of the subtraction, and keeps the float64 difference
      off ``s_j`` itself: an ``s_j`` that is a midpoint of the output format
      (common in a wide row, where ``r`` underflows) then rounds down, as the
      exact ``s_j - L`` does, without round-to-odd arithmetic on the
      difference.  ``r`` sums ``exp(max(s_j, -700)) >= 1e-304`` over the finite
      non-maxima, so ``L > 0`` exactly when one exists: the largest logit's
      ``-L`` then rounds to ``-0`` (its exact value is negative), and a row
      with one finite entry has ``L = 0`` and gives ``+0`` there.
    * The ties of the maximum are counted in a pass of their own (``_tie_count``).
    """
    f64 = jnp.float64
    # row_max: the caller's (lax.cond's test), which the branch would otherwise compute again
    M = (jnp.max(x, axis=axis, keepdims=True) if row_max is None else row_max).astype(f64)
    xa, ma = _fresh(x, M)
    sa = _wide(xa) - ma
    if not log:
        S = jnp.sum(jnp.exp(sa), axis=axis, keepdims=True)
        r = 1.0 / S
        few, narrowed = _few_rows(x, axis), out_dtype in (jnp.bfloat16, jnp.float16)
        if narrowed and not few:
            # from 4096 rows XLA's YNNPACK fusion of the sum took the product exp(s) * (1/S)
            # too and wrote it out for narrow's round-to-odd, whose integer operations it
            # cannot take (8 bytes an element: 4096 x 1024 bfloat16 32 MiB, 15-16 ms against
            # 4.2-4.7 for jax.nn); a select on the row's 1/S (S >= 1 here; a NaN S, from a
            # NaN entry, passes as NaN) is not taken, which leaves the product to a loop
            # fusion with the rounding, where _fast64.exp runs faster than XLA's exp (below)
            r = jnp.where(S > 0, r, S)
        xb, mb, rb = _fresh(x, M, r)
        sb = _wide(xb) - mb
        if few or narrowed:
            # below 4096 rows (and for a narrowed value, above) this product is a loop fusion of
            # XLA's own, where its float64 exp is slow, and _fast64.exp vectorizes (float32 2048
            # x 1024: 2.9 -> 2.3 ms, bfloat16 4.6 -> 3.0); a float32 value from 4096 rows is one
            # YNNPACK fusion, which it would split (10x slower).  Where
            # exp is below the smallest normal float64 it is 0, as XLA's exp gives it on this
            # backend (subnormals flushed; -inf entries included), so that p, and the signs of
            # the derivative's zeros, are those of the jnp.exp form (28 million float32,
            # bfloat16 and float16 values and vjps compared: 8 zeros of the opposite sign, at
            # arguments next to that point, where XLA's exp flushed); between that point and
            # the kernel's clamp at -708 the clamp's exp(-708) rounds to 0 in every narrower dtype
            p = jnp.where(sb < _LOG_TINY64, 0.0, _fast64.exp(sb)) * rb
        else:
            p = jnp.exp(sb) * rb
        return p if out_dtype == f64 else narrow(p, out_dtype)
    # masks in arithmetic (an elementwise select or compare would split the fusion), with s <= 0
    # (or -inf) on these rows: -s * 2**200 >= 2**51 for every nonzero s (a difference of float32
    # values is 0 or at least 2**-149), so min(-s * 2**200, 1) is [s != 0]; s * 2**-1000 - 700 is
    # -700 exactly for a finite s (|s| <= 2**129) and -inf for s = -inf, so the clamp below
    # raises a finite s to -700 and leaves -inf entries at exp(-inf) = 0
    not_top = jnp.minimum(sa * -(2.0 ** 200), 1.0)
    rest = jnp.sum(jnp.exp(jnp.maximum(sa, sa * 2.0 ** -1000 - 700.0)) * not_top, axis=axis, keepdims=True)
    if _few_rows(x, axis):
        ties = _tie_count(x, M, axis, distinct=True)
    else:
        # one YNNPACK fusion: the count shares not_top (a sum of 0s and 1s, exact)
        ties = x.shape[axis] - jnp.sum(not_top, axis=axis, keepdims=True)
    L = jnp.log1p(rest + (ties - 1.0))
    # M + (L - L): M, or NaN on a row with a NaN entry (L is NaN there), so that the whole row
    # is NaN: the maximum below (and XLA's YNNPACK row maximum) drops a NaN operand
    xb, mb, lb = _fresh(x, M + (L - L), L)
    sb = _wide(xb) - mb
    y = sb - jnp.maximum(lb, sb * -(2.0 ** -52))  # |s| = -s
    return y if out_dtype == f64 else narrow(y, out_dtype)


def _tie_count(x, M, axis, distinct):
    """The number of entries equal to the row's maximum ``M`` (float64, keepdims), exactly, from
    ``s = x - M`` in float64 with arithmetic masks only: a difference of float32 values is 0 or
    at least ``2**-149`` in magnitude, so ``min(|s| K, c) = c [s != 0]`` for ``K >= 2**150 c``
    (and ``|s| K`` stays finite: ``|s| <= 2**129``; ``-inf`` entries give ``inf``, capped).

    ``distinct``: below 4096 rows (``_few_rows``) the program falls apart into several fusions,
    and XLA writes out every full-size float64 expression that two of them share: ``x - M`` and
    ``|x - M|``, which the sum of the exponentials also forms, and the broadcast constants
    ``2**200`` and ``1.0``.  The count then uses expressions and constants of its own
    (``x + (-M)``, ``2**201`` and the cap 2: ``n - sum / 2``, exact, as every term is 0 or 2).
    No float64 array is written then (float32 256 x 1024: 8 -> 0 MiB, 1.4 -> 1.1 ms; 1024 x 1024:
    32 -> 0 MiB).  From 4096 rows the whole op is one YNNPACK fusion, where sharing ``|x - M|``
    with the sum is cheaper (4096 x 1024: 11-12 against 13-15 ms with the distinct form).
    Called with x64 on (``_softmax_fast``'s caller): the constants must be float64."""
    if distinct:
        xc, mc = _fresh(x, -M)
        k = jnp.sum(jnp.minimum((_wide(xc) + mc) * -(2.0 ** 201), 2.0), axis=axis, keepdims=True)
        return x.shape[axis] - 0.5 * k
    xc, mc = _fresh(x, M)
    return jnp.sum(1.0 - jnp.minimum(jnp.abs(_wide(xc) - mc) * 2.0 ** 200, 1.0), axis=axis, keepdims=True)


# the edge-row path (_softmax64) evaluates blocks of rows of about this many elements in turn
# (_by_row_blocks): its float64 temporaries, a dozen arrays of the input's size, are then those of
# one block.  XLA allocates the temporaries of both lax.cond branches on every call, and one
# allocation above glibc's mmap threshold (32 MiB) is fresh memory whose touched pages fault on
# every call, the fast branch's included
_EDGE_BLOCK_ELEMENTS = 1 << 15


def _by_row_blocks(fn, x, axis):
    """``fn(rows)`` (rows along the last axis, float64 or narrower outputs of the same shape) over
    ``x``'s rows along ``axis``, a block of ``_EDGE_BLOCK_ELEMENTS`` (at least one row) at a
    time with ``lax.map``; the rows are independent, so the result is ``fn`` of the whole.
    Small inputs are evaluated at once.  (``_act64._blockwise`` is the elementwise counterpart:
    it may cut anywhere, where this keeps every row whole along ``axis``.)"""
    if x.size <= 2 * _EDGE_BLOCK_ELEMENTS or _explicitly_sharded(x):
        return fn(x, axis)
    xt = jnp.moveaxis(x, axis, -1)
    shape, n = xt.shape, xt.shape[-1]
    rows = xt.size // n
    b = max(1, _EDGE_BLOCK_ELEMENTS // n)
    k = -(-rows // b)
    flat = xt.reshape(rows, n)
    if k * b != rows:  # padding rows of zeros: ordinary rows, dropped below
        flat = jnp.concatenate([flat, jnp.zeros((k * b - rows, n), x.dtype)])
    flat = flat.reshape(k, b, n)
    if x.dtype.itemsize == 2:
        # a 16-bit input enters the loop as its bits: XLA's CPU backend made a float32 copy of a
        # bfloat16 one for lax.map (4 bytes an element, the only full-size temporary)
        dt = x.dtype
        out = lax.map(lambda blk: fn(lax.bitcast_convert_type(blk, dt), -1), lax.bitcast_convert_type(flat, jnp.uint16))
    else:
        out = lax.map(lambda blk: fn(blk, -1), flat)
    return jnp.moveaxis(out.reshape(k * b, n)[:rows].reshape(shape), -1, axis)


def _explicitly_sharded(x) -> bool:
    """Whether ``x`` is sharded over an explicit mesh axis (``jax.sharding.AxisType.Explicit``),
    whose reshape into blocks of rows JAX cannot type without an ``out_sharding``: such an
    input is evaluated whole (each device holds its own rows)."""
    spec = getattr(getattr(jax.typeof(x), "sharding", None), "spec", None)
    return spec is not None and any(s is not None for s in spec)


def _softmax_value(x, axis, log, out_dtype):
    """The value of ``_softmax_op``: the fast float64 path for float32, bfloat16 and
    float16 inputs when every row's maximum is finite (``lax.cond`` on the whole
    array; the edge rows take ``_softmax64``, by blocks of rows: ``_by_row_blocks``),
    ``_softmax64`` otherwise."""
    one = lambda t, ax: _in64(lambda u: (_softmax64(u, ax, log, out_dtype != jnp.float64),), (out_dtype,), t)[0]
    slow = lambda x: _by_row_blocks(one, x, axis)
    if x.dtype == jnp.float64:
        return slow(x)
    with jax.enable_x64(True):
        row_max = jnp.max(x, axis=axis, keepdims=True)
        edge = ~jnp.all(jnp.isfinite(row_max))
        return lax.cond(edge, lambda x, m: slow(x), lambda x, m: _softmax_fast(x, axis, log, out_dtype, m),
                        x, row_max)


# XLA's CPU backend hands an instruction to a YNNPACK fusion only when its shape or an operand's
# has at least 4096 elements; with fewer rows than that, the per-row statistics (log1p of the
# sum, the float64 conversion of the maximum) stay outside, the program falls apart into several
# fusions, and every full-size float64 expression two of them share is written out in full
# (log_softmax's ties: _tie_count; rms_norm's value: _rms_value).
_YNN_MIN_ELEMENTS = 4096


def _few_rows(x, axis) -> bool:
    """Fewer rows (``x.size`` over the length of ``axis``, an int or a tuple of axes) than a
    YNNPACK fusion needs (``_YNN_MIN_ELEMENTS``)."""
    n = math.prod(x.shape[a] for a in (axis if isinstance(axis, tuple) else (axis,)))
    return x.size // max(n, 1) < _YNN_MIN_ELEMENTS


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _softmax_op(x, axis, log):
    return _softmax_value(x, axis, log, x.dtype)


# a float64 p of at most this many bytes is stored between the derivative's two passes (it stays
# in cache: measured faster at 2**18 elements, 1.9x against 3.0x jax.nn); a larger one is
# recomputed by each pass (at 2**22 elements 2.7x against 5.4x: its page faults cost more
# than a second exp per element).  The normalizations' derivatives use the same size to choose
# between sharing the value's statistics and computing their own (_normalize_op_jvp)
_SMALL_P_BYTES = 1 << 23

_LOG_TINY64 = math.log(np.finfo(np.float64).tiny)  # -708.396...: exp below it is subnormal


def _float64_copy_fits(x) -> bool:
    """Whether a float64 array of ``x``'s size is at most ``_SMALL_P_BYTES`` (stays in cache)."""
    return x.size * 8 <= _SMALL_P_BYTES


def _softmax_tangent(x, p, d, axis, log):
    """``d softmax = p (d - <p, d>)`` (``d log_softmax = d - <p, d>``) in float64 from the float64
    ``p`` and tangent ``d``; 0 on the rows whose value is a limit (a ``+-inf`` maximum)."""
    # locally constant (no derivative): differentiated again, a float64 max of x would meet a
    # float32 cotangent outside any enable_x64 block
    keep = jnp.where(jnp.isinf(jnp.max(lax.stop_gradient(x), axis=axis, keepdims=True)), 0.0, 1.0)
    dot = jnp.sum(p * d, axis=axis, keepdims=True)
    return (d - dot) * keep if log else p * ((d - dot) * keep)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _softmax_pair(x, axis):
    """``(softmax(x), p)``: the value in ``x``'s dtype and ``p``, the same softmax in float64,
    from one evaluation; the value is ``p`` rounded (``narrow``), which is what
    ``_softmax_value`` returns for ``x``'s dtype (the same formula and the same rounding).  For
    a training step of softmax whose float64 ``p`` is stored (``_softmax_op_jvp``): computing
    the value apart cost a second softmax (measured: 2**18 elements float32 1.2-1.55 ms
    against 1.0 ms, bfloat16 1.9 against 1.1).  Its own derivative keeps the higher ones in
    closed form: the tangent of ``p`` is ``_softmax_tangent``."""
    with jax.enable_x64(True):
        p = _softmax_value(x, axis, False, jnp.float64)
        return narrow(p, x.dtype), p


@_softmax_pair.defjvp
def _softmax_pair_jvp(axis, primals, tangents):
    (x, ), (dx, ) = primals, tangents
    y, p = _softmax_pair(x, axis)
    with jax.enable_x64(True):
        dp = _softmax_tangent(x, p, dx.astype(jnp.float64), axis, False)
        return (y, p), (dp.astype(x.dtype), dp)


@_softmax_op.defjvp
def _softmax_op_jvp(axis, log, primals, tangents):
    """``d softmax = p (dx - <p, dx>)``, ``d log_softmax = dx - <p, dx>``, in float64; rows
    whose value is a limit (``+inf`` entries, all ``-inf``) are locally constant: derivative 0
    (NaN rows stay NaN).

    For float32, bfloat16 and float16 inputs of more than ``_SMALL_P_BYTES / 8`` elements ``p``
    is not stored: each of its two consumers (the row sum ``<p, dx>`` and the output)
    recomputes ``exp(-|x - M|) / S`` from its own copy of ``x`` (``_fresh``; ``x - M`` is exact
    in float64) with the row statistics ``M`` and ``1/S`` (``M`` taken as 0 on rows without a
    finite maximum, whose derivative is 0: the ``-|.|`` keeps their ``p`` finite, or NaN on NaN
    rows).  A float64 ``p`` array written between the passes cost more than the whole
    value."""
    (x, ), (dx, ) = primals, tangents
    # below 4096 rows softmax stored p at any size while its recomputation used XLA's float64
    # exp, slow in the loop fusion the output pass is there (measured, float32 training step:
    # 2048 x 1024 17.7 -> 15.3 ms); with _fast64.exp in that pass recomputing is faster again
    # (2048 x 1024 float32: gradient 10.8 -> 8.5 ms, training step 13.3 -> 11.4; bfloat16
    # 15.0 -> 8.8 and 14.9 -> 14.4)
    small = x.dtype == jnp.float64 or _float64_copy_fits(x)
    if small and not log:
        y, p = _softmax_pair(x, axis)  # the value from the stored p
    else:
        y = _softmax_op(x, axis, log)
        if small:
            p = _softmax_pair(x, axis)[1]  # p with a closed-form derivative (higher ones)
    with jax.enable_x64(True):
        d = dx.astype(jnp.float64)
        if small:
            return y, _softmax_tangent(x, p, d, axis, log).astype(x.dtype)
        M = jnp.max(x, axis=axis, keepdims=True).astype(jnp.float64)
        fin = jnp.isfinite(M)
        M = jnp.where(fin, M, 0.0)
        keep = jnp.where(fin, 1.0, 0.0)

        # exp(-|x - M|): exp(x - M) where the maximum is finite (x <= M), at most 1 on the
        # other rows (M taken as 0), whose p is only kept finite, and NaN at a NaN entry.  (A
        # clamp min(x - M, 0) did the same, but XLA's YNNPACK fusions drop a NaN operand of a
        # minimum or maximum, the row maximum's included: a NaN row's derivative came out
        # finite, or NaN at the NaN entry alone, from 2**20 elements.)
        def e(*fresh):
            xf, mf = fresh
            return jnp.exp(-jnp.abs(_wide(xf) - mf))

        def e_plus(xf, neg_mf):
            # the same value from x + (-M): an expression XLA does not merge with e's
            return jnp.exp(-jnp.abs(_wide(xf) + neg_mf))

        # 1/S; S + 1 on the rows without a finite maximum (an all -inf row has S = 0), in
        # arithmetic: a select on the sum made XLA split the fusions (2.4x slower)
        r = 1.0 / (jnp.sum(e(*_fresh(x, M)), axis=axis, keepdims=True) + (1.0 - keep))
        few = _few_rows(x, axis)
        if few:
            # below 4096 rows XLA wrote the p this sum shares with S's out (8 bytes an element):
            # here p from an expression of its own (x + (-M)); float32 training step 2048 x
            # 1024: 19.0 -> 15.6 ms, the same bits
            xa, ma, ra = _fresh(x, -M, r)
            pa = e_plus(xa, ma)
        else:
            xa, ma, ra = _fresh(x, M, r)
            pa = e(xa, ma)
        dot = jnp.sum(pa * ra * d, axis=axis, keepdims=True)
        if log:
            # (below 4096 rows the transposition's ct * keep is written out, 8 bytes an element;
            # d * keep - dot * keep, whose row sum is of ct alone, wrote out ct's float64 copy
            # instead, and forward mode's jvp then wrote one more: no faster, measured)
            dy = (d - dot) * keep
        elif few:
            # p d - p dot with a p of its own in each term: transposed, the first term's
            # coefficient goes to the output and the second's into the row sum of ct p; with one
            # p, p (d - dot), the product ct p was shared by the two and written out below 4096
            # rows (2048 x 1024: 16 MiB), and with _fast64.exp in the output pass, as in the
            # value, its exp was (XLA's exp keeps the backward pass one YNNPACK fusion)
            xb, mb, rb = _fresh(x, M, r)
            eb = e(xb, mb)
            xc, mc, rc = _fresh(x, -M, r)
            ec = e_plus(xc, mc)
            dy = (eb * rb * keep) * d - (ec * rc * keep) * dot
        else:
            xb, mb, rb = _fresh(x, M, r)
            dy = e(xb, mb) * rb * ((d - dot) * keep)
        return y, dy.astype(x.dtype)


def _softmax_common(x, axis, log):
    x = as_float_array(x)
    ax = _check_axis(axis, x.ndim)
    if x.shape[ax] == 0:
        return x
    return _softmax_op(x, ax, log)


@functools.partial(jax.jit, static_argnames=("axis",))
def softmax(x, axis=-1):
    r""":math:`e^{x_j} / \sum_i e^{x_i}` along ``axis``; error <= 1 ulp (float32), correctly rounded
    in practice for every dtype.

    Rows with ``-inf`` entries give them ``+0``; ``+inf`` entries share the mass
    equally (``k`` of them: ``1/k`` each); a row of only ``-inf`` gives the uniform
    ``1/n``; a NaN entry makes the row NaN (module docstring).

    >>> softmax(jnp.array([0.0, jnp.log(3.0)]))
    Array([0.25, 0.75], dtype=float32)
    """
    return _softmax_common(x, axis, False)


@functools.partial(jax.jit, static_argnames=("axis",))
def log_softmax(x, axis=-1):
    r""":math:`x_j - \log\sum_i e^{x_i}`, as :math:`s_j - \mathrm{log1p}(\sum_{i\ne k} e^{s_i})`
    with :math:`s = x - \max x` and :math:`k` the arg-max, so the largest logit keeps
    full relative accuracy.  Edge rows as ``softmax`` (``log`` of its values:
    ``-inf`` for ``+0``, ``-log k`` for ``+inf`` entries, ``-log n`` for an all ``-inf`` row).
    """
    return _softmax_common(x, axis, True)


# ---- normalization -----------------------------------------------------------------

@functools.partial(jax.jit, static_argnames=("training", "momentum", "eps", "axis_name"))
def batch_norm(x, running_mean, running_var, weight=None, bias=None, *, training=False, momentum=0.1,
               eps=1e-5, axis_name=None):
    r"""Batch normalization over every axis but the last (channels-last).

    Returns ``(y, new_running_mean, new_running_var)``.

    * ``training=True``: ``y = (x - mean) / sqrt(var + eps) * weight + bias`` with the
      batch's mean and *biased* variance over all axes but the last; the running
      statistics become ``(1 - momentum) * running + momentum * batch`` with the
      batch's *unbiased* variance (``var * n / (n - 1)``), PyTorch's convention.
      ``running_mean``/``running_var`` may both be ``None`` (no running statistics;
      then ``None`` is returned for them).
    * ``training=False``: ``y`` uses the running statistics, which are returned unchanged.
    * ``axis_name``: inside ``jax.shard_map`` or ``jax.pmap``, the batch statistics are
      summed over that named axis with ``lax.psum`` (synchronized BatchNorm: the count
      and the moments are global, so the result equals the unsharded one).

    ``y`` has ``x``'s dtype; the new running statistics have the running statistics'
    dtype (float32 buffers in ``impl.nn``).  Evaluated in float64 with the corrected
    two-pass algorithm and rounded once to float32/float64 (bfloat16/float16 ``y`` goes
    through float32: two roundings, module docstring).
    """
    x = as_float_array(x)
    training = _check_bool("training", training)
    mom = _check_momentum(momentum)
    eps = _check_eps(eps)
    if x.ndim < 2:
        raise ValueError(f"batch_norm expects an input of rank >= 2 (batch, ..., features), got shape "
                         f"{tuple(x.shape)}; add a batch axis, e.g. x[None]")
    C = x.shape[-1]
    what = f"one per feature: the input's last axis has {C}"
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must both be arrays or both be None; "
                         f"got running_mean={'None' if running_mean is None else 'an array'}, "
                         f"running_var={'None' if running_var is None else 'an array'}")
    rm = _param(running_mean, "running_mean", (C,), what)
    rv = _param(running_var, "running_var", (C,), what)
    w = _param(weight, "weight", (C,), what)
    b = _param(bias, "bias", (C,), what)
    if rm is None and not training:
        raise ValueError("batch_norm with training=False needs running_mean and running_var; "
                         "pass them, or training=True to use the batch statistics")
    n_local = math.prod(x.shape[:-1])
    _nonempty(x, n_local, "batch_norm")
    if training and n_local == 1 and axis_name is None:
        raise ValueError(f"batch_norm in training mode needs more than 1 value per channel, got input shape "
                         f"{tuple(x.shape)} (the unbiased variance of one value is undefined); "
                         f"use a batch of at least 2, or training=False")
    if training:
        # eps > 0: the custom derivative; eps = 0: JAX differentiates the float64 formula
        op = _bn_train_op if eps > 0 else _bn_train_eps0
        if x.dtype in _NARROW and eps > 0:  # as _normalize: the same values, faster reductions
            y, new_rm, new_rv = op(x.astype(jnp.float32), (rm, rv, w, b), mom, eps, axis_name)
            return y.astype(x.dtype), new_rm, new_rv
        return op(x, (rm, rv, w, b), mom, eps, axis_name)

    def f(t, rm, rv, w, b):
        return (_affine(_scale(t - rm, rv, eps), w, b),)

    (y,) = _in64(f, (x.dtype,), x, rm, rv, w, b, once=False)
    return y, rm, rv


def _bn_train_value(x, rm, rv, w, b, mom, eps, axis_name):
    """Training-mode batch_norm exactly as ``batch_norm``'s float64 formula rounds it; also returns
    the statistics ``(x2, m0, c, var, n)`` for the derivative."""
    C = x.shape[-1]
    x2 = x.reshape(-1, C)
    m0, c, var, n = _moments(x2, (0,), axis_name)
    y = _scale_centred(_deviations(x2, m0, c), var, eps).reshape(x.shape)
    y = _affine(y, _f64(w), _f64(b)).astype(x.dtype)
    if rm is None:
        return (y, None, None), (x2, m0, c, var, n)
    keep = 1.0 - mom
    mean = (m0 + c).reshape(-1)
    unbiased = (var * (n / (n - 1))).reshape(-1)
    new_rm = (keep * _f64(rm) + mom * mean).astype(rm.dtype)
    new_rv = (keep * _f64(rv) + mom * unbiased).astype(rv.dtype)
    return (y, new_rm, new_rv), (x2, m0, c, var, n)


def _centred_tangent(dx, xx, m0, c, r, axes, n, shape, wb, dwb, axis_name=None, distinct=False):
    r"""``(dy, mean dx, mean(xhat dx))`` in float64: the tangent of ``y = xhat w + b``,
    ``xhat = ((x - m0) - c) r``, normalized over ``axes`` of ``xx`` (``n`` elements; the
    sums taken over ``axis_name`` too when given),

    .. math:: dy = r\,(dx - \overline{dx} - \hat x\,\overline{\hat x\,dx})\,w + \hat x\,dw + db,

    ``dy`` in ``shape``, with ``xhat`` recomputed by each of its consumers (``_xhat``).

    ``distinct`` (the row normalizations below 4096 rows): the ``xhat`` term is written as
    ``-((x - m0) - c) = ((-x) - (0 - m0)) - (0 - c)`` (up to the sign of a zero deviation)
    times ``r**2 mean(xhat dx)``, with ``r`` distributed over the other terms.  JAX's transposition then makes a reduction of that
    term which shares no full-size expression (``xhat``, ``ct r``, a broadcast of ``m0`` or
    ``c``) with the cotangent's other terms, and XLA, whose program falls apart into several
    fusions below 4096 rows (``_YNN_MIN_ELEMENTS``), writes only the float64 cotangent out in
    a training step and nothing in a gradient of a sum (layer_norm 1024 x 1024: 16 -> 8 MiB
    and 8 -> 0 MiB).  The roundings differ from the plain form's in float64: on the inputs
    compared the float32 results were the same bits, except where cancellation leaves neither
    form correctly rounded (a near-constant cotangent; there the new form was the closer).
    batch_norm keeps the plain form: its training step was 15-25 % slower with this one
    (``docs/performance.md``)."""
    (w, b), (dw, db) = wb, dwb
    d = dx.astype(jnp.float64).reshape(xx.shape)
    total = lambda v: jnp.sum(v, axis=axes, keepdims=True)
    sum_d, sum_xd = total(d), total(_xhat(xx, m0, c, r, xx.shape) * d)
    if axis_name is not None:
        sum_d, sum_xd = lax.psum((sum_d, sum_xd), axis_name)
    mean_d, mean_xd = _div_n(sum_d, n), _div_n(sum_xd, n)
    if distinct:
        xo, mo, co = _fresh(xx, 0.0 - m0, 0.0 - c)  # not -m0, -c: _moments broadcasts -m0 already
        neg_dev = (_wide(-xo) - mo) - co
        dy = (d * r - mean_d * r + neg_dev * (r * r * mean_xd)).reshape(shape)
    else:
        dy = ((d - mean_d - _xhat(xx, m0, c, r, xx.shape) * mean_xd) * r).reshape(shape)
    if w is not None:
        dy = dy * _f64(w)
        if dw is not None:
            dy = dy + _xhat(xx, m0, c, r, shape) * _f64(dw)
    if b is not None and db is not None:
        dy = dy + _f64(db)
    return dy, mean_d, mean_xd


def _bn_train(x, params, mom, eps, axis_name):
    """batch_norm with ``training=True``; ``_bn_train_op`` (``eps > 0``) adds the derivative below."""
    with jax.enable_x64(True):
        return _bn_train_value(x, *params, mom, eps, axis_name)[0]


_bn_train_op = jax.custom_jvp(_bn_train, nondiff_argnums=(2, 3, 4))
_bn_train_eps0 = _differentiated_once(_bn_train, (2, 3, 4))


@_bn_train_op.defjvp
def _bn_train_op_jvp(mom, eps, axis_name, primals, tangents):
    r"""The derivative of training-mode batch_norm per channel, over the rows of the
    ``(rows, C)`` view (summed over ``axis_name`` when given), as ``_normalize_op_jvp``:
    ``dy = r (dx - mean dx - xhat mean(xhat dx)) w + xhat dw + db``; the running statistics'
    tangents are ``(1 - m) d running + m mean(dx)`` and, for the unbiased variance
    ``var n/(n-1)``, ``(1 - m) d running_var + m n/(n-1) 2 mean(xhat dx) / r``."""
    (x, (rm, rv, w, b)), (dx, (drm, drv, dw, db)) = primals, tangents
    with jax.enable_x64(True):
        (y, new_rm, new_rv), (x2, m0, c, var, n) = _bn_train_value(x, rm, rv, w, b, mom, eps, axis_name)
        r = 1.0 / jnp.sqrt(var + eps)
        dy, mean_d, mean_xd = _centred_tangent(dx, x2, m0, c, r, (0,), n, x.shape, (w, b), (dw, db), axis_name)
        dy = dy.astype(x.dtype)
        if rm is None:
            return (y, None, None), (dy, None, None)
        keep = 1.0 - mom
        d_rm = (keep * _f64(drm) + mom * mean_d.reshape(-1)).astype(rm.dtype)
        d_rv = (keep * _f64(drv) + mom * (n / (n - 1)) * 2.0 * (mean_xd / r).reshape(-1)).astype(rv.dtype)
        return (y, new_rm, new_rv), (dy, d_rm, d_rv)


def _normalize(x, axes, w, b, eps, op, reshape=None):
    """Centre and scale ``x`` over ``axes`` (of ``x.reshape(reshape)`` when given)."""
    xx = x if reshape is None else x.reshape(reshape)
    _nonempty(x, math.prod(xx.shape[a] for a in axes), op)
    # eps > 0: the custom derivative; eps = 0: JAX differentiates the float64 formula
    op = _normalize_op if eps > 0 else _normalize_eps0
    if x.dtype in _NARROW and eps > 0:
        # the same values: a float32 copy of x is exact, and the float64 result reaches
        # bfloat16/float16 through float32 either way; XLA's reductions over float32 are much
        # faster than over bfloat16 (layer_norm 19 -> 13 ms on 4096 x 1024)
        return op(x.astype(jnp.float32), (w, b), axes, eps, reshape).astype(x.dtype)
    return op(x, (w, b), axes, eps, reshape)


def _norm_stats(x, axes, eps, reshape, copy=0):
    """``(xx, m0, c, var, r)``: ``x`` as reshaped, the shift, the correction, the biased variance
    and ``1/sqrt(var + eps)`` (float64, keepdims; eps > 0)."""
    xx = x if reshape is None else x.reshape(reshape)
    m0, c, var, _ = _moments(xx, axes, copy=copy)
    return xx, m0, c, var, 1.0 / jnp.sqrt(var + eps)


def _norm_value(x, xx, m0, c, var, eps, w, b):
    """The value, exactly as ``_normalize``'s float64 formula rounds it: ``d / sqrt(var + eps)``."""
    y = _scale_centred(_deviations(xx, m0, c), var, eps).reshape(x.shape)
    return _affine(y, _f64(w), _f64(b)).astype(x.dtype)


def _xhat(xx, m0, c, r, shape):
    """The normalized values ``((x - m0) - c) r`` in float64, from fresh copies (each consumer
    recomputes them in its own loop: see ``_fresh``)."""
    xo, mo, co, ro = _fresh(xx, m0, c, r)
    return (((_wide(xo) - mo) - co) * ro).reshape(shape)


def _normalize_value(x, wb, axes, eps, reshape):
    """``_normalize``'s value; ``_normalize_op`` (``eps > 0``) adds the derivative below."""
    w, b = wb
    with jax.enable_x64(True):
        xx, m0, c, var, _ = _norm_stats(x, axes, eps, reshape)
        return _norm_value(x, xx, m0, c, var, eps, w, b)


_normalize_op = jax.custom_jvp(_normalize_value, nondiff_argnums=(2, 3, 4))
_normalize_eps0 = _differentiated_once(_normalize_value, (2, 3, 4))


@_normalize_op.defjvp
def _normalize_op_jvp(axes, eps, reshape, primals, tangents):
    """The textbook derivative (``_centred_tangent``), ``r = 1/sqrt(var + eps)``, evaluated in
    float64 from the statistics, so neither the forward nor the backward pass writes a
    full-size float64 array, and rounded once to the input's dtype.  Differentiating the
    float64 forward instead (its two-pass moments, the shift and the correction) cost 3-10x
    the value.

    Above ``_SMALL_P_BYTES`` of float64 the derivative computes its own statistics from a
    fresh copy of ``x`` (the same formulas; the same bits on the inputs tested, though the
    sums run in another fusion): statistics shared with the value made XLA split the
    value's YNNPACK fusion in a program that needs both (a training step) and write float64
    ``x`` out (32 MiB at 2**22 elements, whose page faults cost more than the passes); below
    it, where that array stays in cache, sharing them is faster."""
    (x, (w, b)), (dx, (dw, db)) = primals, tangents
    with jax.enable_x64(True):
        xx, m0, c, var, r = _norm_stats(x, axes, eps, reshape)
        y = _norm_value(x, xx, m0, c, var, eps, w, b)
        if not _float64_copy_fits(x):
            xt, = _fresh(x)
            xx, m0, c, _, r = _norm_stats(xt, axes, eps, reshape, copy=1)
        n = math.prod(xx.shape[a] for a in axes)
        dy, _, _ = _centred_tangent(dx, xx, m0, c, r, axes, n, x.shape, (w, b), (dw, db),
                                    distinct=_few_rows(xx, axes))
        return y, dy.astype(x.dtype)


@functools.partial(jax.jit, static_argnames=("normalized_shape", "eps"))
def _layer_norm(x, normalized_shape, weight, bias, eps):
    ns = normalized_shape
    x = as_float_array(x)
    eps = _check_eps(eps)
    k = len(ns)
    if x.ndim < k or tuple(x.shape[x.ndim - k:]) != ns:
        raise ValueError(f"layer_norm with normalized_shape={ns} expects the input's last {k} "
                         f"ax{'is' if k == 1 else 'es'} to be {ns}, got input of shape {tuple(x.shape)}; "
                         f"pass an input of shape (..., {', '.join(map(str, ns))}) or change normalized_shape")
    what = "normalized_shape"
    w = _param(weight, "weight", ns, what)
    b = _param(bias, "bias", ns, what)
    return _normalize(x, tuple(range(x.ndim - k, x.ndim)), w, b, eps, "layer_norm")


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    r"""Layer normalization over the trailing ``normalized_shape`` axes.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias`` with the mean and biased
    variance over the last ``len(normalized_shape)`` axes; ``weight`` and ``bias``
    have shape ``normalized_shape`` (an int means ``(int,)``).  Accurate at any
    mean offset (module docstring); jitted, with ``normalized_shape`` and ``eps``
    static.
    """
    return _layer_norm(x, _normalized_shape(normalized_shape), weight, bias, eps)


@functools.partial(jax.jit, static_argnames=("num_groups", "eps"))
def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    r"""Group normalization, channels-last: ``x`` is ``(N, *spatial, C)``; the ``C``
    channels are split into ``num_groups`` contiguous groups of ``C // num_groups``,
    and each sample's group is normalized over its spatial positions and its
    channels.  ``weight``/``bias`` have shape ``(C,)`` (per channel).
    """
    x = as_float_array(x)
    eps = _check_eps(eps)
    if isinstance(num_groups, bool) or not isinstance(num_groups, (int, np.integer)) or num_groups < 1:
        raise ValueError(f"num_groups must be a positive int, got {num_groups!r}; pass e.g. num_groups=4")
    G = int(num_groups)
    if x.ndim < 2:
        raise ValueError(f"group_norm expects an input of rank >= 2 (N, *spatial, C), got shape {tuple(x.shape)}; "
                         f"add a batch axis, e.g. x[None]")
    C = x.shape[-1]
    if C % G:
        raise ValueError(f"group_norm: the input has {C} channels (last axis of shape {tuple(x.shape)}), which "
                         f"num_groups={G} does not divide; pass a num_groups that divides {C}")
    what = f"one per channel: the input's last axis has {C}"
    w = _param(weight, "weight", (C,), what)
    b = _param(bias, "bias", (C,), what)
    shape = tuple(x.shape[:-1]) + (G, C // G)
    axes = tuple(range(1, x.ndim - 1)) + (x.ndim,)
    return _normalize(x, axes, w, b, eps, "group_norm", reshape=shape)


@functools.partial(jax.jit, static_argnames=("eps",))
def instance_norm(x, weight=None, bias=None, eps=1e-5):
    r"""Instance normalization, channels-last: ``x`` is ``(N, *spatial, C)`` with at
    least one spatial axis; each sample's channel is normalized over the spatial
    axes.  ``weight``/``bias`` have shape ``(C,)``.
    """
    x = as_float_array(x)
    eps = _check_eps(eps)
    if x.ndim < 3:
        raise ValueError(f"instance_norm expects an input of rank >= 3 (N, *spatial, C), got shape "
                         f"{tuple(x.shape)}; add a batch axis, e.g. x[None]")
    C = x.shape[-1]
    what = f"one per channel: the input's last axis has {C}"
    w = _param(weight, "weight", (C,), what)
    b = _param(bias, "bias", (C,), what)
    return _normalize(x, tuple(range(1, x.ndim - 1)), w, b, eps, "instance_norm")


@functools.partial(jax.jit, static_argnames=("normalized_shape", "eps"))
def _rms_norm(x, normalized_shape, weight, eps):
    ns = normalized_shape
    x = as_float_array(x)
    eps = _check_eps(eps)
    k = len(ns)
    if x.ndim < k or tuple(x.shape[x.ndim - k:]) != ns:
        raise ValueError(f"rms_norm with normalized_shape={ns} expects the input's last {k} "
                         f"ax{'is' if k == 1 else 'es'} to be {ns}, got input of shape {tuple(x.shape)}; "
                         f"pass an input of shape (..., {', '.join(map(str, ns))}) or change normalized_shape")
    w = _param(weight, "weight", ns, "normalized_shape")
    axes = tuple(range(x.ndim - k, x.ndim))

    op = _rms_op if eps > 0 else _rms_eps0  # eps = 0: JAX differentiates the float64 formula
    if x.dtype in _NARROW and eps > 0:  # as _normalize: the same values, faster reductions
        return op(x.astype(jnp.float32), w, axes, eps).astype(x.dtype)
    return op(x, w, axes, eps)


def _rms_value(x, w, axes, eps):
    """``(y, ms)``: the value exactly as ``_rms_norm``'s float64 formula rounds it, and the mean square.

    The sum and the output widen ``x`` from their own copies (``_fresh``): one float64 ``x``
    shared by both was written out below 4096 rows (8 MiB at 1024 rows of 1024; forward 2**18
    elements 0.63 -> 0.28 ms, 2**21 4.2 -> 1.2 ms, the same bits).  Where JAX differentiates
    this formula (``eps = 0``, ``_rms_eps0``) it is traced in ``_one_widening``: one widening,
    so the two paths' cotangents, which cancel, meet in float64."""
    xa, = _fresh(x)
    ta = _wide(xa)
    ms = jnp.mean(ta * ta, axis=axes, keepdims=True)
    xb, mb = _fresh(x, ms)
    return _affine(_scale_centred(_wide(xb), mb, eps), _f64(w), None).astype(x.dtype), ms


def _rms(x, w, axes, eps):
    """rms_norm's value; ``_rms_op`` (``eps > 0``) adds the derivative below."""
    with jax.enable_x64(True):
        return _rms_value(x, w, axes, eps)[0]


_rms_op = jax.custom_jvp(_rms, nondiff_argnums=(2, 3))
_rms_eps0 = _differentiated_once(_rms, (2, 3))


@_rms_op.defjvp
def _rms_op_jvp(axes, eps, primals, tangents):
    r""":math:`dy = r\,(dx - x\,r^2\,\overline{x\,dx})\,w + x\,r\,dw`, ``r = 1/sqrt(mean(x^2) + eps)``,
    in float64 with ``x`` widened by each consumer (``_fresh``), rounded once (as
    ``_normalize_op_jvp``)."""
    (x, w), (dx, dw) = primals, tangents
    with jax.enable_x64(True):
        y, ms = _rms_value(x, w, axes, eps)
        if not _float64_copy_fits(x):
            # the derivative's own mean square, from a fresh copy (as _normalize_op_jvp): one
            # shared with the value made XLA split the value's YNNPACK fusion and write float64
            # x and a broadcast of it (32 MiB each at 2**22 elements) in a training step
            xm, = _fresh(x)
            tm = _wide(xm)
            ms = jnp.mean(tm * tm, axis=axes, keepdims=True)
        r = 1.0 / jnp.sqrt(ms + eps)
        n = math.prod(x.shape[a] for a in axes)
        d = dx.astype(jnp.float64)
        xa, ra = _fresh(x, r)
        mean_xd = _div_n(jnp.sum(_wide(xa) * d, axis=axes, keepdims=True), n)
        xb, rb = _fresh(x, r)
        if _few_rows(x, axes):
            # r distributed, and -x widened: the reduction JAX's transposition makes of this
            # term (sum of ct x r^3 ...) then shares no full-size expression with the
            # cotangent's other terms; with (d - x (r^2 mean)) r, XLA wrote float64 x or a
            # broadcast of r out below 4096 rows (8 MiB at 1024 rows of 1024: gradient 1.8 ->
            # 1.0 ms, the same bits on the inputs compared).  From 4096 rows (one fusion) the
            # form below was 3-10 % faster in one run (docs/performance.md).
            dy = d * r + _wide(-xb) * (rb * rb * mean_xd * r)
        else:
            dy = (d - _wide(xb) * (rb * rb * mean_xd)) * r
        if w is not None:
            dy = dy * _f64(w)
            if dw is not None:
                xc, rc = _fresh(x, r)
                dy = dy + (_wide(xc) * rc) * _f64(dw)
        return y, dy.astype(x.dtype)


def rms_norm(x, normalized_shape, weight=None, eps=1e-6):
    r"""Root-mean-square normalization over the trailing ``normalized_shape`` axes:
    ``y = x / sqrt(mean(x**2) + eps) * weight`` (no centring, no bias), in float64,
    rounded once to float32/float64 (bfloat16/float16 through float32: two roundings,
    module docstring).  ``x == 0`` gives ``+0``; an all-zero input gives zeros even with
    ``eps = 0``.
    """
    return _rms_norm(x, _normalized_shape(normalized_shape), weight, eps)

