"""``flatten``: merge trailing axes."""

from __future__ import annotations

import math
import operator

import jax.numpy as jnp

__all__ = ["flatten"]


def flatten(x, start_axis: int = 1):
    """Merge the axes ``start_axis, ..., -1`` of ``x`` into one (row-major, like ``reshape``).

    ``flatten(x)`` of an ``(N, H, W, C)`` batch is ``(N, H * W * C)``; negative
    ``start_axis`` counts from the end; ``start_axis = 0`` flattens everything.
    Values and dtype are unchanged; an empty batch stays one (``(0, 3, 4)`` gives ``(0, 12)``).

    >>> import jax.numpy as jnp
    >>> flatten(jnp.zeros((4, 8, 8, 128))).shape
    (4, 8192)
    """
    x = jnp.asarray(x)
    try:
        if isinstance(start_axis, bool):
            raise TypeError
        start = operator.index(start_axis)
    except TypeError:
        raise TypeError(f"flatten: start_axis must be an int, got {start_axis!r}; pass e.g. start_axis=1") from None
    nd = x.ndim
    if not -nd <= start < nd:
        raise ValueError(f"flatten: start_axis must be in [-{nd}, {nd - 1}] for x of shape {x.shape}, "
                         f"got {start_axis}; pass an axis of x (1 keeps the batch axis)")
    start %= nd
    # the merged size written out: -1 cannot be inferred when another axis is 0 (a batch of 0 rows)
    return jnp.reshape(x, x.shape[:start] + (math.prod(x.shape[start:]),))
