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

Normalization (equinox has no softmax of its own: not provided).  Equinox
layers act on ONE sample, channels-FIRST: the adapter vmaps them over the
batch (``jax.vmap``, as an Equinox user does) and moves the channel axis of
the contract's channels-last input to the front and back (exact moves).
Parameters keep their own dtype; the result is rounded to the input's dtype.

* ``layer_norm``: ``eqx.nn.LayerNorm(shape=normalized_shape, eps=eps)``
  (default eps 1e-5, passed explicitly); variance ``jnp.var`` (two-pass).
* ``rms_norm``: ``eqx.nn.RMSNorm(shape, eps=eps, use_bias=False)`` (its
  default eps is 1e-5, the contract's 1e-6: passed explicitly).
* ``group_norm``: ``eqx.nn.GroupNorm(groups, channels, eps)``;
  ``channelwise_affine`` needs both parameters, so a missing weight is ones
  and a missing bias zeros (an exact identity).
* ``instance_norm``: ``eqx.nn.GroupNorm`` with one channel per group, which
  is instance normalization (equinox has no InstanceNorm class).
* ``batch_norm``: ``eqx.nn.BatchNorm(input_size, axis_name, eps, momentum,
  mode)``, vmapped with the axis name over the batch.  Eval mode: ``mode="ema"``,
  ``inference=True`` with the running statistics put into its state.
  Training without running statistics: ``mode="batch"`` (batch statistics,
  biased variance: the contract).  Training with running statistics cannot be
  expressed: in "ema" mode equinox normalizes with the *updated running*
  statistics instead of the batch's, its momentum weighs the old value
  (``new = momentum * old + (1 - momentum) * batch``) and the running variance
  takes the biased batch variance; ``NotImplementedError``.  So does
  ``axis_name`` (the adapter's vmap already uses the batch axis name).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp

CONFORMANCE_PEER = f"equinox.nn (equinox {eqx.__version__})"


def leaky_relu(x, negative_slope=0.01):
    x = _float(x)
    layer = eqx.nn.PReLU(init_alpha=negative_slope)
    layer = eqx.tree_at(lambda m: m.negative_slope, layer, layer.negative_slope.astype(x.dtype))
    return layer(x)


def _float(x):
    """``x`` as an array of a floating dtype (the contract promotes integers to JAX's default float)."""
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.result_type(float))


def _shape(normalized_shape):
    return (int(normalized_shape),) if isinstance(normalized_shape, int) else tuple(normalized_shape)


def _put(layer, name, value):
    return eqx.tree_at(lambda m: getattr(m, name), layer, jnp.asarray(value))


def _over_samples(layer, x, k):
    """``layer`` applied to every sample of ``x``'s trailing ``k`` axes."""
    lead = x.shape[:x.ndim - k]
    y = jax.vmap(layer)(x.reshape((math.prod(lead),) + x.shape[x.ndim - k:]))
    return y.reshape(x.shape).astype(x.dtype)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    x, ns = _float(x), _shape(normalized_shape)
    m = eqx.nn.LayerNorm(ns, eps=eps, use_weight=weight is not None, use_bias=bias is not None)
    if weight is not None:
        m = _put(m, "weight", weight)
    if bias is not None:
        m = _put(m, "bias", bias)
    return _over_samples(m, x, len(ns))


def rms_norm(x, normalized_shape, weight=None, eps=1e-6):
    x, ns = _float(x), _shape(normalized_shape)
    m = eqx.nn.RMSNorm(ns, eps=eps, use_weight=weight is not None, use_bias=False)
    if weight is not None:
        m = _put(m, "weight", weight)
    return _over_samples(m, x, len(ns))


def _channels_first(x):
    return jnp.moveaxis(x, -1, 1)


def _channels_last(y):
    return jnp.moveaxis(y, 1, -1)


def _group_norm(x, groups, weight, bias, eps):
    C = x.shape[-1]
    m = eqx.nn.GroupNorm(groups, C, eps=eps, channelwise_affine=True)
    m = _put(m, "weight", jnp.ones(C, jnp.float32) if weight is None else weight)
    m = _put(m, "bias", jnp.zeros(C, jnp.float32) if bias is None else bias)
    return _channels_last(jax.vmap(m)(_channels_first(x))).astype(x.dtype)


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    return _group_norm(_float(x), int(num_groups), weight, bias, eps)


def instance_norm(x, weight=None, bias=None, eps=1e-5):
    x = _float(x)
    return _group_norm(x, x.shape[-1], weight, bias, eps)


def batch_norm(x, running_mean, running_var, weight=None, bias=None, *, training=False, momentum=0.1, eps=1e-5,
               axis_name=None):
    x = _float(x)
    if axis_name is not None:
        raise NotImplementedError("equinox's BatchNorm takes its batch axis name from the vmap that applies it; "
                                  "statistics across devices (axis_name) are not adapted")
    if training and running_mean is not None:
        raise NotImplementedError("equinox.nn.BatchNorm in training normalizes with the updated running statistics "
                                  "('ema' mode) or keeps debiased hidden statistics ('batch' mode), with biased "
                                  "variances; the contract's (PyTorch's) training update cannot be expressed")
    C = x.shape[-1]
    sdt = jnp.float32 if running_mean is None else jnp.asarray(running_mean).dtype
    m, state = eqx.nn.make_with_state(eqx.nn.BatchNorm)(C, "batch", eps=eps, momentum=1.0 - momentum,
                                                        inference=not training, dtype=sdt,
                                                        mode="batch" if training else "ema")
    m = _put(m, "weight", jnp.ones(C, jnp.float32) if weight is None else weight)
    m = _put(m, "bias", jnp.zeros(C, jnp.float32) if bias is None else bias)
    if not training:
        stats = tuple(jax.lax.convert_element_type(a, sdt) for a in (running_mean, running_var))  # strong types
        state = state.set(m.ema_state_index, stats)
        state = state.set(m.ema_first_time_index, jnp.array(False))
    xf = _channels_first(x).reshape(x.shape[0], C, -1)
    y, _ = jax.vmap(m, axis_name="batch", in_axes=(0, None), out_axes=(0, None))(xf, state)
    y = _channels_last(y.reshape(_channels_first(x).shape)).astype(x.dtype)
    if running_mean is None:
        return y, None, None
    return y, jnp.asarray(running_mean), jnp.asarray(running_var)
