"""Seeded randomness with one global key, for scripts and notebooks.

``seed(n)`` sets the global key to ``jax.random.key(n)``; every draw splits it
(``key, sub = jax.random.split(key)``), keeps ``key`` for the next draw and
uses ``sub``, so a script that calls ``seed(0)`` and then draws in the same
order gets the same numbers on every run::

    >>> from impl import random
    >>> random.seed(0)
    >>> a = random.randn(2, 3)
    >>> random.seed(0)
    >>> bool((random.randn(2, 3) == a).all())
    True

At import the global key is ``jax.random.key(0)`` (not a time-based seed), so
an unseeded script is reproducible too.

The global key is plain Python state: it is not thread-safe, and inside
``jax.jit``/``jax.grad``/``jax.vmap`` it is read and advanced once, at trace
time, so a compiled function sees the same "random" numbers on every call.
Layers therefore use it only outside transformations (``impl.nn.Dropout``
refuses it under a transformation and asks for an explicit key).

The JAX-idiomatic alternative, which works everywhere, is to pass keys
explicitly: ``key = jax.random.key(0)``, ``k1, k2 = jax.random.split(key)``,
then ``Linear(4, 2, key=k1)``, ``dropout(x, 0.5, k2)`` or ``model(x, key=k2)``.
"""

from __future__ import annotations

import math
import operator

import jax
import jax.numpy as jnp

__all__ = ["seed", "split_key", "randn", "rand", "flat_draw", "DEFAULT_SEED"]

DEFAULT_SEED = 0
_STATE = {"key": None}


def _new_key(n):
    with jax.ensure_compile_time_eval():
        return jax.random.key(n)


def seed(n: int) -> None:
    """Set the global key to ``jax.random.key(n)`` (``n`` a Python int in [0, 2**63))."""
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"seed must be a Python int, got {n!r} ({type(n).__name__}); pass e.g. seed(0)") from None
    if not 0 <= n < 2**63:
        raise ValueError(f"seed must be in [0, 2**63), got {n}; pass a non-negative int such as 0")
    _STATE["key"] = _new_key(n)


def split_key(num: int | None = None):
    """A fresh key (or ``num`` fresh keys, stacked) split off the global key, which advances."""
    with jax.ensure_compile_time_eval():
        if _STATE["key"] is None:
            _STATE["key"] = jax.random.key(DEFAULT_SEED)
        if num is None:
            _STATE["key"], sub = jax.random.split(_STATE["key"])
            return sub
        num = operator.index(num)
        if num < 1:
            raise ValueError(f"num must be >= 1, got {num}; pass the number of keys wanted, or None for one key")
        keys = jax.random.split(_STATE["key"], num + 1)
        _STATE["key"] = keys[0]
        return keys[1:]


def _shape(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    try:
        return tuple(operator.index(s) for s in shape)
    except TypeError:
        raise TypeError(f"shape must be ints, got {shape!r}; call e.g. randn(4, 3) or randn((4, 3))") from None


def flat_draw(sampler, key, shape, **kwargs):
    """``sampler(key, shape=shape, **kwargs)``, drawn as a flat vector and reshaped.

    The values are the same bit for bit (JAX's threefry bits depend on each
    element's linear index only), but XLA on CPU compiles the flat draw many
    times faster than a multi-dimensional one (6 s against 0.3 s for a
    ``(3, 3, 4, 8)`` uniform, measured with jax 0.10.2).
    """
    shape = tuple(shape)
    return sampler(key, shape=(math.prod(shape),), **kwargs).reshape(shape)


def randn(*shape, dtype=None):
    """Standard normal samples of ``shape`` (``randn(4, 3)`` or ``randn((4, 3))``), float32 by default."""
    return flat_draw(jax.random.normal, split_key(), _shape(shape), dtype=dtype or jnp.float32)


def rand(*shape, dtype=None):
    """Uniform samples in [0, 1) of ``shape``, float32 by default."""
    return flat_draw(jax.random.uniform, split_key(), _shape(shape), dtype=dtype or jnp.float32)
