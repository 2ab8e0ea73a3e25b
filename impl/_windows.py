"""Window geometry shared by convolution and pooling: sizes, strides, padding.

Layout: inputs are NHWC (``(N, H, W, C)``, or ``(H, W, C)`` for one image).

Padding, per spatial axis with input size ``n``, effective window size
``k_eff = (k - 1) * dilation + 1`` and stride ``s``:

* ``'VALID'``: no padding; ``out = (n - k_eff) // s + 1`` (an error if
  ``k_eff > n``).
* ``'SAME'``: ``out = ceil(n / s)``; the total padding
  ``max((out - 1) * s + k_eff - n, 0)`` is split with the smaller half first
  (``lo = total // 2``, ``hi = total - lo``): the TensorFlow/XLA rule, which
  ``lax.conv_general_dilated(..., padding='SAME')`` also uses.
* an int ``p`` (both sides of both axes), a pair ``(ph, pw)``, or a pair of
  pairs ``((top, bottom), (left, right))``: explicit non-negative padding;
  ``out = (n + lo + hi - k_eff) // s + 1``.

The strings are case-insensitive.  All checks run on static shapes, at trace
time, and raise ``ValueError``/``TypeError`` naming the parameter.
"""

from __future__ import annotations

import operator

__all__ = ["pair", "normalize_padding", "check_pool_padding", "resolve_padding", "spatial_input"]


def pair(name: str, value, *, op: str, minimum: int = 1) -> tuple[int, int]:
    """``value`` (an int or a pair of ints, each >= ``minimum``) as a pair of Python ints."""
    items = value if isinstance(value, (tuple, list)) else (value, value)
    try:
        if isinstance(value, bool) or any(isinstance(v, bool) for v in items):
            raise TypeError
        out = tuple(operator.index(v) for v in items)
    except TypeError:
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}; "
                        f"pass e.g. {name}=2 or {name}=(2, 2)") from None
    if len(out) != 2:
        raise ValueError(f"{op}: {name} must be an int or a pair of ints (height, width), got {value!r} "
                         f"({len(out)} values); pass e.g. {name}=(2, 2)")
    if any(v < minimum for v in out):
        raise ValueError(f"{op}: {name} must be >= {minimum} along both axes, got {value!r}; "
                         f"pass e.g. {name}={max(minimum, 1)}")
    return out


def _explicit(padding, op):
    """Explicit padding as ((top, bottom), (left, right)), or None for a string."""
    if isinstance(padding, str):
        return None
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(isinstance(p, (tuple, list)) for p in padding):
        pads = tuple(pair("padding", p, op=op, minimum=0) for p in padding)
    else:
        ph, pw = pair("padding", padding, op=op, minimum=0)
        pads = ((ph, ph), (pw, pw))
    return pads


def normalize_padding(padding, op: str):
    """``'SAME'``, ``'VALID'`` or ``((top, bottom), (left, right))`` (hashable, for jit)."""
    if isinstance(padding, str):
        p = padding.upper()
        if p not in ("SAME", "VALID"):
            raise ValueError(f"{op}: padding must be 'SAME', 'VALID', an int, (ph, pw) or "
                             f"((top, bottom), (left, right)), got {padding!r}; pass e.g. padding='SAME'")
        return p
    try:
        return _explicit(padding, op)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{e} (padding may also be 'SAME' or 'VALID')") from None


def check_pool_padding(padding, kernel, op: str):
    """Explicit pooling padding must be smaller than the window on every side, so
    every window covers at least one input cell ('SAME' always does)."""
    if isinstance(padding, str):
        return
    for axis, (lo, hi), k in zip(("height", "width"), padding, kernel):
        if lo >= k or hi >= k:
            raise ValueError(f"{op}: padding ({lo}, {hi}) along {axis} must be smaller than the kernel size {k} "
                             f"on each side, so that every window covers an input cell; use padding='SAME' or "
                             f"less padding")


def resolve_padding(padding, in_hw, kernel, strides, dilation, op: str):
    """``(pads, out_hw)`` for a normalized ``padding`` (see module docstring)."""
    pads, out = [], []
    for axis, n, k, s, d in zip(("height", "width"), in_hw, kernel, strides, dilation):
        k_eff = (k - 1) * d + 1
        if padding == "VALID":
            lo = hi = 0
        elif padding == "SAME":
            o = -(-n // s)
            total = max((o - 1) * s + k_eff - n, 0)
            lo, hi = total // 2, total - total // 2
        else:
            lo, hi = padding[0 if axis == "height" else 1]
        if n + lo + hi < k_eff:
            what = f"kernel size {k}" + (f" with dilation {d} (effective size {k_eff})" if d != 1 else "")
            raise ValueError(f"{op}: the {what} is larger than the padded input along {axis} "
                             f"({n} + padding {lo} + {hi} = {n + lo + hi}); use padding='SAME', a smaller "
                             f"kernel or dilation, or a larger input")
        pads.append((lo, hi))
        out.append((n + lo + hi - k_eff) // s + 1)
    return tuple(pads), tuple(out)


def spatial_input(x, op: str):
    """``x`` as 4-D NHWC and whether a batch axis was added (3-D ``(H, W, C)`` input)."""
    if x.ndim == 4:
        return x, False
    if x.ndim == 3:
        return x[None], True
    raise ValueError(f"{op}: x must be NHWC, (N, H, W, C) or (H, W, C) for one image, got shape {tuple(x.shape)} "
                     f"({x.ndim}-D); reshape it, e.g. x.reshape(N, H, W, C), or move channels last with "
                     f"jnp.moveaxis(x, 1, -1) for NCHW data")
