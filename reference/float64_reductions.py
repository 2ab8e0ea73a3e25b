r"""Independent float64 formulas for the reductions: the cross-check of ``reference.reductions``.

They share no code and no method with the exact references (no integers, no
mpmath): the textbook definitions in numpy float64, with ``math.fsum`` (a
correctly rounded sum) for every group sum.  Each function returns float64
values and ``bound(...)`` companions give the largest difference from the
exact result that the formula can make; ``tests/test_reductions.py`` checks
the stored exact results against them (``u = 2**-53``):

* normalization, ``y = (x - mean) / sqrt(var + eps)``: the mean is one fsum and
  one division (``|err| <= 2u|mean|``, the same shift for every element, which
  only enters the variance quadratically), each deviation one more rounding
  (``u|d|``), the variance three roundings plus the squares' (``<= 6u``
  relative), the quotient two more.  So
  ``|y64 - y| <= 2u |mean| / s + 8u |y|`` with ``s = sqrt(var + eps)``; the
  bound used is ``u (4 |mean| / s + 16 (1 + |y|))``.  With ``weight`` and
  ``bias``: ``|w| * that + 2u (|y w| + |t|)``.
* rms_norm: ``x / sqrt(fsum(x**2)/n + eps)``, five roundings: ``<= 16u |y|``.
* running statistics: ``(1 - m) running + m batch`` in float64, the mean as
  above: ``<= 8u (|running| + |batch|)``.
* softmax: ``exp(x - max) / sum`` (``scipy.special.softmax``'s method):
  ``x - max`` rounds by ``u|x - max|``, which exp turns into a relative error
  of ``u |x - max|``; exp ``<= 1`` ulp, the fsum and the division one rounding
  each: ``|p64 - p| <= u (8 + |x - max|) p``.
* log_softmax: ``(x - max) - log(fsum(exp(x - max)))``: the sum ``>= 1``, so
  its relative error ``(2 + |x - max|) u`` is an absolute error in the log; the
  log and the subtraction round once each: ``|l64 - l| <= u (8 + |x - max| +
  2 |l|)`` (absolute: this formula, like every library's, loses the relative
  accuracy of the largest logit's value).

Rows with NaN or infinite entries are outside these formulas (their values are
definitions, checked directly).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["FORMULAS", "U"]

U = 2.0**-53


def _groups(x, perm, row_len):
    idx = np.arange(x.size).reshape(x.shape).transpose(perm).reshape(-1, row_len)
    return idx


def _norm_rows(x, idx, eps, w, b):
    xs = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.empty(xs.size)
    bound = np.empty(xs.size)
    wf = None if w is None else np.broadcast_to(np.asarray(w, np.float64), x.shape).reshape(-1)
    bf = None if b is None else np.broadcast_to(np.asarray(b, np.float64), x.shape).reshape(-1)
    for row in idx:
        v = xs[row]
        n = v.size
        mean = math.fsum(v) / n
        d = v - mean
        var = math.fsum(d * d) / n
        s = math.sqrt(var + eps)
        yr = d / s if s > 0 else np.zeros_like(d)
        br = U * (4 * abs(mean) / s + 16 * (1 + np.abs(yr))) if s > 0 else np.zeros_like(d)
        if wf is not None or bf is not None:
            ww = wf[row] if wf is not None else 1.0
            bb = bf[row] if bf is not None else 0.0
            t = yr * ww + bb
            br = np.abs(ww) * br + 2 * U * (np.abs(yr * ww) + np.abs(t))
            yr = t
        y[row] = yr
        bound[row] = br
    return y.reshape(x.shape), bound.reshape(x.shape)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """``(y, bound)`` over the trailing ``normalized_shape`` axes."""
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    x = np.asarray(x)
    return _norm_rows(x, _groups(x, tuple(range(x.ndim)), math.prod(ns)), eps, weight, bias)


def instance_norm(x, weight=None, bias=None, eps=1e-5):
    x = np.asarray(x)
    perm = (0, x.ndim - 1) + tuple(range(1, x.ndim - 1))
    return _norm_rows(x, _groups(x, perm, math.prod(x.shape[1:-1])), eps, weight, bias)


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    x = np.asarray(x)
    N, C, G = x.shape[0], x.shape[-1], num_groups
    P = math.prod(x.shape[1:-1])
    xv = x.reshape(N, P, G, C // G)
    w = None if weight is None else np.asarray(weight).reshape(G, C // G)
    b = None if bias is None else np.asarray(bias).reshape(G, C // G)
    y, bound = _norm_rows(xv, _groups(xv, (0, 2, 1, 3), P * (C // G)), eps, w, b)
    return y.reshape(x.shape), bound.reshape(x.shape)


def rms_norm(x, normalized_shape, weight=None, eps=1e-6):
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    x = np.asarray(x, dtype=np.float64)
    flat = x.reshape(-1, math.prod(ns))
    ms = np.array([math.fsum(r * r) / r.size for r in flat])
    y = (flat / np.sqrt(ms + eps)[:, None]).reshape(x.shape)
    if weight is not None:
        y = y * np.asarray(weight, np.float64)
    return y, 16 * U * np.abs(y)


def batch_norm(x, running_mean=None, running_var=None, weight=None, bias=None, training=False, momentum=0.1,
               eps=1e-5):
    """``{"y": (y, bound), "running_mean": (..., bound), "running_var": (..., bound)}``."""
    x = np.asarray(x)
    C = x.shape[-1]
    if not training:
        rm = np.asarray(running_mean, np.float64)
        rv = np.asarray(running_var, np.float64)
        s = np.sqrt(rv + eps)
        y = (x.astype(np.float64) - rm) / s
        bound = 8 * U * np.abs(y)
        if weight is not None or bias is not None:
            w = np.ones(C) if weight is None else np.asarray(weight, np.float64)
            b = np.zeros(C) if bias is None else np.asarray(bias, np.float64)
            t = y * w + b
            bound = np.abs(w) * bound + 2 * U * (np.abs(y * w) + np.abs(t))
            y = t
        return {"y": (y, bound), "running_mean": (rm, 0 * rm), "running_var": (rv, 0 * rv)}
    idx = _groups(x, (x.ndim - 1,) + tuple(range(x.ndim - 1)), x.size // C)
    out = {"y": _norm_rows(x, idx, eps, weight, bias)}
    if running_mean is not None:
        xs = x.astype(np.float64).reshape(-1)
        n = idx.shape[1]
        means = np.array([math.fsum(xs[r]) / n for r in idx])
        unb = np.array([math.fsum((xs[r] - m) ** 2) / (n - 1) for r, m in zip(idx, means)])
        m = float(momentum)
        rm = np.asarray(running_mean, np.float64)
        rv = np.asarray(running_var, np.float64)
        out["running_mean"] = ((1 - m) * rm + m * means, 8 * U * (np.abs(rm) + np.abs(means)))
        out["running_var"] = ((1 - m) * rv + m * unb, 8 * U * (np.abs(rv) + unb))
    return out


def _softmax(x, axis, log):
    x = np.asarray(x, dtype=np.float64)
    xm = np.moveaxis(x, axis, -1)
    with np.errstate(all="ignore"):  # rows with NaN or inf are outside the formula
        s = xm - xm.max(axis=-1, keepdims=True)
        e = np.exp(s)
        z = np.array([math.fsum(r) for r in e.reshape(-1, e.shape[-1])]).reshape(e.shape[:-1] + (1,))
        if log:
            y = s - np.log(z)
            bound = U * (8 + np.abs(s) + 2 * np.abs(y))
        else:
            y = e / z
            bound = U * (8 + np.abs(s)) * y
    return np.moveaxis(y, -1, axis), np.moveaxis(bound, -1, axis)


def softmax(x, axis=-1):
    return _softmax(x, axis, False)


def log_softmax(x, axis=-1):
    return _softmax(x, axis, True)


FORMULAS = {f.__name__: f for f in [softmax, log_softmax, layer_norm, group_norm, instance_norm, rms_norm,
                                      batch_norm]}
