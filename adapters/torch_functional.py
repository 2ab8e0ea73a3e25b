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

A dtype torch does not implement for an op on CPU ("... not implemented for
'Half'") raises ``NotImplementedError`` with torch's message.
"""

from __future__ import annotations

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


def _run(fn, x, **kwargs):
    t, xj = to_torch(x)
    try:
        with torch.no_grad():
            y = fn(t, **kwargs)
    except RuntimeError as e:
        if "not implemented for" in str(e):
            raise NotImplementedError(f"torch on CPU: {e}") from None
        raise
    return from_torch(y, xj)


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
