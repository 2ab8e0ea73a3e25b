"""Vectorizable float64 kernels for the float32 value paths of the activations.

XLA's float64 ``exp`` costs about 2.5x its float32 ``exp`` on the CPU, and its
float64 ``log``/``log1p`` are not vectorized (3-4x the time of a copy of the same
bytes).  A float32 result needs far fewer than 53 correct bits: a float64 value
with relative error ``d`` rounds to the correctly rounded float32 unless the
exact value lies within ``d`` (relative) of a float32 rounding boundary, which
for ``d = 2**-50`` happens for a fraction of about ``2**-25`` of generic inputs.
These kernels are written only with multiplies, adds, one rounding and integer
bit operations, so XLA vectorizes them.

Error bounds (relative, measured against mpmath on 10**6 points per kernel in
``tests/test_fast64.py``, which checks the bounds below):

* ``exp(t)``: Cody-Waite reduction ``t = k ln2 + r``, ``|r| <= ln2/2``
  (``ln2`` split in a 32-bit head and a tail, so ``k * head`` is exact), and a
  degree-11 polynomial of ``expm1(r)`` (``r (1 + r p(r))``, ``p`` a Chebyshev
  interpolant of ``(expm1(r) - r) / r**2``: 2**-51.98 in binary64 on 60003 points,
  ``python -m tools.fit_expm1``; the degree-13 Taylor polynomial it replaced
  measured 2**-52.07 and cost two multiply-adds more), scaled by ``2**k`` built
  from its bits: under ``2**-51``.
* ``expm1(t)``: ``2**k expm1(r) + (2**k - 1)`` with the same reduction
  (``2**k - 1`` is exact): under ``2**-51`` relative, including next to 0, where
  ``k = 0`` and the polynomial is ``r + r**2/2 + ...`` without a cancelling ``-1``.
* ``log1p(e)`` for ``0 <= e <= 1``: a float32 polynomial start (relative error
  below ``2**-21``, including the float32 rounding of ``e``) and one Halley step
  on ``exp(y) = 1 + e``, written with ``expm1`` so that nothing cancels:
  ``y1 = y0 - 2 (expm1(y0) - e) / (expm1(y0) + e + 2)``; Halley's error is
  cubic in the start's (below ``2**-60``), so the bound is that of ``expm1``
  plus the roundings of the step: under ``2**-50``.

* ``erfcx_unit(w) = exp(w**2) erfc(w)`` for ``0 <= w <= 11``: a degree-20
  polynomial in ``s``, an affine map of ``t = (w - 3) / (w + 3)``, of
  ``g = erfcx(w) (w + 3)`` (order 1 on the whole interval), times
  ``1 / (w + 3)``, the one quotient (``t = (w - 3) * (1 / (w + 3))``).  Coefficients and the
  measured error (2**-50.6 on 20001 points) from ``python -m tools.fit_erfcx``;
  ``tests/test_fast64.py`` checks below 2**-49.5 against mpmath.

Domain: ``t`` is clamped to ``[-708, 709]`` so that ``2**k`` stays a normal
float64 (``exp(709) < 8.3e307``).  Callers use the kernels only where the clamp
cannot change a float32 result (every use in ``_activations`` is annotated).
NaN propagates (the polynomial of a NaN is NaN).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

__all__ = ["exp", "expm1", "log1p_unit", "erfcx_unit"]

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # fdlibm ln2_hi: 32 significant bits, k * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10  # fdlibm ln2_lo
_ROUNDER = 6755399441055744.0  # 1.5 * 2**52
# p(r), constant first: expm1(r) = r (1 + r p(r)) for |r| <= ln2/2 (python -m tools.fit_expm1)
_EXPM1_P = (0.5000000000000001, 0.16666666666666669, 0.041666666666624164, 0.008333333333330065,
            0.0013888888917196881, 0.0001984126986304067, 2.4801521322116825e-05, 2.7557268480116333e-06,
            2.762007599981065e-07, 2.5100375924709717e-08)


def _reduce(t):
    """``t = k ln2 + r`` with integral ``k`` and ``|r| <= ln2/2`` (up to rounding), and
    ``2**k`` built with integer adds and shifts only (AVX2 has no vector
    float64 -> int64 conversion)."""
    t = jnp.clip(t, -708.0, 709.0)
    u = t * _LOG2E
    k = lax.round(u, lax.RoundingMethod.TO_NEAREST_EVEN)
    r = (t - k * _LN2_HI) - k * _LN2_LO
    # u + 1.5 * 2**52 rounds u to the same integer k (to nearest even) and holds
    # 2**51 + k in its low 52 bits; shifted by 52 only k's bits survive (mod 2**64).
    # (Not k = (u + c) - c: XLA folds that into u.)
    bits = lax.bitcast_convert_type(u + _ROUNDER, jnp.int64)
    two_k = lax.bitcast_convert_type((bits + 1023) << 52, jnp.float64)
    return k, r, two_k


def _expm1_poly(r):
    """``expm1(r)`` for ``|r| <= 0.35``: ``r (1 + r p(r))``, Horner, degree 11 (``_EXPM1_P``; module
    docstring) (the product form keeps the sign of ``r = -0``)."""
    p = _EXPM1_P[-1]
    for c in reversed(_EXPM1_P[:-1]):
        p = p * r + c
    return r * (1.0 + r * p)


def exp(t):
    """``exp(t)`` in float64 to below 2**-51 relative; ``t`` clamped to [-708, 709]."""
    _, r, two_k = _reduce(t)
    return (1.0 + _expm1_poly(r)) * two_k


def expm1(t):
    """``expm1(t)`` in float64 to below 2**-51 relative; ``t`` clamped to [-708, 709]."""
    k, r, s = _reduce(t)
    p = _expm1_poly(jnp.where(k == 0, t, r))  # k = 0: r = t exactly, so expm1(-0) = -0
    return jnp.where(k == 0, p, s * p + (s - 1.0))


# log1p(e) ~ e * P(e) on [0, 1]: a degree-7 Chebyshev fit of log1p(e)/e (near-minimax),
# evaluated in float32: relative error below 2**-21.4 (measured on 10**5 points)
_LOG1P_START = (0.9999998102178482, -0.49997449384835324, 0.3327617657151135, -0.24499611724543313,
                0.17757023992293525, -0.10785367917173262, 0.04421419233807456, -0.008574676204784738)


def log1p_unit(e):
    """``log1p(e)`` for float64 ``0 <= e <= 1`` to below 2**-50 relative (see module)."""
    e32 = e.astype(jnp.float32)  # a float32 that flushes to 0 gives y0 = 0: still fine
    p = jnp.float32(_LOG1P_START[-1])
    for c in reversed(_LOG1P_START[:-1]):
        p = p * e32 + jnp.float32(c)
    y0 = (p * e32).astype(jnp.float64)
    m = expm1(y0)
    return y0 - 2.0 * (m - e) / (m + e + 2.0)


# erfcx on [0, 11]: python -m tools.fit_erfcx (K = 3, W = 11, degree 20; Chebyshev interpolation
# of erfcx(w) (w + K) in mpmath, power basis in s)
_ERFCX_K = 3.0
_ERFCX_T_MAX = 0.5714285714285714
_ERFCX = (1.293726892716031, -0.9303640985032786, 0.5095068521340385, -0.2060354898386275,
          0.0557681328780006, -0.006625238359242794, -0.001458697437243894, 0.0006314838200283789,
          2.0852298433546582e-05, -4.585370504145586e-05, 5.30083281246689e-08, 3.6492498203569567e-06,
          1.0852276888923032e-07, -3.135178359908229e-07, -3.691750639723948e-08, 2.575343219726958e-08,
          6.954988325892231e-09, -1.6434990484390404e-09, -9.218278529274241e-10, 5.0863578289764506e-11,
          7.060834617505033e-11)


def erfcx_unit(w):
    """``exp(w**2) erfc(w)`` in float64 for ``0 <= w <= 11``, below 2**-49.5 relative (see module)."""
    # one quotient, 1/(w + K), used twice: t = (w - K)/(w + K) as a quotient of its own, used
    # by s and by 1 - t, made XLA write it to memory instead of fusing (measured: one fused
    # loop, 20 % faster than two quotients)
    inv = 1.0 / (w + _ERFCX_K)
    t = (w - _ERFCX_K) * inv
    s = (t + 1.0) * (2.0 / (_ERFCX_T_MAX + 1.0)) - 1.0
    p = _ERFCX[-1]
    for c in reversed(_ERFCX[:-1]):
        p = p * s + c
    return p * inv
