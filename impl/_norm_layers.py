"""Layer classes for the softmax family and the normalization layers.

Channels-last, like ``impl.functional``: features are on the last axis
(``BatchNorm2d`` takes ``(N, H, W, C)``).  Constructors follow PyTorch's
argument names and defaults.  Parameters (``weight``, ``bias``) and buffers
(``running_mean``, ``running_var``) are float32 arrays; outputs have the
input's dtype.

Running statistics and ``jax.jit``
----------------------------------

A BatchNorm in training mode called on a batch updates its running statistics
on the object it was called on (``bn(x)``, as in PyTorch).  Under ``jax.jit``
(or ``grad``, ``vmap``, ...) the new statistics are tracers, and storing them
on an object that outlives the trace would leak them; so the supported path
for traced code is functional::

    @jax.jit
    def train_step(model, x):
        y, model = impl.nn.functional_call(model, x)   # a copy, updated
        return y, model

``functional_call(module, *args)`` calls a copy of ``module`` (the same pytree)
and returns ``(output, updated_copy)``; the module passed in is not changed.
Calling a module *in place* on traced inputs is allowed when the module itself
is an argument of the traced function (its buffers are tracers of the same
trace, as in ``jax.jit(lambda m, x: (m(x), m))``); calling a module that the
traced function closes over raises ``RuntimeError`` instead of leaking a tracer.
"""

from __future__ import annotations

import contextvars

import jax
import jax.numpy as jnp
import numpy as np

from . import _reductions as F
from ._batch_norm import batch_norm
from ._core import check_finite_param
from ._module import Module

__all__ = [
    "Softmax", "LogSoftmax", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LayerNorm", "GroupNorm",
    "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "RMSNorm", "functional_call",
]

# ids of the modules that the running ``functional_call`` owns (copies it returns)
_FUNCTIONAL = contextvars.ContextVar("impl_nn_functional_call", default=frozenset())


def functional_call(module, *args, **kwargs):
    """``(module_copy(*args, **kwargs), module_copy)``: call a copy of ``module`` and
    return it with any state it updated (BatchNorm running statistics).

    The copy is a new pytree with the same leaves; ``module`` itself is left
    unchanged.  This is the way to run a training step under ``jax.jit``
    without leaking tracers (module docstring)::

        y, model = jax.jit(impl.nn.functional_call)(model, x)
    """
    if not isinstance(module, Module):
        raise TypeError(f"functional_call expects an impl.nn Module, got {type(module).__name__}; "
                        f"pass a layer such as impl.nn.BatchNorm1d(10)")
    leaves, treedef = jax.tree_util.tree_flatten(module)
    clone = jax.tree_util.tree_unflatten(treedef, leaves)
    token = _FUNCTIONAL.set(_FUNCTIONAL.get() | {id(m) for m in clone.modules()})
    try:
        out = clone(*args, **kwargs)
    finally:
        _FUNCTIONAL.reset(token)
    return out, clone


def _is_tracer(v):
    return isinstance(v, jax.core.Tracer)


def _positive_int(name, v, example):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {v!r}; pass e.g. {name}={example}")
    return int(v)


def _bool(name, v):
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {v!r} ({type(v).__name__}); pass True or False")
    return bool(v)


def _eps(eps):
    return check_finite_param("eps", eps, nonnegative=True)


def _shape_of(x):
    return tuple(np.shape(x))


# ---- softmax ---------------------------------------------------------------------

class _SoftmaxBase(Module):
    _fn = None

    def __init__(self, axis: int = -1):
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"axis must be an int, got {axis!r} ({type(axis).__name__}); pass e.g. axis=-1")
        self.axis = int(axis)

    def __call__(self, x):
        return type(self)._fn(x, axis=self.axis)

    def extra_repr(self):
        return f"axis={self.axis}"


class Softmax(_SoftmaxBase):
    """``softmax(x, axis)``: probabilities along ``axis`` (default the last)."""

    _fn = staticmethod(F.softmax)


class LogSoftmax(_SoftmaxBase):
    """``log_softmax(x, axis)``, accurate for the largest logit too."""

    _fn = staticmethod(F.log_softmax)


# ---- batch norm ------------------------------------------------------------------

class _BatchNorm(Module):
    _ranks: tuple = ()
    _layout: str = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True,
                 track_running_stats: bool = True, axis_name=None):
        self.num_features = _positive_int("num_features", num_features, 64)
        if axis_name is not None and not isinstance(axis_name, (str, tuple)):
            raise TypeError(f"axis_name must be None, a str or a tuple of str (a mesh axis), got {axis_name!r}; "
                            f"pass e.g. axis_name='batch'")
        self.axis_name = axis_name
        self.eps = _eps(eps)
        self.momentum = F._check_momentum(momentum)
        self.affine = _bool("affine", affine)
        self.track_running_stats = _bool("track_running_stats", track_running_stats)
        C = self.num_features
        self.weight = jnp.ones((C,), jnp.float32) if self.affine else None
        self.bias = jnp.zeros((C,), jnp.float32) if self.affine else None
        self.running_mean = jnp.zeros((C,), jnp.float32) if self.track_running_stats else None
        self.running_var = jnp.ones((C,), jnp.float32) if self.track_running_stats else None
        self.training = True

    def _check_input(self, x):
        shape = _shape_of(x)
        name = f"{type(self).__name__}({self.num_features})"
        if len(shape) not in self._ranks:
            raise ValueError(f"{name} expects a {' or '.join(f'{r}-D' for r in self._ranks)} input "
                             f"{self._layout}, got shape {shape}; features go on the last axis (channels-last)")
        if shape[-1] != self.num_features:
            raise ValueError(f"{name} expects {self.num_features} features on the last axis, got input of shape "
                             f"{shape} with {shape[-1]}; pass an input whose last axis is {self.num_features} "
                             f"(channels-last), or build {type(self).__name__}({shape[-1]})")

    def __call__(self, x):
        self._check_input(x)
        use_batch = self.training or not self.track_running_stats
        y, rm, rv = batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                               training=use_batch, momentum=self.momentum, eps=self.eps,
                               axis_name=self.axis_name if use_batch else None)
        if self.training and self.track_running_stats:
            self._store_running_stats(rm, rv)
        return y

    def _store_running_stats(self, rm, rv):
        if _is_tracer(rm) and id(self) not in _FUNCTIONAL.get():
            old = self.running_mean
            same_trace = _is_tracer(old) and getattr(old, "_trace", None) is getattr(rm, "_trace", None)
            if not same_trace:
                raise RuntimeError(
                    f"{type(self).__name__}({self.num_features}) in training mode was called under a JAX "
                    f"transformation (jit, grad, vmap, ...) on a module that is not an argument of the "
                    f"transformed function, so its running statistics would hold tracers; call "
                    f"`y, model = impl.nn.functional_call(model, x)` inside the function and return the new "
                    f"model, or call .eval() first")
        object.__setattr__(self, "running_mean", rm)
        object.__setattr__(self, "running_var", rv)

    def extra_repr(self):
        sync = "" if self.axis_name is None else f", axis_name={self.axis_name!r}"
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}{sync}")


class BatchNorm1d(_BatchNorm):
    """BatchNorm over ``(N, C)`` or ``(N, L, C)``: statistics per feature over every other axis.

    ``BatchNorm1d(num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
    axis_name=None)``; ``axis_name`` names a ``shard_map``/``pmap`` axis over which the batch
    statistics are synchronized (see ``impl.functional.batch_norm``)."""

    _ranks = (2, 3)
    _layout = "(N, C) or (N, L, C)"


class BatchNorm2d(_BatchNorm):
    """BatchNorm over ``(N, H, W, C)`` (channels-last)."""

    _ranks = (4,)
    _layout = "(N, H, W, C)"


class BatchNorm3d(_BatchNorm):
    """BatchNorm over ``(N, D, H, W, C)`` (channels-last)."""

    _ranks = (5,)
    _layout = "(N, D, H, W, C)"


# ---- layer / group / instance / rms norm -------------------------------------------

class LayerNorm(Module):
    """``layer_norm`` over the trailing ``normalized_shape`` axes (an int means ``(int,)``);
    works on a single unbatched sample of shape ``normalized_shape``."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True):
        self.normalized_shape = F._normalized_shape(normalized_shape)
        self.eps = _eps(eps)
        self.elementwise_affine = _bool("elementwise_affine", elementwise_affine)
        use_bias = _bool("bias", bias)
        ns = self.normalized_shape
        self.weight = jnp.ones(ns, jnp.float32) if self.elementwise_affine else None
        self.bias = jnp.zeros(ns, jnp.float32) if self.elementwise_affine and use_bias else None

    def __call__(self, x):
        shape, ns = _shape_of(x), self.normalized_shape
        if len(shape) < len(ns) or shape[len(shape) - len(ns):] != ns:
            raise ValueError(f"LayerNorm(normalized_shape={ns}) expects an input whose last {len(ns)} "
                             f"ax{'is' if len(ns) == 1 else 'es'} {'is' if len(ns) == 1 else 'are'} {ns}, "
                             f"got shape {shape}; pass an input of shape (..., {', '.join(map(str, ns))}), "
                             f"or build the layer for the input's trailing axes")
        return F.layer_norm(x, ns, self.weight, self.bias, eps=self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class GroupNorm(Module):
    """``group_norm`` with ``num_groups`` contiguous groups of the ``num_channels`` channels
    (last axis): statistics per sample and group over the spatial axes and the group's channels."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True):
        G = _positive_int("num_groups", num_groups, 4)
        C = _positive_int("num_channels", num_channels, 16)
        if C % G:
            divisors = [d for d in range(1, C + 1) if C % d == 0]
            raise ValueError(f"num_channels={C} is not divisible by num_groups={G}; pass a num_groups "
                             f"that divides {C} (one of {divisors})")
        self.num_groups, self.num_channels = G, C
        self.eps = _eps(eps)
        self.affine = _bool("affine", affine)
        self.weight = jnp.ones((C,), jnp.float32) if self.affine else None
        self.bias = jnp.zeros((C,), jnp.float32) if self.affine else None

    def __call__(self, x):
        shape = _shape_of(x)
        if len(shape) < 2 or shape[-1] != self.num_channels:
            raise ValueError(f"GroupNorm({self.num_groups}, {self.num_channels}) expects an input (N, *spatial, "
                             f"{self.num_channels}) with the channels on the last axis, got shape {shape}")
        return F.group_norm(x, self.num_groups, self.weight, self.bias, eps=self.eps)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class _InstanceNorm(Module):
    _spatial = 1

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = False):
        self.num_features = _positive_int("num_features", num_features, 64)
        self.eps = _eps(eps)
        self.affine = _bool("affine", affine)
        C = self.num_features
        self.weight = jnp.ones((C,), jnp.float32) if self.affine else None
        self.bias = jnp.zeros((C,), jnp.float32) if self.affine else None

    def __call__(self, x):
        shape = _shape_of(x)
        s = self._spatial
        name = f"{type(self).__name__}({self.num_features})"
        if len(shape) not in (s + 1, s + 2):
            raise ValueError(f"{name} expects (N, {s} spatial axes, C) or one unbatched sample ({s} spatial "
                             f"axes, C), got shape {shape}; features go on the last axis (channels-last)")
        if shape[-1] != self.num_features:
            raise ValueError(f"{name} expects {self.num_features} features on the last axis, got input of shape "
                             f"{shape} with {shape[-1]}; pass an input whose last axis is {self.num_features}")
        if len(shape) == s + 1:  # unbatched
            return F.instance_norm(jnp.asarray(x)[None], self.weight, self.bias, eps=self.eps)[0]
        return F.instance_norm(x, self.weight, self.bias, eps=self.eps)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, affine={self.affine}"


class InstanceNorm1d(_InstanceNorm):
    """Instance norm over ``(N, L, C)`` (or one sample ``(L, C)``); ``affine=False`` by default, as in PyTorch."""

    _spatial = 1


class InstanceNorm2d(_InstanceNorm):
    """Instance norm over ``(N, H, W, C)`` (or one sample ``(H, W, C)``); ``affine=False`` by default."""

    _spatial = 2


class InstanceNorm3d(_InstanceNorm):
    """Instance norm over ``(N, D, H, W, C)`` (or one sample); ``affine=False`` by default."""

    _spatial = 3


class RMSNorm(Module):
    """``rms_norm`` over the trailing ``normalized_shape`` axes: ``x / sqrt(mean(x**2) + eps) * weight``."""

    def __init__(self, normalized_shape, eps: float = 1e-6, elementwise_affine: bool = True):
        self.normalized_shape = F._normalized_shape(normalized_shape)
        self.eps = _eps(eps)
        self.elementwise_affine = _bool("elementwise_affine", elementwise_affine)
        self.weight = jnp.ones(self.normalized_shape, jnp.float32) if self.elementwise_affine else None

    def __call__(self, x):
        shape, ns = _shape_of(x), self.normalized_shape
        if len(shape) < len(ns) or shape[len(shape) - len(ns):] != ns:
            raise ValueError(f"RMSNorm(normalized_shape={ns}) expects an input whose last {len(ns)} "
                             f"ax{'is' if len(ns) == 1 else 'es'} {'is' if len(ns) == 1 else 'are'} {ns}, "
                             f"got shape {shape}; pass (..., {', '.join(map(str, ns))})")
        return F.rms_norm(x, ns, self.weight, eps=self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
