"""``flax.nnx`` behind the functional contract (``pytest --impl adapters.flax_nnx``).

Activations: ``flax.nnx`` re-exports ``jax.nn``'s functions (``nnx.gelu is
jax.nn.gelu``, checked by ``tests/test_adapters.py``) and ``jnp.tanh``, so
its results are those of ``adapters.jax_nn`` by construction; they are
called here through the ``nnx`` names a Flax user writes.  ``nnx`` has no
``mish``: not provided.

Peer defaults and how they are converted:

* ``nnx.gelu(x, approximate=True)``: the tanh form by default; the contract
  defaults to the exact form, so ``approximate`` is always passed explicitly.
* ``nnx.leaky_relu(x, negative_slope=0.01)``, ``nnx.elu(x, alpha=1.0)``,
  ``nnx.celu(x, alpha=1.0)``: the contract's names and defaults; the
  parameters are weakly typed (rounded to the input's dtype), measured as is.
* ``nnx.soft_sign`` is the contract's ``softsign``.
"""

from __future__ import annotations

import flax
from flax import nnx

CONFORMANCE_PEER = f"flax.nnx (flax {flax.__version__})"


def relu(x):
    return nnx.relu(x)


def relu6(x):
    return nnx.relu6(x)


def leaky_relu(x, negative_slope=0.01):
    return nnx.leaky_relu(x, negative_slope=negative_slope)


def elu(x, alpha=1.0):
    return nnx.elu(x, alpha=alpha)


def celu(x, alpha=1.0):
    return nnx.celu(x, alpha=alpha)


def selu(x):
    return nnx.selu(x)


def gelu(x, approximate=False):
    return nnx.gelu(x, approximate=approximate)


def silu(x):
    return nnx.silu(x)


def sigmoid(x):
    return nnx.sigmoid(x)


def log_sigmoid(x):
    return nnx.log_sigmoid(x)


def tanh(x):
    return nnx.tanh(x)


def softplus(x):
    return nnx.softplus(x)


def hard_sigmoid(x):
    return nnx.hard_sigmoid(x)


def hard_swish(x):
    return nnx.hard_swish(x)


def softsign(x):
    return nnx.soft_sign(x)
