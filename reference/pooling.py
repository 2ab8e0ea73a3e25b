"""Exact references of ``max_pool2d`` and ``avg_pool2d`` (NHWC).

* ``max_pool2d``: the largest input cell under each window (padding cells are
  not candidates); exact, so ``residual`` is 0.
* ``avg_pool2d``: the exact sum of the input cells under each window divided
  by their number (padding cells are not counted), rounded once
  (``_exact.round_quotient``).

Windows use the padding rules of ``reference.linear.padding_amounts``.
"""

from __future__ import annotations

import numpy as np

from . import _exact as E
from ._convert import FORMATS
from .linear import patches

__all__ = ["max_pool2d", "avg_pool2d"]


def _geometry(kernel_size, strides):
    k = tuple(kernel_size) if isinstance(kernel_size, (tuple, list)) else (kernel_size, kernel_size)
    s = k if strides is None else (tuple(strides) if isinstance(strides, (tuple, list)) else (strides, strides))
    return k, s


def max_pool2d(x, kernel_size, strides=None, padding="VALID"):
    """``{"rounded", "residual"}``: the window maxima (exact) and zero residuals."""
    k, s = _geometry(kernel_size, strides)
    p, _ = patches(x, k, s, (1, 1), padding, fill=-np.inf)
    out = p.max(axis=(3, 4))
    return {"rounded": out, "residual": np.zeros(out.shape, dtype=np.int16)}


def avg_pool2d(x, kernel_size, strides=None, padding="VALID", fmt="float32"):
    """``{"rounded", "residual", "count"}``: the exact window means rounded to ``fmt``."""
    k, s = _geometry(kernel_size, strides)
    p, inside = patches(x, k, s, (1, 1), padding)
    n, oh, ow, kh, kw, c = p.shape
    d = E.to_dyadic(p)
    sums = E.Dyadic(d.ints.sum(axis=(3, 4)), d.base)
    count = inside.sum(axis=(2, 3))[None, :, :, None]
    rounded, residual = E.round_quotient(sums, count, FORMATS[fmt] if isinstance(fmt, str) else fmt)
    return {"rounded": rounded, "residual": residual, "count": np.broadcast_to(count, rounded.shape)}
