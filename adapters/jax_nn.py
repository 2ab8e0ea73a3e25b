"""``jax.nn`` behind the functional contract (``pytest --impl adapters.jax_nn``).

Every op is the ``jax.nn`` function of the same meaning, called on the input
array as it is (no casts): what a JAX user gets.  ``tanh`` is ``jnp.tanh``
(``jax.nn`` has none).

Peer defaults and how they are converted:

* ``jax.nn.gelu(x, approximate=True)``: jax.nn defaults to the tanh form; the
  contract defaults to the exact (erf) form, so ``approximate`` is always
  passed explicitly.
* ``jax.nn.leaky_relu(x, negative_slope=0.01)``, ``jax.nn.elu(x, alpha=1.0)``,
  ``jax.nn.celu(x, alpha=1.0)``: same names and defaults as the contract.  The
  Python-float parameters are weakly typed in JAX, so they are rounded to the
  input's dtype before use (the contract uses their binary64 value); that is
  the peer's behaviour and is measured, not converted.
* ``jax.nn.hard_sigmoid = relu6(x + 3) / 6`` and ``jax.nn.hard_swish = x *
  hard_sigmoid(x)``: the contract's definitions.
* ``jax.nn.soft_sign`` is the contract's ``softsign``.
* ``softmax``/``log_softmax``: ``jax.nn.softmax(x, axis)``, ``jax.nn.log_softmax(x, axis)``.
* ``layer_norm``: ``jax.nn.standardize(x, axis=<the trailing len(normalized_shape)
  axes>, epsilon=eps)`` (jax.nn's default epsilon is 1e-5, the contract's; passed
  explicitly), then ``* weight + bias``.  ``standardize`` takes the variance as
  ``E[x^2] - E[x]^2`` in the input's dtype: the peer's formula, measured as is.
  With float32 parameters and a narrower input the affine step promotes to
  float32; the result is rounded back to the input's dtype (the contract's
  output dtype).  jax.nn has no batch, group, instance or RMS normalization:
  not provided.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

CONFORMANCE_PEER = f"jax.nn (jax {jax.__version__})"


def relu(x):
    return jax.nn.relu(x)


def relu6(x):
    return jax.nn.relu6(x)


def leaky_relu(x, negative_slope=0.01):
    return jax.nn.leaky_relu(x, negative_slope=negative_slope)


def elu(x, alpha=1.0):
    return jax.nn.elu(x, alpha=alpha)


def celu(x, alpha=1.0):
    return jax.nn.celu(x, alpha=alpha)


def selu(x):
    return jax.nn.selu(x)


def gelu(x, approximate=False):
    return jax.nn.gelu(x, approximate=approximate)


def silu(x):
    return jax.nn.silu(x)


def mish(x):
    return jax.nn.mish(x)


def sigmoid(x):
    return jax.nn.sigmoid(x)


def log_sigmoid(x):
    return jax.nn.log_sigmoid(x)


def tanh(x):
    return jnp.tanh(x)


def softplus(x):
    return jax.nn.softplus(x)


def hard_sigmoid(x):
    return jax.nn.hard_sigmoid(x)


def hard_swish(x):
    return jax.nn.hard_swish(x)


def softsign(x):
    return jax.nn.soft_sign(x)


def softmax(x, axis=-1):
    return jax.nn.softmax(x, axis=axis)


def log_softmax(x, axis=-1):
    return jax.nn.log_softmax(x, axis=axis)


def _float(x):
    """``x`` as an array of a floating dtype (the contract promotes integers to JAX's default float)."""
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.result_type(float))


def _shape(normalized_shape):
    return (int(normalized_shape),) if isinstance(normalized_shape, int) else tuple(normalized_shape)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    x = _float(x)
    k = len(_shape(normalized_shape))
    y = jax.nn.standardize(x, axis=tuple(range(x.ndim - k, x.ndim)), epsilon=eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y.astype(x.dtype)
