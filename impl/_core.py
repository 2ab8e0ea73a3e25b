"""Dtype policy and precision helpers shared by every op.

Dtype policy (the one place it is written; docs/dtype_policy.md repeats it):

* Inputs must be real floating arrays (float16, bfloat16, float32, float64).
  Integer and bool inputs are promoted to JAX's default float dtype (float32,
  float64 when ``jax_enable_x64`` is on), like ``jnp.tanh`` does; complex inputs
  raise ``TypeError``.
* The output has the input's dtype.
* float16, bfloat16 and float32 inputs are evaluated in float64 internally
  (``jax.enable_x64`` inside the jitted function, without touching the global
  flag) and rounded once to the input dtype.  float64 inputs are evaluated in
  float64 with the same cancellation-free formulas.
* float64 -> bfloat16/float16 goes through float32 with round-to-odd, because
  XLA converts float64 -> bfloat16/float16 via a round-to-nearest float32 and so
  rounds twice (``1 + 2**-8 + 2**-30`` became 1.0 instead of ``1 + 2**-7``).
  Round-to-odd to 24 bits followed by one rounding to <= 11 bits equals a single
  correct rounding (Boldo & Melquiond, 2008).
* bfloat16 and float16 have only 65536 bit patterns each, so an elementwise op
  on them (``by_table``) is a lookup in a table of the float64 path's results
  for every pattern, computed once per op, parameters and dtype at trace time:
  the same correctly rounded values, NaN and signed zeros included, at the cost
  of one gather.  The patterns are widened and the results rounded on the host
  (``_narrow_host``), so a device that flushes float32 subnormals does not flush
  bfloat16's.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["as_float_array", "in_float64", "by_table", "narrow", "check_finite_param"]


def as_float_array(x, name: str = "x"):
    """``x`` as a JAX array of a real floating dtype (see the module's dtype policy)."""
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.complexfloating):
        raise TypeError(
            f"{name} must be a real floating array, got dtype {x.dtype}; "
            f"pass the real part (jnp.real({name})) or the modulus explicitly"
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return x


def check_finite_param(name: str, value, *, positive: bool = False, nonnegative: bool = False):
    """Trace-time check of a static float parameter; returns it as a Python float."""
    bad_type = TypeError(f"{name} must be a Python float, got {value!r} ({type(value).__name__}); "
                         f"pass a number such as 1.0")
    if isinstance(value, (str, bytes, bool, np.bool_)):  # float("0.1") and float(True) would pass
        raise bad_type
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise bad_type from None
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}; pass a finite float such as 1.0")
    if positive and not v > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}; pass a positive float such as 1.0")
    if nonnegative and not v >= 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}; pass a non-negative float such as 1.0")
    return v


def _round_to_odd_f32(y):
    """float64 -> float32 rounding to odd: truncate, and set the last bit if inexact."""
    t = y.astype(jnp.float32)  # round to nearest
    back = t.astype(jnp.float64)
    bits = lax.bitcast_convert_type(t, jnp.uint32)
    inexact = (back != y) & jnp.isfinite(y) & ~jnp.isinf(t)
    even = (bits & 1) == 0
    # toward y by one float32 ulp: in sign-magnitude, +1 grows |t|, -1 shrinks it
    step = jnp.where(jnp.abs(back) > jnp.abs(y), jnp.uint32(0xFFFFFFFF), jnp.uint32(1))
    bits = jnp.where(inexact & even, bits + step, bits)
    return lax.bitcast_convert_type(bits, jnp.float32)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def narrow(y, dtype):
    """Round float64 ``y`` once to ``dtype`` (see module docstring)."""
    dtype = jnp.dtype(dtype)
    if dtype == jnp.float64:
        return y
    if dtype == jnp.float32:
        return y.astype(jnp.float32)
    return _round_to_odd_f32(y).astype(dtype)


@narrow.defjvp
def _narrow_jvp(dtype, primals, tangents):
    (y,), (t,) = primals, tangents
    # the rule runs when JAX differentiates, outside the caller's enable_x64 block:
    # without its own, the round-to-odd's float64 comparison would be truncated to float32
    with jax.enable_x64(True):
        return narrow(y, dtype), t.astype(dtype)


def in_float64(formula, x, *args):
    """Evaluate ``formula(x64, *args)`` in float64 and round once to ``x.dtype``."""
    if x.dtype == jnp.float64:
        return formula(x, *args)
    with jax.enable_x64(True):
        return narrow(formula(x.astype(jnp.float64), *args), x.dtype)


def _narrow_host(y, dtype):
    """``narrow`` on the host: float64 ``y`` rounded once to bfloat16/float16 through a
    float32 rounded to odd, in numpy (whose conversions keep subnormals)."""
    with np.errstate(over="ignore", invalid="ignore"):
        t = y.astype(np.float32)  # round to nearest
        back = t.astype(np.float64)
    bits = t.view(np.uint32).copy()
    inexact = (back != y) & np.isfinite(y) & ~np.isinf(t)
    even = (bits & 1) == 0
    step = np.where(np.abs(back) > np.abs(y), np.uint32(0xFFFFFFFF), np.uint32(1))
    bits = np.where(inexact & even, bits + step, bits).astype(np.uint32)
    with np.errstate(over="ignore", invalid="ignore"):
        return bits.view(np.float32).astype(np.dtype(dtype))


_TABLED = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))
_TABLES: dict = {}


def by_table(formula, key, x, *args):
    """``in_float64(formula, x, *args)`` for bfloat16/float16 ``x`` as a lookup in the
    table of its results on all 65536 bit patterns (``key`` names ``formula`` with
    ``args`` in the cache); other dtypes go to ``in_float64``."""
    if x.dtype not in _TABLED:
        return in_float64(formula, x, *args)
    k = (key, args, x.dtype.name)
    table = _TABLES.get(k)
    if table is None:
        # the patterns are widened and the results rounded on the host (numpy keeps subnormals):
        # on a device that flushes float32 subnormals (XLA's CPU backend) a bfloat16 subnormal
        # read through float32 was 0 (tanh(2**-133) gave +0), and so was a result rounded through
        # float32 into bfloat16's subnormal range.  The float64 formula itself runs on the device;
        # its inputs are then normal float64 numbers.
        every = np.arange(65536, dtype=np.uint16).view(x.dtype)
        with np.errstate(invalid="ignore"):  # the signalling NaN patterns
            wide = every.astype(np.float64)
        with jax.ensure_compile_time_eval(), jax.enable_x64(True):
            y = np.asarray(formula(jnp.asarray(wide), *args), dtype=np.float64)
        table = _narrow_host(y, x.dtype)
        _TABLES[k] = table
    index = lax.bitcast_convert_type(x, jnp.uint16)
    return jnp.take(jnp.asarray(table), index, mode="clip")
