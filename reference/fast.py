"""The fast tier: vectorized float64 formulas plus Ziv's rounding test, mpmath as fallback.

For float16, bfloat16 and float32 targets, a float64 evaluation ``y`` of the
independent formulas in ``reference.float64`` is within a stated relative bound
of the exact value; ``tests/test_reference.py`` verifies the bound against
mpmath with a margin of 2**8.  If every value of ``[y(1 - B), y(1 + B)]`` rounds
to the same target value AND the same stored residual quantum, those are
exactly the values of the exact result, so they are the values the
mpmath-only path (``_ziv.correctly_rounded``) would give.  Everything else
(specials, zeros, results near a rounding or residual boundary, results
outside float64's normal range, float64 targets) goes to mpmath.

Per core this gives millions of correctly rounded results per second where
mpmath alone gives thousands.
"""

from __future__ import annotations

import numpy as np

from ._convert import RESIDUAL_SCALE, Format, quantize_residual
from ._ziv import correctly_rounded

__all__ = ["round_array", "correctly_rounded_array", "DEFAULT_BOUND"]

DEFAULT_BOUND = 2.0**-43  # the default of reference.float64.relative_bound


def round_array(y: np.ndarray, fmt: Format):
    """Round float64 ``y`` to ``fmt``: ``(rounded, residual_in_ulps_of_y)``.

    Exact for finite normal float64 ``y``: the scaling by ``2**-q`` is exact, and
    ``rint`` is round-half-even.  Overflow gives ±inf with residual nan.
    """
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(all="ignore"):
        _, e2 = np.frexp(y)  # y = m * 2**e2, 0.5 <= |m| < 1, so floor(log2|y|) = e2 - 1
        q = np.maximum(e2 - 1, fmt.emin) - (fmt.p - 1)
        n = np.ldexp(y, -q)
        rn = np.rint(n)
        r = n - rn
        rounded = np.ldexp(rn, q)
        over = np.abs(rounded) > fmt.finite_max
        rounded = np.where(over, np.copysign(np.inf, y), rounded)
        r = np.where(over, np.nan, r)
    return rounded, r


def _quantize(r):
    r = np.where(np.isfinite(r), r, 0.0)
    return np.rint(r * RESIDUAL_SCALE).astype(np.int64)


def correctly_rounded_array(ref_fn, formula, xs: np.ndarray, fmt: Format, params=None,
                            fallback_map=map, bound=None):
    """``(rounded float64 array, residual int16 array, n_fallback)`` for every ``x``.

    ``ref_fn`` is the mpmath reference, ``formula`` the float64 formula (both
    taking ``**params``).  ``fallback_map(func, iterable)`` evaluates the mpmath
    fallbacks (pass a process pool's ``imap`` to parallelize).  ``bound``: the
    relative error bound of ``formula`` (``reference.float64.relative_bound``;
    ``DEFAULT_BOUND`` when omitted), or an array of per-element bounds (for
    formulas whose error grows with the input, e.g. next to a zero where two
    terms cancel; see ``reference.float64_derivatives``).
    """
    bound = DEFAULT_BOUND if bound is None else np.asarray(bound, dtype=np.float64)
    params = dict(params or {})
    x64 = np.asarray(xs, dtype=np.float64)
    out = np.empty(x64.shape, dtype=np.float64)
    res = np.zeros(x64.shape, dtype=np.int64)
    if fmt.p <= 24:
        with np.errstate(all="ignore"):
            y = np.asarray(formula(x64, **params), dtype=np.float64)
        ok = np.isfinite(x64) & (x64 != 0) & np.isfinite(y) & (np.abs(y) >= 2.0**-1000) & (np.abs(y) < 2.0**1000)
        ok &= np.isfinite(bound) & (bound < 2.0**-20)
        lo, rlo = round_array(y * (1 - bound), fmt)
        hi, rhi = round_array(y * (1 + bound), fmt)
        # Every v in [lo, hi] rounds to the same value R (rounding is monotone), and
        # (v - R) / ulp(v) is monotone in v (the ulp only changes at R's binade
        # edge, where the sign of v - R cannot change), so equal quantized
        # residuals at both ends pin the quantized residual of the exact value.
        ok &= (lo == hi) & (_quantize(rlo) == _quantize(rhi)) & np.isfinite(lo)
        mid, rmid = round_array(y, fmt)
        out[ok] = mid[ok]
        res[ok] = _quantize(rmid[ok])
    else:
        ok = np.zeros(x64.shape, dtype=bool)
    todo = np.flatnonzero(~ok)
    results = fallback_map(_Fallback(ref_fn, fmt, params), [float(v) for v in x64[todo]])
    for i, (r, q) in zip(todo, results):
        out[i] = r
        res[i] = q
    return out, res.astype(np.int16), int(todo.size)


class _Fallback:
    """Picklable mpmath evaluation for a process pool."""

    def __init__(self, ref_fn, fmt, params):
        self.ref_fn, self.fmt, self.params = ref_fn, fmt, params

    def __call__(self, x):
        r, resid = correctly_rounded(self.ref_fn, x, self.fmt, self.params)
        return r, quantize_residual(resid)
