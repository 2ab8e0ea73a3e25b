"""Linear maps: ``linear`` (a matrix product) and ``conv2d`` (NHWC, HWIO).

Matmul precision policy (the one place it is written; docs/layers.md repeats it):

* Every product requests ``precision=jax.lax.Precision.HIGHEST``: full float32
  (or float64) multiplies on every backend.  Without it, XLA on GPUs and TPUs
  may compute float32 products in TF32 or bfloat16 passes (10 or 8 significand
  bits), and ``jax.default_matmul_precision`` changes the result; with it, the
  result does not depend on that setting.
* Accumulation: float32 for float16, bfloat16 and float32 operands
  (``preferred_element_type=float32``), float64 for float64 operands.  The
  bias is added in that accumulation dtype, and the sum is rounded once to the
  operands' dtype.
* Operands are promoted to their common dtype by JAX's rules (float32 weights
  with bfloat16 inputs give float32), integers to the default float dtype.

Error bound (derived in docs/layers.md, measured by the golden tests): with
``m`` accumulated terms (``n`` products, plus one for the bias) and the
accumulation's unit roundoff ``u`` (``2**-24`` for float32, ``2**-53`` for
float64), every output satisfies, for any summation order, with or without FMA,
``|y - exact| <= gamma_m * (sum |w_i x_i| + |b|)``, ``gamma_m = m u / (1 - m u)``.
float16/bfloat16 outputs add the final rounding: ``+ u_out * (|exact| + that)``
(``u_out = 2**-11`` or ``2**-8``) plus half the format's smallest subnormal.
"""

from __future__ import annotations

import functools
import operator

import jax
import jax.numpy as jnp
from jax import lax

from . import _windows as W
from ._core import as_float_array

__all__ = ["linear", "conv2d", "PRECISION", "accumulation_dtype"]

PRECISION = lax.Precision.HIGHEST


def accumulation_dtype(dtype):
    """float64 for float64 operands, float32 for float32, bfloat16 and float16."""
    return jnp.float64 if jnp.dtype(dtype) == jnp.float64 else jnp.float32


def _promote(named, op):
    for k in ("x", "weight"):
        if named[k] is None:
            raise TypeError(f"{op}: {k} is None; pass an array ({k} is required; only bias may be None)")
    arrays = {k: as_float_array(v, k) for k, v in named.items() if v is not None}
    dt = jnp.result_type(*arrays.values())
    return {k: v.astype(dt) for k, v in arrays.items()}, dt


@jax.jit
def linear(x, weight, bias=None):
    """``y = x @ weight + bias`` over the last axis of ``x``.

    Args:
      x: ``(..., in_features)``.
      weight: ``(in_features, out_features)`` (the JAX layout: ``x @ weight``,
        not PyTorch's ``(out, in)``).
      bias: ``(out_features,)`` or None.

    Returns:
      ``(..., out_features)`` in the promoted dtype of the operands, computed
      by the module's precision policy (full precision, float32 or float64
      accumulation, one final rounding).

    >>> import jax.numpy as jnp
    >>> linear(jnp.ones((2, 3)), jnp.ones((3, 4)), jnp.zeros(4)).shape
    (2, 4)
    """
    a, dt = _promote({"x": x, "weight": weight, "bias": bias}, "linear")
    x, weight = a["x"], a["weight"]
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (in_features, out_features), got shape {weight.shape}; "
                         f"a PyTorch (out, in) weight must be transposed: weight.T")
    if x.ndim < 1 or x.shape[-1] != weight.shape[0]:
        raise ValueError(f"linear: x.shape[-1] must equal weight.shape[0] = in_features = {weight.shape[0]}, "
                         f"got x.shape = {x.shape}; pass x with {weight.shape[0]} features on its last axis")
    acc = accumulation_dtype(dt)
    y = lax.dot_general(x, weight, (((x.ndim - 1,), (0,)), ((), ())), precision=PRECISION,
                        preferred_element_type=acc)
    if "bias" in a:
        b = a["bias"]
        if b.shape != (weight.shape[1],):
            raise ValueError(f"linear: bias must have shape (out_features,) = ({weight.shape[1]},), "
                             f"got {b.shape}; pass a 1-D bias or bias=None")
        y = y + b.astype(acc)
    return y.astype(dt)


def conv2d(x, weight, bias=None, stride=1, padding="SAME", dilation=1, groups=1):
    """2-D cross-correlation (no kernel flip), NHWC input, HWIO kernel.

    ``y[n, i, j, o] = b[o] + sum_{p, q, c} xpad[n, i*sh + p*dh, j*sw + q*dw, g*Cg + c] * w[p, q, c, o]``
    with ``g = o // (C_out / groups)``, ``Cg = C_in / groups`` and ``xpad`` the
    zero-padded input (padding rules in ``impl._windows``).

    Args:
      x: ``(N, H, W, C_in)``, or ``(H, W, C_in)`` for one image.
      weight: ``(kh, kw, C_in / groups, C_out)`` (HWIO).
      bias: ``(C_out,)`` or None.
      stride, dilation: int or ``(h, w)`` pair, >= 1 (dilation spaces the kernel taps).
      padding: ``'SAME'`` (default), ``'VALID'``, an int, ``(ph, pw)`` or
        ``((top, bottom), (left, right))``.
      groups: ``C_in`` and ``C_out`` are split into ``groups`` independent blocks.

    Returns:
      ``(N, H_out, W_out, C_out)`` in the operands' promoted dtype, by the
      module's precision policy.
    """
    op = "conv2d"
    stride = W.pair("stride", stride, op=op)
    dilation = W.pair("dilation", dilation, op=op)
    padding = W.normalize_padding(padding, op)
    try:
        if isinstance(groups, bool):
            raise TypeError
        groups = operator.index(groups)
    except TypeError:
        raise TypeError(f"conv2d: groups must be an int, got {groups!r}; pass e.g. groups=1") from None
    if groups < 1:
        raise ValueError(f"conv2d: groups must be >= 1, got {groups}; pass e.g. groups=1")
    return _conv2d(x, weight, bias, stride, padding, dilation, groups)


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6))
def _conv2d(x, weight, bias, stride, padding, dilation, groups):
    a, dt = _promote({"x": x, "weight": weight, "bias": bias}, "conv2d")
    x, weight = a["x"], a["weight"]
    x, squeeze = W.spatial_input(x, "conv2d")
    if weight.ndim != 4:
        raise ValueError(f"conv2d: weight must be 4-D HWIO (kh, kw, C_in / groups, C_out), got shape {weight.shape}; "
                         f"a PyTorch OIHW kernel becomes HWIO with jnp.transpose(w, (2, 3, 1, 0))")
    c_in, c_out = x.shape[-1], weight.shape[3]
    if c_in % groups or c_out % groups:
        raise ValueError(f"conv2d: groups = {groups} must divide the input channels ({c_in}) and the output "
                         f"channels ({c_out}); pick groups among their common divisors")
    if c_in != weight.shape[2] * groups:
        raise ValueError(f"conv2d: x has {c_in} channels (last axis, NHWC) but the HWIO kernel {weight.shape} "
                         f"with groups = {groups} expects weight.shape[2] * groups = {weight.shape[2] * groups}; "
                         f"check the channel axis (inputs are NHWC) or the kernel")
    pads, _ = W.resolve_padding(padding, x.shape[1:3], weight.shape[:2], stride, dilation, "conv2d")
    acc = accumulation_dtype(dt)
    y = lax.conv_general_dilated(
        x, weight, window_strides=stride, padding=pads, rhs_dilation=dilation,
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=groups,
        precision=PRECISION, preferred_element_type=acc)
    if "bias" in a:
        b = a["bias"]
        if b.shape != (c_out,):
            raise ValueError(f"conv2d: bias must have shape (C_out,) = ({c_out},), got {b.shape}; "
                             f"pass a 1-D bias or bias=None")
        y = y + b.astype(acc)
    y = y.astype(dt)
    return y[0] if squeeze else y
