"""Coefficients of ``impl._dd.erfcx``: ``erfcx(w) = exp(w**2) erfc(w)`` on ``0 <= w <= W`` to
about 2**-66 relative, for the float64 gelu and its derivative in double-double.

What: as ``tools.fit_erfcx`` (the float32 kernel's fit), ``g = erfcx(w) (w + K)`` as a
polynomial in ``s = (t + 1) A - 1``, ``t = (w - K) / (w + K)``, but with ``A`` the binary64
value of ``2 / (t(W) + 1)`` taken exactly (the kernel computes ``s`` in double-double with that
``A``, so the fit is of the function the kernel evaluates), interpolated at ``DEGREE + 1``
Chebyshev nodes of ``[-1, s(W)]`` by solving the Vandermonde system in mpmath at 250 bits.  The
first ``DD_TERMS`` coefficients are printed as double-doubles (hi, lo), the rest as binary64.

Why: erfc(w) = exp(-w**2) erfcx(w) is gelu's erfc without the rounding of ``w**2`` that erfc
amplifies; a float64 result correctly rounded in 99 % of cases needs the quotient to about
2**-64, beyond XLA's float64 erfc (1667 ulp in gelu) and the float32 kernel (2**-50.6).

How: ``python -m tools.fit_erfcx_dd`` prints the constants pasted into ``impl/_dd.py`` and the
interpolation error of the exact polynomial on 401 points (about 10 s).  Deterministic.
"""

from __future__ import annotations

import mpmath

__all__ = ["K", "W", "DEGREE", "DD_TERMS", "coefficients", "main"]

K = 3
W = 28
DEGREE = 28
DD_TERMS = 10


def _g(s, a):
    t = (s + 1) / a - 1
    w = K * (1 + t) / (1 - t)
    return mpmath.exp(w * w) * mpmath.erfc(w) * (w + K)


def coefficients():
    """``(coef, a, err)``: power-basis coefficients in ``s`` (constant first, mpf), the map's
    ``A`` (a binary64 float) and the largest relative interpolation error on 401 points."""
    with mpmath.workprec(250):
        n = DEGREE + 1
        t_max = (mpmath.mpf(W) - K) / (mpmath.mpf(W) + K)
        a = float(2 / (t_max + 1))
        s_max = (t_max + 1) * a - 1
        nodes = [(mpmath.cos((j + mpmath.mpf(1) / 2) * mpmath.pi / n) + 1) / 2 * (s_max + 1) - 1 for j in range(n)]
        vand = mpmath.matrix([[s ** i for i in range(n)] for s in nodes])
        c = mpmath.lu_solve(vand, mpmath.matrix([_g(s, a) for s in nodes]))
        coef = [c[i] for i in range(n)]
        err = mpmath.mpf(0)
        for i in range(401):
            w = mpmath.mpf(W) * i / 400
            s = ((w - K) / (w + K) + 1) * a - 1
            p = mpmath.mpf(0)
            for cc in reversed(coef):
                p = p * s + cc
            err = max(err, abs(p / (mpmath.exp(w * w) * mpmath.erfc(w) * (w + K)) - 1))
        return coef, a, err


def main():
    coef, a, err = coefficients()
    with mpmath.workprec(250):
        dd = [(float(c), float(c - mpmath.mpf(float(c)))) for c in coef[:DD_TERMS]]
    print(f"K = {K}, W = {W}, DEGREE = {DEGREE}, A = {a!r}")
    print("_ERFCX_DD = (" + ", ".join(f"({h!r}, {l!r})" for h, l in dd) + ")")
    print("_ERFCX_TAIL = (" + ", ".join(repr(float(c)) for c in coef[DD_TERMS:]) + ")")
    print(f"interpolation error on 401 points of [0, {W}]: 2**{float(mpmath.log(err, 2)):.2f}")


if __name__ == "__main__":
    main()
