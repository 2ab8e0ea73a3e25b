"""``torch.nn.functional`` on CPU behind the functional contract
(``pytest --impl adapters.torch_functional``).

Each call converts the JAX array to a CPU ``torch.Tensor`` of the same dtype
exactly (bfloat16 through its 16-bit patterns, so every bit, nan payloads,
signed zeros and subnormals included, is kept), runs the torch function in
that dtype, and converts the result back exactly to a JAX array of the input's
dtype on the input's device(s).  Integer and bool inputs are first promoted
to JAX's default float dtype, as the contract says.

This is not a JAX function: it cannot be traced by ``jax.jit``, ``jax.vmap``
or ``jax.grad`` and runs on concrete arrays only, hence
``CONFORMANCE_CAPABILITIES = {"jax_transforms": False}``; called on a tracer it
raises ``NotImplementedError`` (the suite skips such a case, naming why).

Peer defaults and how they are converted:

* ``F.gelu(x, approximate='none')``: the contract's ``approximate=False`` maps
  to ``'none'``, ``True`` to ``'tanh'``.
* ``F.leaky_relu(x, negative_slope=0.01)``, ``F.elu(x, alpha=1.0)``,
  ``F.celu(x, alpha=1.0)``: the contract's names and defaults.  torch passes
  the parameter as a double and computes float32 and float64 inputs in their
  own precision, bfloat16 and float16 in float32 ("opmath"), rounding the
  result once to the input dtype.
* ``F.softplus(x, beta=1.0, threshold=20.0)``: torch returns ``x`` itself
  where ``beta * x > 20`` (a speed/accuracy trade-off of the peer's default:
  exact to the last bit in float32, about 2e-9 relative in float64).  The
  default is what torch users get, so it is kept and measured, not converted.
* ``torch.sigmoid``, ``torch.tanh``, ``F.logsigmoid``, ``F.hardsigmoid``,
  ``F.hardswish``, ``F.softsign``, ``F.silu``, ``F.mish``, ``F.relu6``,
  ``F.selu``: the contract's definitions.

Normalization and softmax:

* Layout: the contract is channels-last (``(N, *spatial, C)``); ``F.group_norm``,
  ``F.instance_norm`` and ``F.batch_norm`` are channels-first, so the input is
  permuted to ``(N, C, *spatial)`` and the result permuted back (exact moves).
* ``eps``: torch's defaults (1e-5; ``F.rms_norm`` defaults to the dtype's
  machine epsilon) are not relied on: the contract's ``eps`` is always passed.
* ``F.batch_norm(x, running_mean, running_var, weight, bias, training,
  momentum=0.1, eps)``: the contract's convention (``new = (1 - momentum) *
  old + momentum * batch``, the batch's unbiased variance in the update, the
  biased one in the output).  torch updates the running statistics in place;
  the adapter passes copies and returns them.  ``axis_name`` (statistics
  across devices) has no torch counterpart: ``NotImplementedError``.
* ``F.softmax(x, dim=axis)``, ``F.log_softmax``, ``F.layer_norm``,
  ``F.rms_norm``: the contract's definitions; parameters (float32 for
  narrower inputs) are passed in their own dtype (torch's mixed-dtype CPU
  kernels).

A dtype torch does not implement for an op on CPU ("... not implemented for
'Half'") raises ``NotImplementedError`` with torch's message.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import torch
import torch.nn.functional as F

CONFORMANCE_PEER = f"torch.nn.functional (torch {torch.__version__}, CPU)"
CONFORMANCE_CAPABILITIES = {"jax_transforms": False}

_TORCH = {np.dtype(np.float16): torch.float16, np.dtype(np.float32): torch.float32,
          np.dtype(np.float64): torch.float64}


def to_torch(x):
    """A JAX array as a CPU tensor of the same dtype and bits; returns ``(tensor, jax_array)``."""
    if isinstance(x, jax.core.Tracer):
        raise NotImplementedError("torch.nn.functional runs eagerly on concrete arrays; it cannot be traced "
                                  "by jax.jit, jax.vmap or jax.grad")
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    a = np.asarray(x)
    if a.dtype == ml_dtypes.bfloat16:
        return torch.from_numpy(np.ascontiguousarray(a).view(np.int16).copy()).view(torch.bfloat16), x
    if a.dtype not in _TORCH:
        raise NotImplementedError(f"no torch dtype for {a.dtype}")
    return torch.from_numpy(np.array(a, copy=True)), x


def from_torch(t, like):
    """A tensor as a JAX array of ``like``'s dtype, on ``like``'s device(s), bit for bit."""
    if t.dtype == torch.bfloat16:
        a = t.contiguous().view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    else:
        a = t.numpy()
    if a.dtype != like.dtype:
        raise TypeError(f"torch returned {a.dtype} for a {like.dtype} input; the contract keeps the input dtype")
    return jax.device_put(a, like.sharding)


def _call(fn, *args, **kwargs):
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # torch's note that a bfloat16/float16 input with float32 parameters takes its
            # unfused (mixed-dtype) kernel: informational, the result is what is measured
            warnings.filterwarnings("ignore", message="Mismatch dtype between input and weight")
            return fn(*args, **kwargs)
    except RuntimeError as e:
        if "not implemented for" in str(e):
            raise NotImplementedError(f"torch on CPU: {e}") from None
        raise


def _run(fn, x, **kwargs):
    t, xj = to_torch(x)
    return from_torch(_call(fn, t, **kwargs), xj)


def _opt(a):
    """An optional parameter array as a tensor (exactly), or None."""
    return None if a is None else to_torch(a)[0]


def _channels_first(t):
    return t.permute(0, t.ndim - 1, *range(1, t.ndim - 1)) if t.ndim > 2 else t


def _channels_last(t):
    return t.permute(0, *range(2, t.ndim), 1) if t.ndim > 2 else t


def _shape(normalized_shape):
    return (int(normalized_shape),) if isinstance(normalized_shape, int) else tuple(normalized_shape)


def relu(x):
    return _run(F.relu, x)


def relu6(x):
    return _run(F.relu6, x)


def leaky_relu(x, negative_slope=0.01):
    return _run(F.leaky_relu, x, negative_slope=float(negative_slope))


def elu(x, alpha=1.0):
    return _run(F.elu, x, alpha=float(alpha))


def celu(x, alpha=1.0):
    return _run(F.celu, x, alpha=float(alpha))


def selu(x):
    return _run(F.selu, x)


def gelu(x, approximate=False):
    return _run(F.gelu, x, approximate="tanh" if approximate else "none")


def silu(x):
    return _run(F.silu, x)


def mish(x):
    return _run(F.mish, x)


def sigmoid(x):
    return _run(torch.sigmoid, x)


def log_sigmoid(x):
    return _run(F.logsigmoid, x)


def tanh(x):
    return _run(torch.tanh, x)


def softplus(x):
    return _run(F.softplus, x)


def hard_sigmoid(x):
    return _run(F.hardsigmoid, x)


def hard_swish(x):
    return _run(F.hardswish, x)


def softsign(x):
    return _run(F.softsign, x)


def softmax(x, axis=-1):
    return _run(F.softmax, x, dim=axis)


def log_softmax(x, axis=-1):
    return _run(F.log_softmax, x, dim=axis)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    return _run(F.layer_norm, x, normalized_shape=_shape(normalized_shape), weight=_opt(weight), bias=_opt(bias),
                eps=float(eps))


def rms_norm(x, normalized_shape, weight=None, eps=1e-6):
    return _run(F.rms_norm, x, normalized_shape=_shape(normalized_shape), weight=_opt(weight), eps=float(eps))


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    t, xj = to_torch(x)
    y = _call(F.group_norm, _channels_first(t), int(num_groups), _opt(weight), _opt(bias), float(eps))
    return from_torch(_channels_last(y), xj)


def instance_norm(x, weight=None, bias=None, eps=1e-5):
    t, xj = to_torch(x)
    y = _call(F.instance_norm, _channels_first(t), weight=_opt(weight), bias=_opt(bias), use_input_stats=True,
              eps=float(eps))
    return from_torch(_channels_last(y), xj)


def batch_norm(x, running_mean, running_var, weight=None, bias=None, *, training=False, momentum=0.1, eps=1e-5,
               axis_name=None):
    if axis_name is not None:
        raise NotImplementedError("torch.nn.functional.batch_norm has no statistics across devices (axis_name)")
    if training and eps <= 0:
        raise NotImplementedError(f"torch's batch_norm requires eps > 0 in training, got eps={eps!r}")
    t, xj = to_torch(x)
    rm = rv = None
    if running_mean is not None:
        rm, rmj = to_torch(running_mean)
        rv, rvj = to_torch(running_var)
    y = _call(F.batch_norm, _channels_first(t), rm, rv, _opt(weight), _opt(bias), bool(training), float(momentum),
              float(eps))
    y = from_torch(_channels_last(y), xj)
    if rm is None:
        return y, None, None
    return y, from_torch(rm, rmj), from_torch(rv, rvj)
