"""Coefficients of ``impl._fast64``'s ``expm1(r)`` polynomial for ``|r| <= ln2/2``.

What: ``expm1(r) = r (1 + r p(r))`` with ``p`` of degree ``DEGREE - 2`` close to
``q(r) = (expm1(r) - r) / r**2 = 1/2 + r/6 + r**2/24 + ...``: ``q`` is interpolated at the
``DEGREE - 1`` Chebyshev nodes of ``[-A, A]`` (``A = ln2/2`` widened by ``2**-20`` for the
reduction's rounding) in mpmath at 200 bits (``q`` from its Taylor series, which does not
cancel next to 0), converted to the power basis in ``r`` exactly (in mpmath) and rounded to
binary64.  Chebyshev interpolation is within a small factor of the minimax polynomial; the
relative error of ``expm1`` is ``r**2 (p - q) / expm1(r)``, about ``r (p - q)``.

Why: the Taylor polynomial it replaces needed degree 13 for the same float64 accuracy (the
interpolant spreads its error over the interval; Taylor's sits at the ends).  Two multiply-adds
fewer an element in every float32 activation built on ``_fast64.exp``/``expm1``.

How: ``python -m tools.fit_expm1`` prints the constants pasted into ``impl/_fast64.py`` and the
measured relative error of the binary64 Horner evaluation against mpmath on 60001 points of
``[-A, A]`` (Chebyshev-spaced, both ends, and 20000 points next to 0; about a minute).
Deterministic: no random numbers.
"""

from __future__ import annotations

import mpmath
import numpy as np

from tools._chebyshev import nodes, power_coefficients

__all__ = ["DEGREE", "A", "coefficients", "evaluate", "main"]

DEGREE = 11
A = float(mpmath.log(2) / 2 * (1 + mpmath.mpf(2) ** -20))


def _q(r):
    """``(expm1(r) - r) / r**2`` from its Taylor series (no cancellation; |r| <= 0.35)."""
    return mpmath.fsum(r ** j / mpmath.factorial(j + 2) for j in range(60))


def coefficients(degree=DEGREE, a=A):
    """Power-basis coefficients of ``p`` (constant first), as binary64 floats."""
    with mpmath.workprec(200):
        n = degree - 1
        a = mpmath.mpf(a)
        power = power_coefficients([_q(a * s) for s in nodes(n)])
        return [float(power[i] / a ** i) for i in range(n)]


def evaluate(r, coef):
    """The binary64 evaluation, as ``impl._fast64._expm1_poly`` does it (numpy)."""
    r = np.asarray(r, dtype=np.float64)
    p = np.full_like(r, coef[-1])
    for c in reversed(coef[:-1]):
        p = p * r + c
    return r * (1.0 + r * p)


def _points():
    n = 40001
    cheb = A * np.cos((np.arange(n) + 0.5) * np.pi / n)
    small = np.linspace(-1e-3, 1e-3, 20000)
    r = np.concatenate([cheb, small, [-A, A]])
    return r[r != 0]


def main():
    coef = coefficients()
    print(f"DEGREE = {DEGREE}, A = {A!r}")
    print("_EXPM1_P = (" + ", ".join(repr(c) for c in coef) + ")")
    r = _points()
    got = evaluate(r, coef)
    with mpmath.workprec(120):
        err = max(abs(mpmath.mpf(float(g)) / mpmath.expm1(mpmath.mpf(float(x))) - 1) for g, x in zip(got, r))
    print(f"max relative error on {r.size} points of [-A, A]: 2**{float(mpmath.log(err, 2)):.2f}")


if __name__ == "__main__":
    main()
