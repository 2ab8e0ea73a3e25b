"""``equinox.nn`` behind the functional contract (``pytest --impl adapters.equinox_nn``).

Equinox defines no activation functions of its own: an Equinox model calls
``jax.nn`` (judged by ``adapters.jax_nn``).  This adapter provides only what
``equinox.nn`` itself defines; every other op is "not provided".

* ``leaky_relu``: ``eqx.nn.PReLU(init_alpha=negative_slope)``, a layer whose
  slope is a parameter array.  Peer defaults: ``init_alpha=0.25`` (the
  contract's default slope is 0.01, passed explicitly); the slope array is
  created with JAX's default float dtype and, under Equinox's "standard"
  promotion, a float32 slope would turn a bfloat16 or float16 input into a
  float32 output.  As in a model cast to the input's dtype, the slope array
  is cast to the input's dtype (rounded to it), so the output keeps the
  input's dtype.  PReLU selects with ``x >= 0`` (``-0`` passes through as
  ``-0``).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

CONFORMANCE_PEER = f"equinox.nn (equinox {eqx.__version__})"


def leaky_relu(x, negative_slope=0.01):
    x = jnp.asarray(x)
    layer = eqx.nn.PReLU(init_alpha=negative_slope)
    layer = eqx.tree_at(lambda m: m.negative_slope, layer, layer.negative_slope.astype(x.dtype))
    return layer(x)
