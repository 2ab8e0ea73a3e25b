"""Pooling over NHWC windows: ``max_pool2d`` (exact) and ``avg_pool2d`` (correctly rounded).

``max_pool2d`` returns one of the window's values, so it is exact in every
dtype; a window holding a NaN gives NaN (``_max``: XLA's CPU reductions by maximum
skip a NaN).  Padded cells are ``-inf`` and never win.  Its derivative goes to the
window's first maximal cell, as ``lax.reduce_window``'s and PyTorch's do, and is
NaN there for a window holding a NaN.

``avg_pool2d`` returns the exact mean of the window's input cells rounded once
to the input dtype (round to nearest, ties to even).  Padded cells are NOT
counted: each output is the mean of the input cells its window covers (the
TensorFlow/Keras 'SAME' convention; PyTorch's default ``count_include_pad=True``
divides by the full window size at the borders instead).  How it is exact:

1. The window's ``k`` values, in float64 (exact for every supported dtype),
   are summed into a floating-point expansion by Shewchuk's Grow-Expansion
   (``k - 1`` passes of TwoSum): ``k`` float64 components whose sum is the
   exact window sum ``S``, nonoverlapping, in increasing magnitude, so the
   sign of ``S`` is the sign of its largest nonzero component.
2. ``q = S / c`` (``c`` = number of input cells) is estimated, then refined once
   from the exact remainder ``S - c q`` (``c q`` is split exactly into two
   float64 products: ``q``'s top 26 bits and the rest, times ``c < 2**26``).
3. The sign of the final exact remainder places ``S / c`` relative to ``q``,
   and the sign of ``S - c (q + h)`` (``h`` half the gap to the neighbour on
   that side) places it relative to the midpoint: that gives the float64
   result rounded to nearest, and its round-to-odd, which float32 rounds once
   correctly and float16/bfloat16 through ``_core.narrow``.

Exact for finite inputs whose window sums do not overflow float64, on devices
that keep float64 subnormals (CPUs flush them, so windows of subnormal
float64 values may be off there).  Windows holding ``inf`` or ``nan`` give the
float64 sum divided by ``c`` (``inf``, ``-inf`` or ``nan``); an exact zero mean
is ``+0``.  Gradients: ``avg_pool2d`` is linear; its JVP is the window sum of
the tangent, accumulated in float32 (float64 for float64), divided by ``c``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from . import _windows as W
from ._core import as_float_array, narrow
from ._dd import two_sum as _two_sum  # Knuth's TwoSum, shared with the double-double kernels
from ._linear import accumulation_dtype

__all__ = ["max_pool2d", "avg_pool2d"]


def _geometry(kernel_size, strides, padding, op):
    kernel = W.pair("kernel_size", kernel_size, op=op)
    strides = kernel if strides is None else W.pair("strides", strides, op=op)
    padding = W.normalize_padding(padding, op)
    W.check_pool_padding(padding, kernel, op)
    return kernel, strides, padding


def max_pool2d(x, kernel_size, strides=None, padding="VALID"):
    """Maximum over ``kernel_size`` windows of an NHWC input (exact).

    Args:
      x: ``(N, H, W, C)`` or ``(H, W, C)``.
      kernel_size: int or ``(kh, kw)``.
      strides: int or ``(sh, sw)``; ``None`` (default) means ``kernel_size``
        (non-overlapping windows).
      padding: ``'VALID'`` (default), ``'SAME'``, an int, ``(ph, pw)`` or
        ``((top, bottom), (left, right))``, each side smaller than the window;
        padded cells are ``-inf``.

    Returns:
      ``(N, H_out, W_out, C)`` in ``x``'s dtype; a window holding a nan gives nan.
    """
    kernel, strides, padding = _geometry(kernel_size, strides, padding, "max_pool2d")
    return _max_pool2d(x, kernel, strides, padding)


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _max_pool2d(x, kernel, strides, padding):
    x = as_float_array(x)
    x, squeeze = W.spatial_input(x, "max_pool2d")
    pads, out_hw = W.resolve_padding(padding, x.shape[1:3], kernel, strides, (1, 1), "max_pool2d")
    y = _max(x, (kernel, strides, pads, out_hw))
    return y[0] if squeeze else y


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _max(x, geom):
    """The window maxima, NaN for a window that holds a NaN.

    ``lax.reduce_window`` with ``lax.max`` (a YNNPACK fusion), except for a float32 or float64
    input whose sum is NaN (one that holds a NaN, or both infinities): XLA's CPU reductions by
    maximum skip a NaN in those dtypes (its YNNPACK fusions, from 4096 elements, return the
    largest other value, or ``-inf`` for a NaN in a window's last cell), so such an input takes
    elementwise maxima of the window's cells (``_window_terms``), which propagate NaN.  Not
    the maxima for every input: in a network XLA fuses the producer of ``x`` (GELU's float64
    loop) into their strided loop, which made the ModernCNN's forward pass 1.5-1.7x slower at
    batch 8.  bfloat16 and float16 reductions keep NaN there (XLA widens them to float32 first;
    ``tests/test_layers_model.py`` pins the NaN windows of every dtype at 2**22 elements)."""
    (kh, kw), (sh, sw), pads, _ = geom

    def reduced(x):
        return lax.reduce_window(x, np.array(-np.inf, x.dtype), lax.max, (1, kh, kw, 1), (1, sh, sw, 1),
                                 ((0, 0), *pads, (0, 0)))

    if x.dtype.itemsize == 2:
        return reduced(x)
    return lax.cond(jnp.isnan(jnp.sum(x)), lambda x: functools.reduce(jnp.maximum, _window_terms(x, geom, -np.inf)),
                    reduced, x)


@_max.defjvp
def _max_jvp(geom, primals, tangents):
    """The tangent of the window's first cell that holds the maximum (``lax.reduce_window``'s and
    PyTorch's choice), times NaN for a window that holds a NaN (its first NaN cell is that cell):
    a NaN input has NaN derivatives (docs/conventions.md).  Written as a chain of selects, whose
    transposition is a few fused passes: ``select_and_scatter``, ``lax.reduce_window``'s, cost
    13x more at 2**22 float32 elements.  The tangent is carried in float32 for the 16-bit
    dtypes: a cell covered by overlapping windows adds its cotangents there and is rounded once."""
    (x,), (t,) = primals, tangents
    y = _max(x, geom)
    acc = jnp.promote_types(t.dtype, jnp.float32)
    ya = y.astype(acc)  # exact; comparisons and selects in 16 bits are slower
    dy, found = jnp.zeros(ya.shape, acc), jnp.zeros(ya.shape, bool)
    for cell, dcell in zip(_window_terms(x.astype(acc), geom, -np.inf), _window_terms(t.astype(acc), geom, 0)):
        hit = ((cell == ya) | jnp.isnan(cell)) & ~found  # no cell is NaN unless y is
        dy, found = jnp.where(hit, dcell, dy), found | hit
    # a factor, not a select of dy * NaN: the transposition of that would reach every window as 0 * NaN
    dy = dy * jnp.where(jnp.isnan(ya), jnp.array(np.nan, acc), jnp.ones((), acc))
    return y, dy.astype(t.dtype)


def avg_pool2d(x, kernel_size, strides=None, padding="VALID"):
    """Mean over ``kernel_size`` windows of an NHWC input, correctly rounded.

    Same arguments as ``max_pool2d``; padded cells are not counted (the mean is
    over the input cells each window covers; see the module docstring).

    Returns:
      ``(N, H_out, W_out, C)`` in ``x``'s dtype: the exact mean rounded to
      nearest, ties to even.
    """
    kernel, strides, padding = _geometry(kernel_size, strides, padding, "avg_pool2d")
    return _avg_pool2d(x, kernel, strides, padding)


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _avg_pool2d(x, kernel, strides, padding):
    x = as_float_array(x)
    x, squeeze = W.spatial_input(x, "avg_pool2d")
    pads, out_hw = W.resolve_padding(padding, x.shape[1:3], kernel, strides, (1, 1), "avg_pool2d")
    y = _avg(x, (kernel, strides, pads, out_hw))
    return y[0] if squeeze else y


def _counts(n, k, s, lo, out):
    """Input cells covered by each window along one axis."""
    start = np.arange(out) * s - lo
    return np.minimum(start + k, n) - np.maximum(start, 0)


def _window_terms(x, geom, fill=0):
    """The ``kh * kw`` strided slices of the input padded with ``fill``, one per window cell."""
    (kh, kw), (sh, sw), pads, (oh, ow) = geom
    xp = jnp.pad(x, ((0, 0), *pads, (0, 0)), constant_values=np.array(fill, x.dtype))
    n, c = x.shape[0], x.shape[3]
    return [lax.slice(xp, (0, i, j, 0), (n, i + (oh - 1) * sh + 1, j + (ow - 1) * sw + 1, c), (1, sh, sw, 1))
            for i in range(kh) for j in range(kw)]


def _count_array(x, geom):
    (kh, kw), (sh, sw), pads, (oh, ow) = geom
    ch = _counts(x.shape[1], kh, sh, pads[0][0], oh)
    cw = _counts(x.shape[2], kw, sw, pads[1][0], ow)
    return np.outer(ch, cw).astype(np.float64)[None, :, :, None]


# ---- exact arithmetic on float64 expansions ---------------------------------------

def _grow(comps, b):
    """Shewchuk's Grow-Expansion: the expansion of ``sum(comps) + b``, one component longer."""
    out, q = [], b
    for h in comps:
        q, e = _two_sum(q, h)
        out.append(e)
    out.append(q)
    return out


def _estimate(comps):
    s = comps[0]
    for h in comps[1:]:
        s = s + h
    return s


def _top(comps):
    """The largest nonzero component: it has the sign of the exact sum (0 when the sum is 0)."""
    t = jnp.zeros_like(comps[0])
    for h in comps:
        t = jnp.where(h != 0, h, t)
    return t


def _minus_c_times(comps, q, c):
    """The expansion of ``sum(comps) - c q``: ``q`` split into its top 26 bits and the rest,
    each product with the integer ``c < 2**26`` exact in float64."""
    bits = lax.bitcast_convert_type(q, jnp.uint64)
    hi = lax.bitcast_convert_type(bits & jnp.uint64(0xFFFFFFFFF8000000), jnp.float64)
    lo = q - hi
    return _grow(_grow(comps, -(c * hi)), -(c * lo))


def _odd(q):
    return (lax.bitcast_convert_type(q, jnp.uint64) & jnp.uint64(1)) == 1


def _exact_mean(terms, c):
    """``(rn, ro)``: ``sum(terms) / c`` rounded to nearest and to odd in float64."""
    comps = [terms[0]]
    for t in terms[1:]:
        comps = _grow(comps, t)
    q = _estimate(comps) / c
    q = q + _estimate(_minus_c_times(comps, q, c)) / c  # now within 0.5 ulp + a tiny bit
    r = _minus_c_times(comps, q, c)
    sigma = jnp.sign(_top(r))
    nxt = jnp.where(sigma > 0, jnp.nextafter(q, jnp.inf), jnp.nextafter(q, -jnp.inf))
    ro = jnp.where((sigma == 0) | _odd(q), q, nxt)
    half_gap = (nxt - q) * 0.5
    tau = jnp.sign(_top(_grow(r, -(c * half_gap))))
    beyond = tau * sigma > 0
    tie = (tau == 0) & (sigma != 0)
    rn = jnp.where(beyond | (tie & _odd(q)), nxt, q)
    return rn, ro


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _avg(x, geom):
    dt = x.dtype
    with jax.enable_x64(True):
        c = jnp.asarray(_count_array(x, geom))
        terms = _window_terms(x.astype(jnp.float64), geom)
        rn, ro = _exact_mean(terms, c)
        plain = functools.reduce(jnp.add, terms)
        rn = jnp.where(jnp.isfinite(plain), rn, plain / c)
        ro = jnp.where(jnp.isfinite(plain), ro, plain / c)
        if dt == jnp.float64:
            return rn
        return narrow(ro, dt)


@_avg.defjvp
def _avg_jvp(geom, primals, tangents):
    (x,), (t,) = primals, tangents
    acc = accumulation_dtype(t.dtype)  # float64 tangents exist only with x64 on
    s = functools.reduce(jnp.add, _window_terms(t.astype(acc), geom))  # pads and slices: transposable
    dy = (s / jnp.asarray(_count_array(x, geom), acc)).astype(t.dtype)
    return _avg(x, geom), dy
