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
import numpy as np

__all__ = ["seed", "split_key", "randn", "rand", "flat_draw", "check_key", "staging", "DEFAULT_SEED"]

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


def staging() -> bool:
    """True while JAX traces a function to compile it (``jax.jit``, ``lax.scan``, ``lax.cond``,
    ``jax.checkpoint``, ``jax.eval_shape``): a key split off the global key now would be a
    constant of the compiled function, the same on every call.  (Under ``jax.grad`` or
    ``jax.vmap`` alone the Python code runs on every call, and draws afresh.)"""
    return isinstance(jnp.zeros((), jnp.bool_), jax.core.Tracer)


def check_key(key, op: str):
    """``key`` if it is one ``jax.random`` key: a typed key of shape ``()`` (``jax.random.key(n)``)
    or a legacy ``uint32[2]`` (``jax.random.PRNGKey(n)``); else ``TypeError``/``ValueError``
    naming the value and the fix."""
    fix = "pass one such as jax.random.key(0), or split one: k1, k2 = jax.random.split(key)"
    dtype, shape = getattr(key, "dtype", None), getattr(key, "shape", None)
    if dtype is None or shape is None:
        raise TypeError(f"{op}: key must be a jax.random key, got {key!r} ({type(key).__name__}); {fix}")
    shape = tuple(shape)
    if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if shape != ():
            raise ValueError(f"{op}: key must be a single jax.random key, got an array of {shape} keys; "
                             f"pass one of them (keys[0]), or {fix}")
        return key
    if np.dtype(dtype) != np.uint32:
        raise TypeError(f"{op}: key must be a jax.random key, got an array of dtype {np.dtype(dtype).name} and "
                        f"shape {shape}; {fix}")
    if shape != (2,):
        raise ValueError(f"{op}: a legacy uint32 key has shape (2,), got shape {shape}; {fix}")
    return key


def _shape(shape, op):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    try:
        shape = tuple(operator.index(s) for s in shape)
    except TypeError:
        raise TypeError(f"{op}: shape must be ints, got {shape!r}; call e.g. {op}(4, 3) or {op}((4, 3))") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"{op}: shape must be sizes >= 0, got {shape}; call e.g. {op}(4, 3) or {op}((4, 3))")
    return shape


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
    return flat_draw(jax.random.normal, split_key(), _shape(shape, "randn"), dtype=dtype or jnp.float32)


def rand(*shape, dtype=None):
    """Uniform samples in [0, 1) of ``shape``, float32 by default."""
    return flat_draw(jax.random.uniform, split_key(), _shape(shape, "rand"), dtype=dtype or jnp.float32)
