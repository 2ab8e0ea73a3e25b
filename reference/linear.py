"""Exact references of ``linear`` and ``conv2d``: exact dot products, rounded once.

Inputs are numpy arrays of any float dtype; their values are used exactly
(``_exact.to_dyadic``).  Each output is the exact value of

* ``linear``: ``b[o] + sum_i x[..., i] * w[i, o]`` (``w`` is ``(in, out)``),
* ``conv2d``: ``b[o] + sum_{p, q, c} xpad[n, i*sh + p*dh, j*sw + q*dw, g*Cg + c] * w[p, q, c, o]``
  (NHWC input, HWIO kernel, cross-correlation, ``g = o // (C_out / groups)``,
  ``Cg = C_in / groups``, ``xpad`` the zero-padded input),

computed with Python integers and rounded once to the target format by
``_convert.round_to_format``.  Alongside, ``abs_sum`` is ``sum |w x| + |b|``
(rounded to float64), the scale of the a-priori error bound of a
floating-point evaluation, and ``n_terms`` the number of products per output.

Padding (written here from the definitions, independently of ``impl``), per
spatial axis with size ``n``, stride ``s``, effective kernel ``k_eff = (k - 1) d + 1``:
``'VALID'``: none; ``'SAME'``: ``out = ceil(n / s)``, total
``max((out - 1) s + k_eff - n, 0)``, the smaller half (``total // 2``) before;
explicit ``((top, bottom), (left, right))`` as given.
"""

from __future__ import annotations

import numpy as np

from . import _exact as E
from ._convert import FORMATS, Format

__all__ = ["linear", "conv2d", "padding_amounts", "patches"]


def _fmt(fmt) -> Format:
    return FORMATS[fmt] if isinstance(fmt, str) else fmt


def _finish(acc: E.Dyadic, acc_abs: E.Dyadic, bias, fmt, n_terms):
    if bias is not None:
        b = E.to_dyadic(bias)
        acc = E.add(acc, b)
        acc_abs = E.add(acc_abs, E.absolute(b))
    rounded, residual = E.round_dyadic(acc, _fmt(fmt))
    return {"rounded": rounded, "residual": residual, "abs_sum": E.to_float(acc_abs), "n_terms": n_terms}


def linear(x, weight, bias=None, fmt="float32"):
    """Exact ``x @ weight + bias`` rounded to ``fmt``: a dict with ``rounded``,
    ``residual`` (int16, units of 2**-14 ulp), ``abs_sum`` and ``n_terms``."""
    x = np.asarray(x)
    weight = np.asarray(weight)
    k = weight.shape[0]
    a = E.to_dyadic(x.reshape(-1, k))
    w = E.to_dyadic(weight)
    acc = E.exact_matmul(a, w)
    acc_abs = E.exact_matmul(E.absolute(a), E.absolute(w))
    out = _finish(acc, acc_abs, bias, fmt, k)
    shape = x.shape[:-1] + (weight.shape[1],)
    return {key: (v.reshape(shape) if isinstance(v, np.ndarray) else v) for key, v in out.items()}


def padding_amounts(padding, size, k_eff, stride):
    """``(lo, hi, out)`` along one axis (see module docstring)."""
    if isinstance(padding, str) and padding.upper() == "VALID":
        lo = hi = 0
    elif isinstance(padding, str) and padding.upper() == "SAME":
        out = -(-size // stride)
        total = max((out - 1) * stride + k_eff - size, 0)
        lo = total // 2
        hi = total - lo
    else:
        lo, hi = padding
    out = (size + lo + hi - k_eff) // stride + 1
    if out < 1:
        raise ValueError(f"window of size {k_eff} does not fit the padded input {size} + {lo} + {hi}")
    return lo, hi, out


def _axis_padding(padding, axis):
    if isinstance(padding, str):
        return padding
    return padding[axis]


def patches(x, kernel, stride, dilation, padding, fill=0.0):
    """``(N, OH, OW, kh, kw, C)``: the input cells under each window tap (``fill`` in the padding),
    and the boolean mask of the cells that are inside the input."""
    x = np.asarray(x, dtype=np.float64)
    n, h, w, c = x.shape
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    th, bh, oh = padding_amounts(_axis_padding(padding, 0), h, (kh - 1) * dh + 1, sh)
    lw, rw, ow = padding_amounts(_axis_padding(padding, 1), w, (kw - 1) * dw + 1, sw)
    rows = np.arange(oh)[:, None] * sh + np.arange(kh)[None, :] * dh - th  # (oh, kh) input row
    cols = np.arange(ow)[:, None] * sw + np.arange(kw)[None, :] * dw - lw  # (ow, kw) input column
    inside = (((rows >= 0) & (rows < h))[:, None, :, None]
              & ((cols >= 0) & (cols < w))[None, :, None, :])  # (oh, ow, kh, kw)
    r = np.clip(rows, 0, h - 1)[:, None, :, None]
    q = np.clip(cols, 0, w - 1)[None, :, None, :]
    p = x[:, r, q, :]  # (n, oh, ow, kh, kw, c)
    p = np.where(inside[None, ..., None], p, fill)
    return p, inside


def conv2d(x, weight, bias=None, fmt="float32", stride=(1, 1), padding="SAME", dilation=(1, 1), groups=1):
    """Exact 2-D cross-correlation (module docstring) rounded to ``fmt``; same dict as ``linear``."""
    x = np.asarray(x)
    weight = np.asarray(weight)
    kh, kw, cg, c_out = weight.shape
    og = c_out // groups
    p, _ = patches(x, (kh, kw), stride, dilation, padding)
    n, oh, ow = p.shape[:3]
    acc_parts, abs_parts = [], []
    for g in range(groups):
        a = E.to_dyadic(p[..., g * cg:(g + 1) * cg].reshape(n * oh * ow, kh * kw * cg))
        w = E.to_dyadic(weight[..., g * og:(g + 1) * og].reshape(kh * kw * cg, og))
        acc_parts.append(E.exact_matmul(a, w))
        abs_parts.append(E.exact_matmul(E.absolute(a), E.absolute(w)))
    base = min(d.base for d in acc_parts)
    acc = E.Dyadic(np.concatenate([d.rebase(base).ints for d in acc_parts], axis=1), base)
    base = min(d.base for d in abs_parts)
    acc_abs = E.Dyadic(np.concatenate([d.rebase(base).ints for d in abs_parts], axis=1), base)
    out = _finish(acc, acc_abs, bias, fmt, kh * kw * cg)
    shape = (n, oh, ow, c_out)
    return {key: (v.reshape(shape) if isinstance(v, np.ndarray) else v) for key, v in out.items()}
