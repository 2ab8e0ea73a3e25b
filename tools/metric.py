"""The error metric: signed error in ulps of the target dtype against the exact value.

The exact value of each reference result is stored as ``rounded`` (the
correctly rounded value in the target format) and ``residual`` (``(exact -
rounded) / ulp(exact)`` in units of ``2**-14``; see ``reference._convert``).

``ulp(v) = 2**(max(floor(log2|v|), emin) - p + 1)`` for the exact ``v``; the
error of an output ``y`` is ``(y - exact) / ulp(exact)``.

Every element falls in exactly one class:

* ``nonfinite``: the exact result or the output is nan or ±inf.  It matches
  when both are nan, or both are the same infinity; any other pairing is a
  nan/inf mismatch.  Not part of the ulp statistics.
* ``subnormal``: the exact result is nonzero and below the smallest normal in
  magnitude, or the input is subnormal.  Devices that flush subnormal
  results to zero (FTZ) or read subnormal inputs as zero (DAZ) differ from
  the exact result here (XLA on CPU does both for float32 and float64); those
  elements are counted (``flushed``: the output is 0 where the correctly
  rounded result is not), and the class's ulp maximum is reported on its own,
  never mixed into the normal-range maximum.
* ``normal``: the rest (exact zeros included, and results so small that they
  round to zero with a residual below 2**-14 ulp; their ulp is the subnormal
  spacing).

"Correctly rounded" means the output's bits equal the rounded reference's
(so the sign of a zero counts).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from reference import FORMATS
from reference._convert import RESIDUAL_SCALE

__all__ = ["Stats", "ulp_of_exact", "ulp_errors", "exact_values", "evaluate"]


def ulp_of_exact(rounded, residual_q, fmt):
    """ulp of the exact values given their rounding and quantized residual."""
    rounded = np.asarray(rounded, dtype=np.float64)
    r = np.asarray(residual_q, dtype=np.float64)
    with np.errstate(all="ignore"):
        m, e2 = np.frexp(rounded)
        e = np.where(rounded == 0, fmt.emin, e2 - 1)
        q = np.maximum(e, fmt.emin) - (fmt.p - 1)
        # exact just below a power of two that it rounded up to: one binade lower
        pow2 = np.abs(m) == 0.5
        below = pow2 & (r * np.sign(rounded) < 0) & (e > fmt.emin)
        q = np.where(below, q - 1, q)
    return np.ldexp(1.0, q.astype(np.int64))


def exact_values(rounded, residual_q, dtype_name: str):
    """The exact values (to float64's precision) from their rounding and quantized residual."""
    rounded = np.asarray(rounded, dtype=np.float64)
    u = ulp_of_exact(rounded, residual_q, FORMATS[dtype_name])
    with np.errstate(all="ignore"):
        return rounded + np.asarray(residual_q, dtype=np.float64) / RESIDUAL_SCALE * u


def ulp_errors(got, rounded, residual_q, fmt):
    """Signed errors in ulps of the exact values (nan where either side is non-finite)."""
    got = np.asarray(got, dtype=np.float64)
    rounded = np.asarray(rounded, dtype=np.float64)
    u = ulp_of_exact(rounded, residual_q, fmt)
    with np.errstate(all="ignore"):
        return (got - rounded) / u - np.asarray(residual_q, dtype=np.float64) / RESIDUAL_SCALE


@dataclasses.dataclass
class Stats:
    """Summary of one comparison; ``worst_*`` describe the largest normal-range error."""

    n: int
    n_normal: int
    max_ulp: float
    p99_ulp: float
    mean_ulp: float
    n_cr: int
    n_over: int  # normal-range elements over the budget's max_ulp
    worst_index: int
    n_subnormal: int
    n_flushed: int
    max_ulp_subnormal: float
    n_nonfinite: int
    n_nonfinite_mismatch: int
    first_nonfinite_mismatch: int

    @property
    def pct_cr(self) -> float:
        return 100.0 * self.n_cr / self.n_normal if self.n_normal else 100.0


def _bits_equal(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return (a == b) & (np.signbit(a) == np.signbit(b))


def subnormal_mask(rounded, residual_q, fmt, x=None):
    """Elements whose exact result, or whose input ``x``, is subnormal (nonzero)."""
    rounded = np.asarray(rounded, dtype=np.float64)
    r = np.asarray(residual_q)
    a = np.abs(rounded)
    below = (a < fmt.min_normal) & ~((rounded == 0) & (r == 0))
    # rounded up to the smallest normal from below it
    below |= (a == fmt.min_normal) & (r * np.sign(rounded) < 0)
    if x is not None:
        ax = np.abs(np.asarray(x).astype(np.float64))
        below |= (ax > 0) & (ax < fmt.min_normal)
    return below & np.isfinite(rounded)


def evaluate(got, rounded, residual_q, dtype_name: str, max_ulp: float, x=None):
    """Classify and measure; returns ``(stats, errors, class_codes)``.

    ``class_codes``: 0 normal, 1 subnormal (result or input ``x``), 2 nonfinite.
    """
    fmt = FORMATS[dtype_name]
    got = np.asarray(got).astype(np.float64)
    rounded = np.asarray(rounded, dtype=np.float64)
    residual_q = np.asarray(residual_q)
    err = ulp_errors(got, rounded, residual_q, fmt)
    nonfinite = ~np.isfinite(rounded) | ~np.isfinite(got)
    subnormal = ~nonfinite & subnormal_mask(rounded, residual_q, fmt, x)
    normal = ~nonfinite & ~subnormal
    codes = np.where(nonfinite, 2, np.where(subnormal, 1, 0)).astype(np.int8)

    nf_match = (np.isnan(rounded) & np.isnan(got)) | (np.isinf(rounded) & (got == rounded))
    nf_bad = nonfinite & ~nf_match
    a = np.abs(err)
    an = a[normal]
    if an.size:
        worst_local = int(np.argmax(an))
        worst = int(np.flatnonzero(normal)[worst_local])
        max_ulp_v = float(an[worst_local])
        p99 = float(np.percentile(an, 99))
        mean = float(an.mean())
    else:
        worst, max_ulp_v, p99, mean = -1, 0.0, 0.0, 0.0
    asub = a[subnormal]
    stats = Stats(
        n=int(got.size),
        n_normal=int(normal.sum()),
        max_ulp=max_ulp_v,
        p99_ulp=p99,
        mean_ulp=mean,
        n_cr=int((_bits_equal(got, rounded) & normal).sum()),
        n_over=int((an > max_ulp).sum()),
        worst_index=worst,
        n_subnormal=int(subnormal.sum()),
        n_flushed=int((subnormal & (got == 0) & (rounded != 0)).sum()),
        max_ulp_subnormal=float(asub.max()) if asub.size else 0.0,
        n_nonfinite=int(nonfinite.sum()),
        n_nonfinite_mismatch=int(nf_bad.sum()),
        first_nonfinite_mismatch=int(np.argmax(nf_bad)) if nf_bad.any() else -1,
    )
    return stats, err, codes
