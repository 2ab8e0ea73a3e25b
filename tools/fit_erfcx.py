"""Coefficients of ``impl._fast64.erfcx_unit``: a polynomial for the scaled complementary error
function ``erfcx(w) = exp(w**2) erfc(w)`` on ``0 <= w <= W``.

What: with ``t = (w - K) / (w + K)`` (so ``1 - t = 2K / (w + K)``) and ``s`` the affine map of
``t`` from ``[-1, t(W)]`` onto ``[-1, 1]``, the function ``g(s) = erfcx(w) (w + K)`` is smooth and
of order 1 on the whole interval (``erfcx`` itself decays like ``1 / (w sqrt(pi))``, which would
cost relative accuracy in a Horner sum).  ``g`` is interpolated at the ``DEGREE + 1`` Chebyshev
nodes in mpmath at 200 bits and converted to the power basis in ``s`` exactly (in mpmath), then
rounded to binary64.  Then ``erfcx(w) = g(s) / (w + K)``.

Why: the float32 gelu (``x/2 erfc(-x/sqrt 2)``) and its derivative need erfc to about 2**-50
relative in float64 arithmetic that XLA vectorizes; XLA's float64 erfc is several times slower.

How: ``python -m tools.fit_erfcx`` prints the constants pasted into ``impl/_fast64.py`` and the
measured relative error of the binary64 evaluation against mpmath on 20001 points (a few
seconds).  Deterministic: no random numbers.
"""

from __future__ import annotations

import mpmath
import numpy as np

from tools._chebyshev import nodes, power_coefficients

__all__ = ["K", "W", "DEGREE", "coefficients", "main"]

K = 3.0
W = 11.0
DEGREE = 20


def _erfcx(w):
    return mpmath.exp(w * w) * mpmath.erfc(w)


def coefficients(k=K, w_max=W, degree=DEGREE):
    """Power-basis coefficients of ``g(s)`` (constant first), as binary64 floats."""
    with mpmath.workprec(200):
        n = degree + 1
        t_max = (mpmath.mpf(w_max) - k) / (mpmath.mpf(w_max) + k)
        ys = []
        for s in nodes(n):
            t = -1 + (s + 1) / 2 * (t_max + 1)
            w = k * (1 + t) / (1 - t)
            ys.append(_erfcx(w) * (w + k))
        power = power_coefficients(ys)
        return [float(c) for c in power], float(t_max)


def evaluate(w, coef, t_max, k=K):
    """The binary64 evaluation, as ``impl._fast64.erfcx_unit`` does it (numpy)."""
    w = np.asarray(w, dtype=np.float64)
    inv = 1.0 / (w + k)
    t = (w - k) * inv
    s = (t + 1.0) * (2.0 / (t_max + 1.0)) - 1.0
    acc = np.zeros_like(s)
    for c in reversed(coef):
        acc = acc * s + c
    return acc * inv


def main():
    coef, t_max = coefficients()
    print(f"K = {K!r}, W = {W!r}, DEGREE = {DEGREE}, T_MAX = {t_max!r}")
    print("_ERFCX = (" + ", ".join(repr(c) for c in coef) + ")")
    ws = np.linspace(0.0, W, 20001)
    got = evaluate(ws, coef, t_max)
    with mpmath.workprec(120):
        err = max(abs(float(mpmath.mpf(g) / _erfcx(mpmath.mpf(w)) - 1)) for g, w in zip(got, ws))
    print(f"max relative error on 20001 points of [0, {W}]: 2**{np.log2(err):.2f}")


if __name__ == "__main__":
    main()
