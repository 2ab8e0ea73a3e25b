"""``dropout``: zero each element with probability ``p``, scale the survivors by ``1 / (1 - p)``."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from ._core import as_float_array, check_finite_param, in_float64
from .random import check_key, flat_draw

__all__ = ["dropout", "check_drop_probability"]


def check_drop_probability(p, op: str = "dropout") -> float:
    """``p`` as a Python float in [0, 1), else ``TypeError``/``ValueError``."""
    p = check_finite_param("p", p)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{op}: p is the probability of DROPPING an element and must be in [0, 1), got {p!r}; "
                         f"pass e.g. p=0.5 (p=0 disables dropout; to drop everything multiply by 0)")
    return p


def dropout(x, p, key, training: bool = True):
    """Inverted dropout: ``y = where(keep, x / (1 - p), 0)``, as ``x * (1 / (1 - p))``.

    * ``p`` is the DROP probability, a Python float in [0, 1).
    * The mask is ``keep = jax.random.bernoulli(key, jnp.float32(1 - p), x.shape)``
      (float32 uniforms compared with ``1 - p`` rounded to float32, whatever
      ``jax_enable_x64`` says): the same key gives the same mask, bit for bit,
      and each element is kept with probability ``1 - p`` (to float32 accuracy).
    * Survivors are ``x * scale`` with ``scale = 1 / (1 - p)`` computed by Python
      in float64 (correctly rounded), the product formed in float64 and rounded
      once to ``x``'s dtype (``_core.in_float64``).  For float16/bfloat16/float32
      that is ``x / (1 - p)`` correctly rounded except when it lies within about
      ``2**-50`` relative of a rounding boundary; it is exact when ``1 - p`` is a
      power of two (``p = 0.5`` doubles them).  A product, not a quotient, on
      purpose: XLA on CPU compiles a division by a scalar as a multiplication
      by its reciprocal anyway, so only the product is the same on every
      backend.  Dropped elements are ``+0``.
    * ``training=False`` or ``p == 0``: ``x`` unchanged (no key is used).

    Args:
      x: array of any shape, floating (integers are promoted).
      p: drop probability in [0, 1).
      key: one ``jax.random`` key (``jax.random.key(n)`` or a legacy uint32[2]);
        anything else (an int, a uint32[3]) is a ``TypeError``/``ValueError``.
      training: a Python bool.

    Returns:
      An array of ``x``'s shape and dtype.
    """
    p = check_drop_probability(p)
    if not isinstance(training, bool):
        raise TypeError(f"dropout: training must be a Python bool, got {training!r}; pass True or False")
    x = as_float_array(x)
    if not training or p == 0.0:
        return x
    if key is None:
        raise ValueError("dropout: key is None but training=True and p > 0; pass a key such as "
                         "jax.random.key(0) (or impl.random.split_key())")
    return _dropout(x, check_key(key, "dropout"), p)


@functools.partial(jax.jit, static_argnums=(2,))
def _dropout(x, key, p):
    keep_prob = 1.0 - p
    scale = 1.0 / keep_prob
    keep = flat_draw(jax.random.bernoulli, key, x.shape, p=jnp.float32(keep_prob))  # = bernoulli(key, p, x.shape)
    scaled = in_float64(lambda t: t * scale, x)
    return jnp.where(keep, scaled, jnp.zeros((), x.dtype))
