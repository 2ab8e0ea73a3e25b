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

Softmax and normalization:

* ``softmax``/``log_softmax``: ``brainstate.nn.softmax(x, axis)`` (jax.nn's).
* ``layer_norm``: ``brainstate.nn.LayerNorm(in_size=normalized_shape,
  reduction_axes=feature_axes=<those axes>, epsilon=eps)``, and ``rms_norm``:
  ``brainstate.nn.RMSNorm``; built per call, the contract's weight and bias set
  into their parameter states.  brainstate's default epsilon is 1e-6 (passed
  explicitly); ``use_fast_variance=True`` (its default, as in Flax: the
  variance is ``E[x^2] - E[x]^2``) is kept and measured; ``dtype`` is the
  input's (so the output keeps it).
* brainstate's BatchNorm, GroupNorm and InstanceNorm layers run inside its
  ``environ`` fitting context and take per-layer input sizes and feature
  axes; they are not adapted here: not provided.
"""

from __future__ import annotations

import brainstate
import brainstate.nn as bn
import jax.numpy as jnp

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


def softmax(x, axis=-1):
    return bn.softmax(x, axis=axis)


def log_softmax(x, axis=-1):
    return bn.log_softmax(x, axis=axis)


def _float(x):
    """``x`` as an array of a floating dtype (the contract promotes integers to JAX's default float)."""
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.result_type(float))


def _shape(normalized_shape):
    return (int(normalized_shape),) if isinstance(normalized_shape, int) else tuple(normalized_shape)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    x, ns = _float(x), _shape(normalized_shape)
    axes = tuple(range(-len(ns), 0))
    m = bn.LayerNorm(in_size=ns, reduction_axes=axes, feature_axes=axes, epsilon=eps, dtype=x.dtype,
                     use_scale=weight is not None, use_bias=bias is not None)
    params = {}
    if weight is not None:
        params["scale"] = jnp.asarray(weight)
    if bias is not None:
        params["bias"] = jnp.asarray(bias)
    if params:
        m.weight.value = params
    return m(x).astype(x.dtype)


def rms_norm(x, normalized_shape, weight=None, eps=1e-6):
    x, ns = _float(x), _shape(normalized_shape)
    axes = tuple(range(-len(ns), 0))
    m = bn.RMSNorm(in_size=ns, reduction_axes=axes, feature_axes=axes, epsilon=eps, dtype=x.dtype,
                   use_scale=weight is not None)
    if weight is not None:
        m.scale.value = {"scale": jnp.asarray(weight)}
    return m(x).astype(x.dtype)
