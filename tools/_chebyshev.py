"""Chebyshev interpolation in mpmath, shared by the coefficient tools (``tools.fit_erfcx``,
``tools.fit_expm1``): the interpolant of values at the Chebyshev nodes of ``[-1, 1]`` in the
power basis, exactly (in mpmath) before any rounding to binary64."""

from __future__ import annotations

import mpmath

__all__ = ["nodes", "power_coefficients"]


def nodes(n):
    """The ``n`` Chebyshev nodes ``cos((j + 1/2) pi / n)`` of ``[-1, 1]`` (mpmath, current precision)."""
    return [mpmath.cos((j + mpmath.mpf(1) / 2) * mpmath.pi / n) for j in range(n)]


def power_coefficients(ys):
    """Power-basis coefficients in ``s`` (constant first, mpmath) of the polynomial of degree
    ``len(ys) - 1`` through ``ys`` at ``nodes(len(ys))``: its Chebyshev coefficients, then the
    Chebyshev polynomials' recurrence ``T_{j+1} = 2 s T_j - T_{j-1}`` summed term by term."""
    n = len(ys)
    cheb = [2 * mpmath.fsum(ys[j] * mpmath.cos(i * (j + mpmath.mpf(1) / 2) * mpmath.pi / n)
                            for j in range(n)) / n for i in range(n)]
    cheb[0] /= 2
    power = [mpmath.mpf(0)] * n
    prev = [mpmath.mpf(1)] + [mpmath.mpf(0)] * (n - 1)
    cur = ([mpmath.mpf(0), mpmath.mpf(1)] + [mpmath.mpf(0)] * (n - 2)) if n > 1 else [mpmath.mpf(0)]
    for i in range(n):
        power[i] += cheb[0] * prev[i] + (cheb[1] * cur[i] if n > 1 else 0)
    for j in range(2, n):
        nxt = [2 * (cur[i - 1] if i else 0) - prev[i] for i in range(n)]
        for i in range(n):
            power[i] += cheb[j] * nxt[i]
        prev, cur = cur, nxt
    return power
