"""``brainstate.nn`` behind the functional contract (``pytest --impl adapters.brainstate_nn``).

``brainstate.nn``'s activation functions are its own wrappers (through
``brainunit``/``saiunit``, which accept unit-carrying quantities) around
``jax.nn`` formulas; ``mish`` is brainstate's own ``x * tanh(softplus(x))``.
They are called on plain JAX arrays, as a brainstate user does.

Peer defaults and how they are converted:

* ``brainstate.nn.gelu(x, approximate=True)``: the tanh form by default; the
  contract defaults to the exact form, so ``approximate`` is always passed.
* ``leaky_relu(x, negative_slope=1e-2)``, ``elu(x, alpha=1.0)``,
  ``celu(x, alpha=1.0)``: the contract's names and defaults; the parameters
  are weakly typed (rounded to the input's dtype), measured as is.
* ``soft_sign`` is the contract's ``softsign``.
"""

from __future__ import annotations

import brainstate
import brainstate.nn as bn

CONFORMANCE_PEER = f"brainstate.nn (brainstate {brainstate.__version__})"


def relu(x):
    return bn.relu(x)


def relu6(x):
    return bn.relu6(x)


def leaky_relu(x, negative_slope=0.01):
    return bn.leaky_relu(x, negative_slope=negative_slope)


def elu(x, alpha=1.0):
    return bn.elu(x, alpha=alpha)


def celu(x, alpha=1.0):
    return bn.celu(x, alpha=alpha)


def selu(x):
    return bn.selu(x)


def gelu(x, approximate=False):
    return bn.gelu(x, approximate=approximate)


def silu(x):
    return bn.silu(x)


def mish(x):
    return bn.mish(x)


def sigmoid(x):
    return bn.sigmoid(x)


def log_sigmoid(x):
    return bn.log_sigmoid(x)


def tanh(x):
    return bn.tanh(x)


def softplus(x):
    return bn.softplus(x)


def hard_sigmoid(x):
    return bn.hard_sigmoid(x)


def hard_swish(x):
    return bn.hard_swish(x)


def softsign(x):
    return bn.soft_sign(x)
