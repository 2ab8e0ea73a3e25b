r"""Exact vector-Jacobian products of the softmax family and the normalizations.

For an input ``x`` and a cotangent ``g`` (both exact binary floats, every
format embeds in binary64), the VJP ``dx = J(x)^T g`` of the op at ``x`` is
computed from its mathematical formula and rounded once, correctly, to the
target format.  Parameters (``weight``, ``eps``) are their exact binary64
values.  Only the derivative with respect to ``x`` is computed (for batch
norm in training mode: of the normalized output ``y``; the running statistics
get a zero cotangent).

Normalizations
--------------

Over one group of ``n`` inputs, with ``d_i = x_i - mean(x)`` (``d_i = x_i`` for
``rms_norm``), ``s = mean(d^2) + eps``, ``r = 1 / sqrt(s)``, ``xhat = d r`` and
``h_i = g_i w_i`` (``w`` the weight, 1 without one):

.. math::

   dx_i = r\,(h_i - \overline{h} - \hat x_i\,\overline{h \hat x})
        = \frac{C_i}{\sqrt{s}},\qquad
   C_i = h_i - \overline{h} - \frac{d_i\,\overline{h d}}{s}

(``rms_norm``: no ``\overline{h}`` term).  ``C_i`` and ``s`` are rationals, computed
exactly with ``fractions.Fraction``; so ``|dx_i| = sqrt(P / Q)`` with integers
``P = num(C)^2 den(s)``, ``Q = den(C)^2 num(s)``, and ``dx_i`` is rounded with an
integer square root: ``m = isqrt(floor(P 4^k / Q))`` for a ``k`` that gives ``m``
at least ``p + 38`` bits, ``m 2^-k`` when ``m^2 Q = P 4^k`` (exact), else
``(2m + 1) 2^-(k+1)`` (a sticky bit).  That number lies strictly between the
same two multiples of ``2^-(k+1)`` as ``|dx_i|``, and every rounding boundary
of the format and of the stored residual's quantum (``ulp 2^-15``) is such a
multiple, so it rounds, and quantizes, exactly as ``dx_i`` does: no working
precision to choose, no undecided case.  ``C_i = 0`` gives ``+0``.

Softmax family
--------------

With ``s_i = x_i - max(x)`` (exact), ``e_i = exp(s_i)``, ``Z = sum e_i``,
``p = e / Z``, ``G = sum g``:

.. math::

   \mathrm{softmax}:\ dx_j = p_j\,(g_j - \langle p, g\rangle)
       = e_j\,(g_j Z - W) / Z^2,\ W = \sum_i e_i g_i;\qquad
   \mathrm{log\_softmax}:\ dx_j = g_j - p_j G .

These are evaluated by mpmath at a working precision ``wp`` and rounded by
Ziv's test with the a-priori bounds (``u = 2^-wp``; every mpmath operation
within ``2u`` relative, sums of ``n`` terms within ``(n + 2) u`` of their
absolute sum; a factor 2 of margin):
``(6n + 32) u e_j (|g_j| Z + sum e_i |g_i|) / Z^2`` (softmax) and
``(2n + 16) u (p_j |G| + |dx_j|)`` (log_softmax); ``wp`` doubles until the
bound decides, up to ``2^14`` bits, past which ``ArithmeticError`` is raised.
No "same value at two precisions" rule ends the loop.  Exact results are
found first, by exact arithmetic, so the loop never meets one: softmax's
bracket ``sum_i e_i (g_j - g_i)`` is a combination of the exponentials of the
distinct ``s`` with rational coefficients, exactly zero only when every
coefficient is (Lindemann-Weierstrass), i.e. when the mean of ``g`` over every
set of equal logits equals ``g_j``: then ``+0``; log_softmax with ``G = 0`` is
exactly ``g_j``; a row of equal logits has ``p = 1/n`` and a rational VJP.
Otherwise the result is nonzero and transcendental, never a rounding
boundary.  Rows must be finite (the cases hold no edge rows).

The scale of each element
-------------------------

Each function also returns ``term_exp``: ``floor(log2 T_j)`` of the largest
magnitude among the exact result and the terms an implementation evaluating
the textbook VJP adds up (``-1075`` when all are 0): ``r max(|h_i|, mean|h|,
|xhat_i| mean|h xhat|)`` for the normalizations (``mean|h x| / s`` for
``rms_norm``), ``p_j max(|g_j|, sum p_i |g_i|)`` for softmax and
``max(|g_j|, p_j sum |g_i|)`` for log_softmax.  Where these terms cancel, an
error relative to the result is not meaningful; the budgets are stated in
ulps of ``2^term_exp`` (``tools/registry/vjps.py``).

Every function returns ``(rounded, residual, term_exp)`` arrays of ``x``'s shape
(float64, int16 residual in units of ``2^-14`` ulp, int16).  ``fallback_map``
maps the per-group work (a process pool's ``imap`` to parallelize).
"""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np

from ._convert import FORMATS, Format, dyadic_to_mpf, quantize_residual, round_fraction, round_to_format
from .reductions import START_GUARD, _MAX_PREC, _param_at, _rows, _ziv_interval

__all__ = ["softmax_vjp", "log_softmax_vjp", "layer_norm_vjp", "rms_norm_vjp", "group_norm_vjp",
           "instance_norm_vjp", "batch_norm_vjp", "round_sqrt_ratio", "NO_TERM"]

NO_TERM = -1075  # term_exp of an element whose terms are all 0


def _term_exp(t: float) -> int:
    return NO_TERM if t == 0 else math.frexp(t)[1] - 1


def round_sqrt_ratio(negative: bool, P: int, Q: int, fmt: Format):
    """``(rounded, residual)`` of ``±sqrt(P / Q)`` (``P, Q > 0`` integers) in ``fmt``, exactly
    (integer square root with a sticky bit; module docstring)."""
    k = fmt.p + 40 - (P.bit_length() - Q.bit_length()) // 2
    num, den = (P << (2 * k), Q) if k >= 0 else (P, Q << (-2 * k))
    m = math.isqrt(num // den)
    man, e = (m, -k) if m * m * den == num else (2 * m + 1, -k - 1)
    return round_to_format(dyadic_to_mpf(-man if negative else man, e), fmt)


def _exact_result(v: Fraction, fmt: Format):
    r, q = round_fraction(v, fmt)
    return (0.0 if r == 0 else r), quantize_residual(q)


class _NormRow:
    """The VJP of one normalization group (picklable): ``(xs, gs, ws) -> [(rounded, residual_q, term_exp)]``."""

    def __init__(self, fmt_name: str, eps: float, rms: bool):
        self.fmt_name, self.eps, self.rms = fmt_name, float(eps), rms

    def __call__(self, task):
        xs, gs, ws = task
        fmt = FORMATS[self.fmt_name]
        n = len(xs)
        x = [Fraction(v) for v in xs]
        h = [Fraction(g) * (1 if w is None else Fraction(w)) for g, w in zip(gs, ws)]
        mx = sum(x) / n
        d = x if self.rms else [v - mx for v in x]
        s = sum(v * v for v in d) / n + Fraction(self.eps)
        if s == 0:
            raise ValueError("the VJP of a normalization with var + eps = 0 is undefined")
        mh = Fraction(0) if self.rms else sum(h) / n
        mhd = sum(a * b for a, b in zip(h, d)) / n
        # scale: r max(|h_i|, mean|h|, |d_i| mean|h d| / s)
        r = 1.0 / math.sqrt(float(s))
        ah = float(sum(abs(v) for v in h) / n) if not self.rms else 0.0
        ahd_s = float(sum(abs(a * b) for a, b in zip(h, d)) / n / s)
        out = []
        for hi, di in zip(h, d):
            c = hi - mh - di * mhd / s
            if c == 0:
                val, q = 0.0, 0
            else:
                v, q0 = round_sqrt_ratio(c < 0, c.numerator ** 2 * s.denominator, c.denominator ** 2 * s.numerator,
                                         fmt)
                val, q = v, quantize_residual(q0)
            t = r * max(abs(float(hi)), ah, abs(float(di)) * ahd_s, abs(float(c)))
            out.append((val, q, _term_exp(t)))
        return out


class _SoftmaxRow:
    """The VJP of softmax or log_softmax along one row (picklable): ``(xs, gs) -> [...]``."""

    def __init__(self, fmt_name: str, log: bool):
        self.fmt_name, self.log = fmt_name, log

    def __call__(self, task):
        xs, gs = task
        fmt = FORMATS[self.fmt_name]
        if not all(math.isfinite(v) for v in list(xs) + list(gs)):
            raise ValueError(f"the softmax VJP reference takes finite rows, got {xs!r}, {gs!r}")
        n = len(xs)
        M = max(xs)
        g = [Fraction(v) for v in gs]
        G = sum(g)
        if all(v == M for v in xs):  # p = 1/n: a rational VJP
            return [self._rational(gj, G, n, fmt) for gj in g]
        out = [None] * n
        todo = []
        groups = {}
        for v, gi in zip(xs, g):
            groups.setdefault(v, []).append(gi)
        means = [sum(gg) / len(gg) for gg in groups.values()]
        for j, gj in enumerate(g):
            if not self.log and all(m == gj for m in means):
                out[j] = (0.0, 0, NO_TERM)  # every coefficient of the bracket is 0
            elif self.log and G == 0:
                r, q = _exact_result(gj, fmt)
                out[j] = (r, q, _term_exp(abs(float(gj))))
            else:
                todo.append(j)
        wp = fmt.p + START_GUARD + n.bit_length()
        while todo:
            with mpmath.workprec(wp):
                u = mpmath.ldexp(1, -wp)
                e = [mpmath.exp(mpmath.fsub(mpmath.mpf(v), mpmath.mpf(M), exact=True)) for v in xs]
                Z = mpmath.fsum(e)
                gm = [mpmath.mpf(v) for v in gs]
                W = mpmath.fsum(a * b for a, b in zip(e, gm))
                Wabs = mpmath.fsum(a * abs(b) for a, b in zip(e, gm))
                Gm = mpmath.mpf(G.numerator) / G.denominator
                Gabs = mpmath.fsum(abs(b) for b in gm)
                left = []
                for j in todo:
                    pj = e[j] / Z
                    if self.log:
                        B = pj * Gm
                        v = gm[j] - B
                        err = (2 * n + 16) * u * (abs(B) + abs(v))
                        t = max(abs(gm[j]), pj * Gabs, abs(v))
                    else:
                        A = gm[j] * Z - W
                        v = e[j] * A / (Z * Z)
                        err = (6 * n + 32) * u * e[j] * (abs(gm[j]) * Z + Wabs) / (Z * Z)
                        t = max(pj * abs(gm[j]), pj * Wabs / Z, abs(v))
                    with mpmath.workprec(2 * wp):
                        res = _ziv_interval(v, err, fmt)
                    if res is None:
                        left.append(j)
                    else:
                        out[j] = (res[0], quantize_residual(res[1]), _term_exp(float(t)))
            todo = left
            wp *= 2
            if wp > _MAX_PREC and todo:
                raise ArithmeticError(f"softmax VJP reference: could not round {len(todo)} results of the row "
                                      f"{xs!r} to {fmt.name} at {wp // 2} bits")
        return out

    def _rational(self, gj, G, n, fmt):
        if self.log:
            v, t = gj - G / n, max(abs(gj), abs(G) / n)
        else:
            v, t = (gj - G / n) / n, max(abs(gj), abs(G) / n) / n
        r, q = _exact_result(v, fmt)
        return r, q, _term_exp(float(max(t, abs(v))))


def _run(x, rows_idx, tasks, worker, fallback_map):
    rounded = np.empty(x.size, dtype=np.float64)
    residual = np.zeros(x.size, dtype=np.int16)
    term = np.zeros(x.size, dtype=np.int16)
    for idx, res in zip(rows_idx, fallback_map(worker, tasks)):
        for i, (r, q, t) in zip(idx, res):
            rounded[i], residual[i], term[i] = r, q, t
    return rounded.reshape(x.shape), residual.reshape(x.shape), term.reshape(x.shape)


def _norm_vjp(x, g, perm, row_len, fmt, weight, eps, fallback_map, rms=False):
    x, g = np.asarray(x), np.asarray(g)
    if x.shape != g.shape:
        raise ValueError(f"the cotangent's shape {g.shape} differs from the input's {x.shape}")
    xs, gs = x.astype(np.float64).reshape(-1), g.astype(np.float64).reshape(-1)
    rows_idx = _rows(x, perm, row_len)
    tasks = [([float(xs[i]) for i in idx], [float(gs[i]) for i in idx], _param_at(weight, x.shape, idx))
             for idx in rows_idx]
    return _run(x, rows_idx, tasks, _NormRow(fmt.name, eps, rms), fallback_map)


def layer_norm_vjp(x, g, fmt: Format, normalized_shape, weight=None, eps=1e-5, fallback_map=map):
    """Exact VJP of ``layer_norm`` over the trailing ``normalized_shape`` axes w.r.t. ``x``."""
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    x = np.asarray(x)
    return _norm_vjp(x, g, tuple(range(x.ndim)), math.prod(ns), fmt, weight, eps, fallback_map)


def rms_norm_vjp(x, g, fmt: Format, normalized_shape, weight=None, eps=1e-6, fallback_map=map):
    """Exact VJP of ``rms_norm`` w.r.t. ``x``."""
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    x = np.asarray(x)
    return _norm_vjp(x, g, tuple(range(x.ndim)), math.prod(ns), fmt, weight, eps, fallback_map, rms=True)


def instance_norm_vjp(x, g, fmt: Format, weight=None, eps=1e-5, fallback_map=map):
    """Exact VJP of ``instance_norm`` of ``(N, *spatial, C)`` w.r.t. ``x``."""
    x = np.asarray(x)
    perm = (0, x.ndim - 1) + tuple(range(1, x.ndim - 1))
    return _norm_vjp(x, g, perm, math.prod(x.shape[1:-1]), fmt, weight, eps, fallback_map)


def group_norm_vjp(x, g, fmt: Format, num_groups, weight=None, eps=1e-5, fallback_map=map):
    """Exact VJP of ``group_norm`` of ``(N, *spatial, C)`` (contiguous channel groups) w.r.t. ``x``."""
    x = np.asarray(x)
    N, C, G = x.shape[0], x.shape[-1], num_groups
    P = math.prod(x.shape[1:-1])
    shape = (N, P, G, C // G)
    w = None if weight is None else np.asarray(weight).reshape(G, C // G)
    out = _norm_vjp(x.reshape(shape), np.asarray(g).reshape(shape), (0, 2, 1, 3), P * (C // G), fmt, w, eps,
                    fallback_map)
    return tuple(a.reshape(x.shape) for a in out)


def batch_norm_vjp(x, g, fmt: Format, weight=None, eps=1e-5, fallback_map=map):
    """Exact VJP of training-mode ``batch_norm`` (batch statistics over every axis but the last)
    w.r.t. ``x``, for a cotangent ``g`` of the normalized output."""
    x = np.asarray(x)
    perm = (x.ndim - 1,) + tuple(range(x.ndim - 1))
    return _norm_vjp(x, g, perm, x.size // x.shape[-1], fmt, weight, eps, fallback_map)


def _softmax_vjp(x, g, fmt, axis, log, fallback_map):
    x, g = np.asarray(x), np.asarray(g)
    if x.shape != g.shape:
        raise ValueError(f"the cotangent's shape {g.shape} differs from the input's {x.shape}")
    ax = axis % x.ndim
    perm = tuple(a for a in range(x.ndim) if a != ax) + (ax,)
    rows_idx = _rows(x, perm, x.shape[ax])
    xs, gs = x.astype(np.float64).reshape(-1), g.astype(np.float64).reshape(-1)
    tasks = [([float(xs[i]) for i in idx], [float(gs[i]) for i in idx]) for idx in rows_idx]
    return _run(x, rows_idx, tasks, _SoftmaxRow(fmt.name, log), fallback_map)


def softmax_vjp(x, g, fmt: Format, axis=-1, fallback_map=map):
    """Exact VJP of ``softmax`` along ``axis`` w.r.t. ``x``: ``p (g - <p, g>)``."""
    return _softmax_vjp(x, g, fmt, axis, False, fallback_map)


def log_softmax_vjp(x, g, fmt: Format, axis=-1, fallback_map=map):
    """Exact VJP of ``log_softmax`` along ``axis`` w.r.t. ``x``: ``g - p sum(g)``."""
    return _softmax_vjp(x, g, fmt, axis, True, fallback_map)
