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

Softmax and normalization (``nnx.softmax``/``nnx.log_softmax`` are jax.nn's;
the rest are nnx layers, built per call with the contract's parameters set
into them):

* Layout: channels-last, as the contract; ``nnx.LayerNorm`` and
  ``nnx.RMSNorm`` take one feature axis, so ``normalized_shape`` with several
  axes is flattened into one (exact) and restored.
* ``epsilon``: nnx's default is 1e-6 for LayerNorm, GroupNorm, InstanceNorm
  and RMSNorm, 1e-5 for BatchNorm; the contract's ``eps`` is always passed.
* ``use_fast_variance=True`` (nnx's default): the variance is
  ``E[x^2] - E[x]^2``, in float32 for narrower inputs.  The peer's default,
  measured as is.
* ``dtype``: set to the input's dtype so the output keeps it (nnx's default
  ``None`` promotes a bfloat16 input with float32 parameters to float32);
  ``param_dtype`` is the parameters' own dtype.  A missing weight or bias maps
  to ``use_scale=False`` / ``use_bias=False``.
* ``nnx.BatchNorm(momentum=0.99)`` means ``new = momentum * old + (1 -
  momentum) * batch``: the contract's (PyTorch's) momentum ``m`` is passed as
  ``1 - m``.  nnx updates the running variance with the *biased* batch
  variance, the contract with the unbiased one: training with running
  statistics raises ``NotImplementedError`` (the comparison would be of a
  different quantity); eval mode, and training without running statistics,
  are compared.
"""

from __future__ import annotations

import math

import flax
import jax.numpy as jnp
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


def softmax(x, axis=-1):
    return nnx.softmax(x, axis=axis)


def log_softmax(x, axis=-1):
    return nnx.log_softmax(x, axis=axis)


def _float(x):
    """``x`` as an array of a floating dtype (the contract promotes integers to JAX's default float)."""
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.result_type(float))


def _shape(normalized_shape):
    return (int(normalized_shape),) if isinstance(normalized_shape, int) else tuple(normalized_shape)


def _pdtype(*params):
    return next((jnp.asarray(p).dtype for p in params if p is not None), jnp.float32)


def _set(var, value):
    if value is not None:
        var.set_value(jnp.asarray(value).reshape(var.get_value().shape))


def _flat(x, ns):
    """``x`` with its trailing ``ns`` axes merged into one (restored by ``.reshape(x.shape)``)."""
    return x.reshape(x.shape[:x.ndim - len(ns)] + (math.prod(ns),))


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    x, ns = _float(x), _shape(normalized_shape)
    m = nnx.LayerNorm(math.prod(ns), epsilon=eps, dtype=x.dtype, param_dtype=_pdtype(weight, bias),
                      use_scale=weight is not None, use_bias=bias is not None, rngs=nnx.Rngs(0))
    if weight is not None:
        _set(m.scale, weight)
    if bias is not None:
        _set(m.bias, bias)
    return m(_flat(x, ns)).reshape(x.shape)


def rms_norm(x, normalized_shape, weight=None, eps=1e-6):
    x, ns = _float(x), _shape(normalized_shape)
    m = nnx.RMSNorm(math.prod(ns), epsilon=eps, dtype=x.dtype, param_dtype=_pdtype(weight),
                    use_scale=weight is not None, rngs=nnx.Rngs(0))
    if weight is not None:
        _set(m.scale, weight)
    return m(_flat(x, ns)).reshape(x.shape)


def _affine_layer(cls, x, weight, bias, **kw):
    m = cls(x.shape[-1], dtype=x.dtype, param_dtype=_pdtype(weight, bias), use_scale=weight is not None,
            use_bias=bias is not None, rngs=nnx.Rngs(0), **kw)
    if weight is not None:
        _set(m.scale, weight)
    if bias is not None:
        _set(m.bias, bias)
    return m


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    x = _float(x)
    return _affine_layer(nnx.GroupNorm, x, weight, bias, num_groups=int(num_groups), epsilon=eps)(x)


def instance_norm(x, weight=None, bias=None, eps=1e-5):
    x = _float(x)
    return _affine_layer(nnx.InstanceNorm, x, weight, bias, epsilon=eps)(x)


def batch_norm(x, running_mean, running_var, weight=None, bias=None, *, training=False, momentum=0.1, eps=1e-5,
               axis_name=None):
    x = _float(x)
    if training and running_mean is not None:
        raise NotImplementedError("flax.nnx.BatchNorm updates its running variance with the biased batch variance; "
                                  "the contract (as PyTorch) uses the unbiased one")
    m = _affine_layer(nnx.BatchNorm, x, weight, bias, use_running_average=not training, axis=-1,
                      momentum=1.0 - momentum, epsilon=eps, axis_name=axis_name)
    if running_mean is not None:
        m.mean.set_value(jnp.asarray(running_mean))
        m.var.set_value(jnp.asarray(running_var))
    y = m(x)
    if running_mean is None:
        return y, None, None
    return y, jnp.asarray(running_mean), jnp.asarray(running_var)
