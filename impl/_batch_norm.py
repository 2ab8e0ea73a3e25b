"""``batch_norm``: the checks that need concrete values or the size of a named axis,
made before the jitted kernel of ``impl._reductions`` (inside it every array is a tracer).

* A concrete ``running_var`` with a negative entry is refused (``ValueError``):
  a variance is ``>= 0``, and eval mode would divide by ``sqrt`` of a negative
  number.  Under ``jax.jit`` the values are not known and cannot raise; there a
  negative running variance gives ``±inf`` where ``x`` differs from the running
  mean (docs/input_rules.md).
* Training with ``axis_name`` (``jax.vmap``, ``jax.shard_map``): the batch is
  global, and a global batch of one value per channel has no unbiased variance;
  it is refused as the local one is (the kernel's ``n / (n - 1)`` would divide by
  zero), whenever the axis size is known at trace time.
"""

from __future__ import annotations

import functools
import math

import jax
import numpy as np
from jax import lax

from . import _reductions

__all__ = ["batch_norm"]


def _check_running_var(running_var):
    if running_var is None or isinstance(running_var, jax.core.Tracer):
        return
    try:
        v = np.asarray(running_var, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return  # not numbers: the kernel names the problem
    neg = np.flatnonzero(v < 0)
    if neg.size:
        i = int(neg[0])
        raise ValueError(f"batch_norm: running_var must be >= 0 (a variance), got {float(v[i])!r} at index {i} "
                         f"({neg.size} of {v.size} entries negative); pass the running variance itself, e.g. "
                         f"jnp.ones(C) for a fresh layer (not a log-variance or a standard deviation)")


def _check_global_batch(x, axis_name):
    shape = tuple(np.shape(x))
    if len(shape) < 2:
        return  # the kernel names the rank problem
    n_local = math.prod(shape[:-1])
    try:
        n = lax.psum(n_local, axis_name)  # a Python int where the axis size is known at trace time
    except NameError:
        return  # unbound axis name: the kernel raises JAX's error
    if isinstance(n, int) and n == 1:
        raise ValueError(f"batch_norm in training mode needs more than 1 value per channel, got 1 over the batch "
                         f"axis {axis_name!r} of size 1 (input shape {shape}; the unbiased variance of one value is "
                         f"undefined); use a global batch of at least 2, or training=False")


@functools.wraps(_reductions.batch_norm)
def batch_norm(x, running_mean, running_var, weight=None, bias=None, *, training=False, momentum=0.1,
               eps=1e-5, axis_name=None):
    _check_running_var(running_var)
    if axis_name is not None and isinstance(training, (bool, np.bool_)) and training:
        _check_global_batch(x, axis_name)
    return _reductions.batch_norm(x, running_mean, running_var, weight, bias, training=training,
                                  momentum=momentum, eps=eps, axis_name=axis_name)
