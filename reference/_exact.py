"""Exact rational arithmetic on floats, with Python integers.

Every float16/bfloat16/float32/float64 value is ``m * 2**e`` with integers
``m``, ``e`` (``math.frexp``, scaled).  An array of them, put on one common
exponent (``base``, the smallest of its exponents), becomes an array of Python
integers; products and sums of those are exact, so a dot product, a window sum
or a whole matrix product is an exact integer times a power of two.  Rounding
happens once, in ``_convert.round_to_format``.

Cost: a matrix product of sizes ``(M, K) x (K, N)`` is ``M K N`` Python
integer multiply-adds (about 10 million per second; the golden cases stay
under a few hundred thousand).
"""

from __future__ import annotations

import numpy as np

from ._convert import Format, dyadic_to_mpf, quantize_residual, round_to_format

__all__ = ["Dyadic", "to_dyadic", "exact_matmul", "add", "absolute", "to_float", "round_dyadic", "round_quotient"]


class Dyadic:
    """An object array of Python ints ``ints`` standing for ``ints * 2**base``."""

    def __init__(self, ints: np.ndarray, base: int):
        self.ints = ints
        self.base = int(base)

    def rebase(self, base: int) -> "Dyadic":
        """The same values on a smaller-or-equal exponent ``base``."""
        shift = self.base - int(base)
        if shift < 0:
            raise ValueError(f"rebase can only lower the exponent: {self.base} -> {base}")
        return Dyadic(np.frompyfunc(lambda v: v << shift, 1, 1)(self.ints), base)


def to_dyadic(a) -> Dyadic:
    """Exact integer form of a float array (values must be finite)."""
    a = np.asarray(a, dtype=np.float64)
    if not np.isfinite(a).all():
        raise ValueError("the exact references take finite inputs only")
    m, e = np.frexp(a)
    man = np.ldexp(m, 53).astype(np.int64)  # exact: |m| < 1 has 53 bits
    exp = e.astype(np.int64) - 53
    nz = man != 0
    base = int(exp[nz].min()) if nz.any() else 0
    shift = np.where(nz, exp - base, 0)
    ints = np.empty(a.shape, dtype=object)
    flat_m, flat_s = man.ravel().tolist(), shift.ravel().tolist()
    ints.ravel()[:] = [mm << ss for mm, ss in zip(flat_m, flat_s)]
    return Dyadic(ints, base)


def exact_matmul(a: Dyadic, b: Dyadic) -> Dyadic:
    """``a @ b`` exactly, for 2-D ``a`` (M, K) and ``b`` (K, N)."""
    return Dyadic(np.dot(a.ints, b.ints), a.base + b.base)


def add(a: Dyadic, b: Dyadic) -> Dyadic:
    """``a + b`` exactly (broadcasting)."""
    base = min(a.base, b.base)
    a, b = a.rebase(base), b.rebase(base)
    return Dyadic(a.ints + b.ints, base)


def absolute(a: Dyadic) -> Dyadic:
    return Dyadic(np.frompyfunc(abs, 1, 1)(a.ints), a.base)


def to_float(a: Dyadic) -> np.ndarray:
    """Nearest float64 of each value (for error bounds, not for results)."""
    flat = [float(dyadic_to_mpf(v, a.base)) for v in a.ints.ravel().tolist()]
    return np.array(flat, dtype=np.float64).reshape(a.ints.shape)


def round_dyadic(a: Dyadic, fmt: Format):
    """``(rounded float64 array, quantized int16 residual array)``: each exact value rounded once."""
    rounded, residual = [], []
    for v in a.ints.ravel().tolist():
        r, res = round_to_format(dyadic_to_mpf(v, a.base), fmt)
        rounded.append(r)
        residual.append(quantize_residual(res))
    shape = a.ints.shape
    return (np.array(rounded, dtype=np.float64).reshape(shape),
            np.array(residual, dtype=np.int16).reshape(shape))


def round_quotient(num: Dyadic, den: np.ndarray, fmt: Format):
    """``num / den`` (``den`` positive integers) rounded once to ``fmt``, with residuals.

    The quotient is truncated to ``K`` bits past the binary point of ``num``'s
    exponent with a sticky bit (the lowest bit set when the division is
    inexact): that number rounds to ``fmt`` exactly as the quotient does,
    because it keeps more than ``fmt.p + 2`` significant bits, and its residual
    differs from the quotient's by less than ``2**-60`` ulp.
    """
    den = np.broadcast_to(np.asarray(den), num.ints.shape)
    rounded, residual = [], []
    for v, d in zip(num.ints.ravel().tolist(), den.ravel().tolist()):
        d = int(d)
        if d <= 0:
            raise ValueError(f"round_quotient needs positive denominators, got {d}")
        k = fmt.p + 64 + d.bit_length()
        q, rem = divmod(abs(v) << (k + 1), d)
        m = q | (1 if rem else 0)
        r, res = round_to_format(dyadic_to_mpf(-m if v < 0 else m, num.base - k - 1), fmt)
        rounded.append(r)
        residual.append(quantize_residual(res))
    shape = num.ints.shape
    return (np.array(rounded, dtype=np.float64).reshape(shape),
            np.array(residual, dtype=np.int16).reshape(shape))
