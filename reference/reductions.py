r"""Exact references for the softmax family and the normalization layers.

Inputs are taken at their exact values (every supported format embeds in
binary64, and ``float.as_integer_ratio`` is exact); parameters such as ``eps``
and ``momentum`` are their exact binary64 values.

Normalization
-------------

For one group of ``n`` inputs, write ``x_i = X_i / 2**K`` with integers
``X_i`` (``K`` the largest binary exponent needed).  Then, with Python integers
(no rounding at all)

.. math::

   S = \sum X_i,\quad D_i = n X_i - S,\quad Q = \sum D_i^2,\qquad
   \bar x = \frac{S}{n 2^K},\quad x_i - \bar x = \frac{D_i}{n 2^K},\quad
   \sigma^2 = \frac{Q}{n^3 4^K}\ \text{(biased)},

and with ``eps = e / 2**f`` (exact),

.. math::

   \frac{x_i - \bar x}{\sqrt{\sigma^2 + \varepsilon}}
   = D_i \sqrt{\frac{n\,2^f}{Q\,2^f + e\,n^3 4^K}} .

The only irrational step is that square root: mpmath evaluates it, the
product with ``D_i``, ``* weight`` and ``+ bias`` at a working precision ``wp``
(each operation correctly rounded to ``wp`` bits, so the result is within
``2**-(wp - 4) * (|y w| + |t|)`` of the exact ``t``, a bound with a factor-2
margin), and Ziv's test rounds it: if both ends of that interval round to the
same value of the target format *and* the same stored residual quantum,
that is the correctly rounded result and its residual; otherwise ``wp``
doubles.  ``D_i = 0`` gives exactly ``bias`` (``+0`` without bias): a constant
input never gives NaN, even with ``eps = 0``.  Exact zero results are ``+0``.

``rms_norm`` is the same with ``D_i = X_i`` and ``Q = sum X_i**2``:
``x_i / sqrt(mean(x**2) + eps) = X_i sqrt(n 2**f / (Q 2**f + e n 4**K))``.

Batch norm's running statistics are rational and rounded exactly
(``round_fraction``): ``(1 - m) * running + m * batch`` with the exact mean
``S / (n 2**K)`` and the unbiased variance ``Q / (n**2 (n - 1) 4**K)``.

Softmax
-------

With ``M`` the largest logit (first position ``k``), ``s_j = x_j - M`` exactly
(mpmath ``fsub(..., exact=True)``), ``e_j = exp(s_j)``, ``r = sum_{j != k} e_j``:
``softmax_j = e_j / (1 + r)``, ``log_softmax_j = s_j - log1p(r)`` (no
cancellation: ``s_j <= 0 <= log1p(r)``).  Each of the ``n + 3`` correctly
rounded-or-nearly operations contributes at most a few units of ``2**-wp``;
the bound used is ``(n + 32) 2**-wp`` relative (softmax) and
``(n + 32) 2**-wp (|log1p r| + |result|)`` absolute (log_softmax).

Edge rows (the definitions ``impl`` documents): a NaN makes the row NaN;
``-inf`` entries give ``+0`` (log ``-inf``); ``k`` entries equal to ``+inf``
give ``1/k`` each and ``+0`` elsewhere (log ``-log k`` and ``-inf``); a row of
only ``-inf`` is uniform ``1/n`` (log ``-log n``).

Every function takes a numpy array ``x`` (any float dtype), a ``Format`` and the
op's parameters, and returns ``(rounded, residual)``: the correctly rounded
values as float64 and ``(exact - rounded) / ulp(exact)`` quantized to int16
(``_convert.quantize_residual``).  ``fallback_map(func, iterable)`` maps the
per-row work (pass a process pool's ``imap`` to parallelize).
"""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np

from ._convert import FORMATS, Format, quantize_residual, round_fraction, round_to_format, ulp_exponent

__all__ = [
    "round_fraction", "softmax", "log_softmax", "layer_norm", "group_norm", "instance_norm",
    "rms_norm", "batch_norm", "START_GUARD",
]

START_GUARD = 40  # first working precision: the format's bits + log2(n) + this
_MAX_PREC = 1 << 14


# ---- exact rounding of rationals ----------------------------------------------------

def _exact_float(v: float, fmt: Format):
    """A float input (bias, 1/k) rounded to ``fmt`` exactly."""
    if math.isnan(v) or math.isinf(v):
        return v, (0.0 if not math.isnan(v) else math.nan)
    r, q = round_fraction(Fraction(v), fmt)
    return (0.0 if r == 0 else r), q


def _ziv_interval(v, err, fmt: Format):
    """``round_to_format(v)`` if every value within ``err`` of ``v`` rounds to the same
    value and residual quantum, else ``None``."""
    lo, hi = v - err, v + err
    (rl, ql), (rh, qh) = round_to_format(lo, fmt), round_to_format(hi, fmt)
    if rl != rh or quantize_residual(ql) != quantize_residual(qh):
        return None
    return round_to_format(v, fmt)  # a nonzero result that underflows keeps its sign


# ---- normalization -----------------------------------------------------------------

def _dyadics(xs):
    """``x_i = X_i / 2**K`` with integers ``X_i``; returns ``(X, K)``."""
    fr = [float(v).as_integer_ratio() for v in xs]
    K = max(d.bit_length() - 1 for _, d in fr)
    return [nm << (K - (d.bit_length() - 1)) for nm, d in fr], K


def _center(xs, eps: float):
    """``(D, (Rn, Rd), S, Q, K)``: ``(x_i - mean) / sqrt(var + eps) = D_i sqrt(Rn / Rd)``."""
    X, K = _dyadics(xs)
    n = len(X)
    S = sum(X)
    D = [n * x - S for x in X]
    Q = sum(d * d for d in D)
    e, f = float(eps).as_integer_ratio()
    return D, (n * f, Q * f + e * n**3 * (1 << (2 * K))), S, Q, K


def _rms(xs, eps: float):
    X, K = _dyadics(xs)
    n = len(X)
    Q = sum(x * x for x in X)
    e, f = float(eps).as_integer_ratio()
    return X, (n * f, Q * f + e * n * (1 << (2 * K)))


class _Affine:
    """Correctly rounded ``t_i = P_i * 2**pe * sqrt(Rn / Rd) * w_i + b_i`` for one row (picklable)."""

    def __init__(self, fmt_name):
        self.fmt_name = fmt_name

    def __call__(self, task):
        P, pe, (Rn, Rd), ws, bs = task
        fmt = FORMATS[self.fmt_name]
        out = [None] * len(P)
        todo = []
        for i, p in enumerate(P):
            if p == 0:  # zero deviation: exactly bias (a constant input never gives NaN)
                out[i] = _exact_float(bs[i], fmt) if bs[i] is not None else (0.0, 0.0)
                if out[i][0] == 0:
                    out[i] = (0.0, 0.0)
            elif Rd == 0:  # var + eps == 0 with a nonzero deviation (eval, zero running_var, eps=0)
                w = 1.0 if ws[i] is None else ws[i]
                out[i] = (math.copysign(math.inf, p * w) if w else math.nan, math.nan)
            else:
                todo.append(i)
        nbits = max([abs(P[i]).bit_length() for i in todo] + [1])
        wp = fmt.p + START_GUARD + max(nbits - 53, 0).bit_length()
        while todo:
            with mpmath.workprec(wp):
                s = mpmath.sqrt(mpmath.mpf(Rn) / mpmath.mpf(Rd))
                tol = mpmath.ldexp(1, -(wp - 4))
                left = []
                for i in todo:
                    y = mpmath.ldexp(mpmath.mpf(P[i]), pe) * s
                    if ws[i] is not None:
                        y = y * mpmath.mpf(ws[i])
                    t = y + mpmath.mpf(bs[i]) if bs[i] is not None else y
                    err = tol * (abs(y) + abs(t))
                    with mpmath.workprec(2 * wp):
                        r = _ziv_interval(t, err, fmt)
                    if r is None:
                        left.append(i)
                    else:
                        out[i] = r
            todo = left
            wp *= 2
            if wp > _MAX_PREC and todo:
                raise ArithmeticError(f"normalization reference: could not round {len(todo)} results to "
                                      f"{fmt.name} at {wp // 2} bits")
        return [(r, quantize_residual(q)) for r, q in out]


def _rows(x, perm, row_len):
    """Flat indices of ``x`` arranged as rows: ``x.transpose(perm).reshape(-1, row_len)``."""
    idx = np.arange(x.size).reshape(x.shape).transpose(perm)
    return idx.reshape(-1, row_len)


def _param_at(p, shape, flat_idx):
    if p is None:
        return [None] * len(flat_idx)
    full = np.broadcast_to(np.asarray(p, dtype=np.float64), shape).reshape(-1)
    return [float(full[i]) for i in flat_idx]


def _run(rows_idx, tasks, fmt, shape, fallback_map):
    rounded = np.empty(math.prod(shape), dtype=np.float64)
    residual = np.zeros(math.prod(shape), dtype=np.int16)
    for idx, res in zip(rows_idx, fallback_map(_Affine(fmt.name), tasks)):
        for i, (r, q) in zip(idx, res):
            rounded[i] = r
            residual[i] = q
    return rounded.reshape(shape), residual.reshape(shape)


def _normalize(x, perm, row_len, fmt, weight, bias, eps, fallback_map, rms=False):
    x = np.asarray(x)
    xs = x.astype(np.float64).reshape(-1)
    rows_idx = _rows(x, perm, row_len)
    tasks = []
    for idx in rows_idx:
        vals = [float(xs[i]) for i in idx]
        if rms:
            P, R = _rms(vals, eps)
        else:
            P, R, *_ = _center(vals, eps)
        tasks.append((P, 0, R, _param_at(weight, x.shape, idx), _param_at(bias, x.shape, idx)))
    return _run(rows_idx, tasks, fmt, x.shape, fallback_map)


def layer_norm(x, fmt: Format, normalized_shape, weight=None, bias=None, eps=1e-5, fallback_map=map):
    """Exact ``layer_norm`` over the trailing ``normalized_shape`` axes, correctly rounded to ``fmt``."""
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    x = np.asarray(x)
    return _normalize(x, tuple(range(x.ndim)), math.prod(ns), fmt, weight, bias, eps, fallback_map)


def rms_norm(x, fmt: Format, normalized_shape, weight=None, eps=1e-6, fallback_map=map):
    """Exact ``rms_norm``: ``x / sqrt(mean(x**2) + eps) * weight`` over the trailing axes."""
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    x = np.asarray(x)
    return _normalize(x, tuple(range(x.ndim)), math.prod(ns), fmt, weight, None, eps, fallback_map, rms=True)


def instance_norm(x, fmt: Format, weight=None, bias=None, eps=1e-5, fallback_map=map):
    """Exact ``instance_norm`` of ``(N, *spatial, C)``: per sample and channel over the spatial axes."""
    x = np.asarray(x)
    perm = (0, x.ndim - 1) + tuple(range(1, x.ndim - 1))
    return _normalize(x, perm, math.prod(x.shape[1:-1]), fmt, weight, bias, eps, fallback_map)


def group_norm(x, fmt: Format, num_groups, weight=None, bias=None, eps=1e-5, fallback_map=map):
    """Exact ``group_norm`` of ``(N, *spatial, C)`` with ``num_groups`` contiguous channel groups."""
    x = np.asarray(x)
    N, C, G = x.shape[0], x.shape[-1], num_groups
    P = math.prod(x.shape[1:-1])
    # view as (N, P, G, C/G) and take rows (N, G) of length P * C/G
    xv = x.reshape(N, P, G, C // G)
    rounded, residual = _normalize(xv, (0, 2, 1, 3), P * (C // G), fmt,
                                   None if weight is None else np.asarray(weight).reshape(G, C // G),
                                   None if bias is None else np.asarray(bias).reshape(G, C // G), eps, fallback_map)
    return rounded.reshape(x.shape), residual.reshape(x.shape)


def batch_norm(x, fmt: Format, running_mean=None, running_var=None, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, stats_fmt: Format | None = None, fallback_map=map):
    """Exact ``batch_norm`` of ``(N, ..., C)`` (statistics over all axes but the last).

    Returns ``{"y": (rounded, residual), "running_mean": ..., "running_var": ...}``; the
    running statistics are rounded to ``stats_fmt`` (training) or returned unchanged
    (eval; residual 0).
    """
    x = np.asarray(x)
    C = x.shape[-1]
    perm = (x.ndim - 1,) + tuple(range(x.ndim - 1))
    n = x.size // C
    xs = x.astype(np.float64).reshape(-1)
    rows_idx = _rows(x, perm, n)
    tasks = []
    new_stats = ([], [])
    mom = Fraction(float(momentum))
    for c, idx in enumerate(rows_idx):
        vals = [float(xs[i]) for i in idx]
        wrow, brow = _param_at(weight, x.shape, idx), _param_at(bias, x.shape, idx)
        if training:
            D, R, S, Q, K = _center(vals, eps)
            tasks.append((D, 0, R, wrow, brow))
            if running_mean is not None:
                mean = Fraction(S, n << K)
                unbiased = Fraction(Q, n * n * (n - 1) << (2 * K))
                for lst, run, batch in ((new_stats[0], running_mean, mean), (new_stats[1], running_var, unbiased)):
                    lst.append(round_fraction((1 - mom) * Fraction(float(run[c])) + mom * batch, stats_fmt))
        else:
            rm, rv = Fraction(float(running_mean[c])), Fraction(float(running_var[c]))
            d = [Fraction(v) - rm for v in vals]
            den = max(q.denominator for q in d)  # d_i = P_i / den, den a power of two
            v = rv + Fraction(float(eps))
            P = [q.numerator * (den // q.denominator) for q in d]
            tasks.append((P, -(den.bit_length() - 1), (v.denominator, v.numerator), wrow, brow))
    out = {"y": _run(rows_idx, tasks, fmt, x.shape, fallback_map)}
    if running_mean is not None:
        for k, key in enumerate(("running_mean", "running_var")):
            if training:
                r = np.array([a for a, _ in new_stats[k]], dtype=np.float64)
                q = np.array([quantize_residual(b) for _, b in new_stats[k]], dtype=np.int16)
            else:
                src = running_mean if k == 0 else running_var
                r, q = np.asarray(src, dtype=np.float64), np.zeros(C, dtype=np.int16)
            out[key] = (r, q)
    return out


# ---- softmax -----------------------------------------------------------------------

class _SoftmaxRow:
    """Correctly rounded softmax or log_softmax of one row (picklable)."""

    def __init__(self, fmt_name, log):
        self.fmt_name, self.log = fmt_name, log

    def __call__(self, row):
        fmt = FORMATS[self.fmt_name]
        n = len(row)
        if any(math.isnan(v) for v in row):
            return [(math.nan, 0)] * n
        k_inf = sum(1 for v in row if v == math.inf)
        if k_inf or all(v == -math.inf for v in row):
            k = k_inf or n
            hit = [(v == math.inf) if k_inf else True for v in row]
            if self.log:
                if k == 1:
                    val = (0.0, 0.0)
                else:
                    val = self._round(lambda: -mpmath.log(k), lambda wp: mpmath.ldexp(mpmath.log(k), -(wp - 4)), fmt)
                miss = (-math.inf, 0)
            else:
                r, q = round_fraction(Fraction(1, k), fmt)
                val, miss = (r, q), (0.0, 0)
            return [(val[0], quantize_residual(val[1])) if h else miss for h in hit]
        M = max(v for v in row if v != -math.inf)
        kpos = row.index(M)
        out = [None] * n
        todo = []
        for j, v in enumerate(row):
            if v == -math.inf:
                out[j] = (-math.inf, 0) if self.log else (0.0, 0)
            else:
                todo.append(j)
        wp = fmt.p + START_GUARD + n.bit_length()
        while todo:
            with mpmath.workprec(wp):
                s = {j: mpmath.fsub(mpmath.mpf(row[j]), mpmath.mpf(M), exact=True) for j in range(n)
                     if row[j] != -math.inf}
                e = {j: mpmath.exp(sj) for j, sj in s.items()}
                rest = mpmath.fsum(ej for j, ej in e.items() if j != kpos)
                tol = (n + 32) * mpmath.ldexp(1, -wp)
                L = mpmath.log1p(rest)
                Z = 1 + rest
                left = []
                for j in todo:
                    if self.log:
                        v = s[j] - L
                        err = tol * (abs(L) + abs(v))
                    else:
                        v = e[j] / Z
                        err = tol * abs(v)
                    if v == 0:  # an exact 0: log_softmax of a row with one finite entry
                        out[j] = (0.0, 0)
                        continue
                    with mpmath.workprec(2 * wp):
                        r = _ziv_interval(v, err, fmt)
                    if r is None:
                        left.append(j)
                    else:
                        out[j] = (r[0], quantize_residual(r[1]))
            todo = left
            wp *= 2
            if wp > _MAX_PREC and todo:
                raise ArithmeticError(f"softmax reference: could not round {row!r} to {fmt.name}")
        return out

    @staticmethod
    def _round(value, err, fmt):
        wp = fmt.p + START_GUARD
        while True:
            with mpmath.workprec(wp):
                v = value()
                with mpmath.workprec(2 * wp):
                    r = _ziv_interval(v, err(wp), fmt)
            if r is not None:
                return r
            wp *= 2


def _softmax(x, fmt, axis, log, fallback_map):
    x = np.asarray(x)
    ax = axis % x.ndim
    perm = tuple(a for a in range(x.ndim) if a != ax) + (ax,)
    rows_idx = _rows(x, perm, x.shape[ax])
    xs = x.astype(np.float64).reshape(-1)
    rows = [[float(xs[i]) for i in idx] for idx in rows_idx]
    rounded = np.empty(x.size, dtype=np.float64)
    residual = np.zeros(x.size, dtype=np.int16)
    for idx, res in zip(rows_idx, fallback_map(_SoftmaxRow(fmt.name, log), rows)):
        for i, (r, q) in zip(idx, res):
            rounded[i] = r
            residual[i] = q
    return rounded.reshape(x.shape), residual.reshape(x.shape)


def softmax(x, fmt: Format, axis=-1, fallback_map=map):
    """Exact softmax along ``axis``, correctly rounded to ``fmt`` (edge rows: module docstring)."""
    return _softmax(x, fmt, axis, False, fallback_map)


def log_softmax(x, fmt: Format, axis=-1, fallback_map=map):
    """Exact log_softmax along ``axis``, correctly rounded to ``fmt``."""
    return _softmax(x, fmt, axis, True, fallback_map)
