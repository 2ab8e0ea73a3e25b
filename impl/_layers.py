"""Layer classes of the linear maps, pooling, flatten, dropout, and ``Sequential``.

Parameters are arrays held as attributes (pytree children); hyperparameters
are static.  Constructors validate their arguments; ``__call__`` checks the
input against the layer (channel count, feature count) and calls
``impl.functional``.

Initializers (PyTorch's defaults, written out): weights are
``kaiming_uniform(a=sqrt(5))``, which is ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``
(gain ``sqrt(2 / (1 + a**2)) = sqrt(1/3)`` times ``sqrt(3 / fan_in)``); biases are
``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.  ``fan_in`` is ``in_features`` for
``Linear`` and ``kh * kw * in_channels / groups`` for ``Conv2d``.  Samples come
from ``jax.random.uniform`` with the ``key=`` given to the constructor (split
into a weight key and a bias key), or, without one, with a key split off
``impl.random``'s global key.  Parameters are float32 unless ``dtype=`` says
otherwise.
"""

from __future__ import annotations

import inspect
import math
import operator

import jax
import jax.numpy as jnp

from . import _windows as W
from . import random as _random
from ._dropout import check_drop_probability, dropout
from ._linear import conv2d, linear
from ._module import Module
from ._pooling import avg_pool2d, max_pool2d
from ._reshape import flatten

__all__ = ["Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "Flatten", "Dropout", "Sequential", "uniform_fan_in"]


def _count(name, value, op):
    try:
        if isinstance(value, bool):
            raise TypeError
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{op}: {name} must be an int, got {value!r} ({type(value).__name__}); "
                        f"pass e.g. {name}=16") from None
    if v < 1:
        raise ValueError(f"{op}: {name} must be >= 1, got {v}; pass a positive int")
    return v


def _bool(name, value, op):
    if not isinstance(value, bool):
        raise TypeError(f"{op}: {name} must be a bool, got {value!r}; pass True or False")
    return value


def uniform_fan_in(key, shape, fan_in: int, dtype=jnp.float32):
    """``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` samples: PyTorch's default for weights
    (``kaiming_uniform(a=sqrt(5))``) and biases (module docstring)."""
    bound = 1.0 / math.sqrt(fan_in)
    return _random.flat_draw(jax.random.uniform, key, shape, dtype=dtype, minval=-bound, maxval=bound)


def _keys(key, op):
    if key is None:
        key = _random.split_key()
    return jax.random.split(_random.check_key(key, op))


def _check_weight(layer, shape):
    if layer.weight is None:
        raise TypeError(f"{layer!r}: weight is None; the layer needs its weight: assign an array of shape {shape} "
                        f"(layer.weight = ...) or build a new {type(layer).__name__}; only bias may be None "
                        f"(bias=False)")


class Linear(Module):
    """``y = x @ weight + bias``; ``weight`` is ``(in_features, out_features)``.

    ``Linear(in_features, out_features, bias=True, *, key=None, dtype=jnp.float32)``;
    initializers in the module docstring; the computation is ``functional.linear``
    (full precision, float32/float64 accumulation, one final rounding).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, key=None, dtype=jnp.float32):
        op = "Linear"
        self.in_features = _count("in_features", in_features, op)
        self.out_features = _count("out_features", out_features, op)
        _bool("bias", bias, op)
        wkey, bkey = _keys(key, op)
        self.weight = uniform_fan_in(wkey, (self.in_features, self.out_features), self.in_features, dtype)
        self.bias = uniform_fan_in(bkey, (self.out_features,), self.in_features, dtype) if bias else None

    def __call__(self, x):
        _check_weight(self, (self.in_features, self.out_features))
        x = jnp.asarray(x)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"{self!r} expects x.shape[-1] == in_features == {self.in_features}, got x.shape = "
                             f"{tuple(x.shape)}; flatten the input first (Flatten()) or fix in_features")
        return linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Conv2d(Module):
    """2-D convolution (cross-correlation) of NHWC inputs with an HWIO kernel.

    ``Conv2d(in_channels, out_channels, kernel_size, stride=1, padding='SAME',
    dilation=1, groups=1, bias=True, *, key=None, dtype=jnp.float32)``; ``weight``
    is ``(kh, kw, in_channels / groups, out_channels)``; the computation is
    ``functional.conv2d``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding="SAME", dilation=1,
                 groups: int = 1, bias: bool = True, *, key=None, dtype=jnp.float32):
        op = "Conv2d"
        self.in_channels = _count("in_channels", in_channels, op)
        self.out_channels = _count("out_channels", out_channels, op)
        self.kernel_size = W.pair("kernel_size", kernel_size, op=op)
        self.stride = W.pair("stride", stride, op=op)
        self.padding = W.normalize_padding(padding, op)
        self.dilation = W.pair("dilation", dilation, op=op)
        self.groups = _count("groups", groups, op)
        _bool("bias", bias, op)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"Conv2d: groups = {self.groups} must divide in_channels = {self.in_channels} and "
                             f"out_channels = {self.out_channels}; pick groups among their common divisors")
        fan_in = self.kernel_size[0] * self.kernel_size[1] * (self.in_channels // self.groups)
        wkey, bkey = _keys(key, op)
        shape = (*self.kernel_size, self.in_channels // self.groups, self.out_channels)
        self.weight = uniform_fan_in(wkey, shape, fan_in, dtype)
        self.bias = uniform_fan_in(bkey, (self.out_channels,), fan_in, dtype) if bias else None

    def __call__(self, x):
        _check_weight(self, (*self.kernel_size, self.in_channels // self.groups, self.out_channels))
        x = jnp.asarray(x)
        if x.ndim not in (3, 4) or x.shape[-1] != self.in_channels:
            raise ValueError(f"{self!r} expects NHWC input with x.shape[-1] == in_channels == {self.in_channels}, "
                             f"got x.shape = {tuple(x.shape)}; inputs are channels-last: for NCHW data use "
                             f"jnp.moveaxis(x, 1, -1)")
        return conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding,
                      dilation=self.dilation, groups=self.groups)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        s += f", padding={self.padding!r}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class _Pool2d(Module):
    _fn = None

    def __init__(self, kernel_size, strides=None, padding="VALID"):
        op = type(self).__name__
        self.kernel_size = W.pair("kernel_size", kernel_size, op=op)
        self.strides = self.kernel_size if strides is None else W.pair("strides", strides, op=op)
        self.padding = W.normalize_padding(padding, op)
        W.check_pool_padding(self.padding, self.kernel_size, op)

    def __call__(self, x):
        return type(self)._fn(x, self.kernel_size, self.strides, self.padding)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, strides={self.strides}, padding={self.padding!r}"


class MaxPool2d(_Pool2d):
    """``MaxPool2d(kernel_size, strides=None, padding='VALID')``: ``functional.max_pool2d``
    (strides default to kernel_size; exact)."""

    _fn = staticmethod(max_pool2d)


class AvgPool2d(_Pool2d):
    """``AvgPool2d(kernel_size, strides=None, padding='VALID')``: ``functional.avg_pool2d``
    (padded cells not counted; correctly rounded)."""

    _fn = staticmethod(avg_pool2d)


class Flatten(Module):
    """``Flatten(start_axis=1)``: ``functional.flatten`` (merges axes ``start_axis..-1``)."""

    def __init__(self, start_axis: int = 1):
        try:
            if isinstance(start_axis, bool):
                raise TypeError
            self.start_axis = operator.index(start_axis)
        except TypeError:
            raise TypeError(f"Flatten: start_axis must be an int, got {start_axis!r}; pass e.g. 1") from None

    def __call__(self, x):
        return flatten(x, self.start_axis)

    def extra_repr(self):
        return f"start_axis={self.start_axis}"


class Dropout(Module):
    """``Dropout(p=0.5)``: ``functional.dropout`` in training mode, the identity in eval mode.

    ``p`` is the DROP probability, in [0, 1).  A new layer is in training mode
    (``model.eval()`` / ``model.train()`` switch it).  Keys: ``layer(x, key=k)``
    uses ``k``; ``layer(x)`` splits a key off ``impl.random``'s global key, which
    is only allowed outside ``jax.jit``/``grad``/``vmap`` (inside, that key would
    be frozen into the traced function and every call would drop the same
    elements), so under a transformation pass ``key=`` (``Sequential`` splits it
    among its layers).
    """

    def __init__(self, p: float = 0.5):
        self.p = check_drop_probability(p, "Dropout")
        self.training = True

    def __call__(self, x, key=None):
        if not self.training or self.p == 0.0:
            return dropout(x, self.p, None, training=False)
        if key is None:
            if isinstance(x, jax.core.Tracer) or _random.staging():
                raise ValueError(
                    f"{self!r} in training mode was called inside a JAX transformation (jit, grad, vmap) without "
                    f"a key; the global key of impl.random would be frozen into the traced function and every "
                    f"call would drop the same elements; pass one: layer(x, key=k) or model(x, key=k) for a "
                    f"Sequential, with a new k per call, or switch to eval mode with .eval()")
            key = _random.split_key()
        return dropout(x, self.p, key, training=True)

    def extra_repr(self):
        return f"p={self.p}"


def _takes_key(layer) -> bool:
    try:
        return "key" in inspect.signature(layer.__call__).parameters
    except (TypeError, ValueError):
        return False


class Sequential(Module):
    """``Sequential(*layers)``: ``x -> layers[-1](...layers[0](x))``.

    ``model(x, key=k)`` splits ``k`` into one key per layer and passes it to
    the layers whose ``__call__`` takes ``key`` (``Dropout``, nested
    ``Sequential``); without ``key``, those layers get none.
    """

    def __init__(self, *layers):
        for i, layer in enumerate(layers):
            if isinstance(layer, type):
                raise TypeError(f"Sequential: layer {i} is the class {layer.__name__}, not a layer; pass an "
                                f"instance: {layer.__name__}(...) with its arguments, e.g. nn.Dropout(0.5)")
            if not callable(layer):
                raise TypeError(f"Sequential: layer {i} is not callable: {layer!r}; pass layers such as Linear(4, 2)")
        self.layers = tuple(layers)

    def __call__(self, x, key=None):
        if key is not None:
            key = _random.check_key(key, "Sequential")
        keys = jax.random.split(key, len(self.layers)) if key is not None and self.layers else None
        for i, layer in enumerate(self.layers):
            x = layer(x, key=keys[i]) if keys is not None and _takes_key(layer) else layer(x)
        return x

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self):
        if not self.layers:
            return "Sequential()"
        lines = ["Sequential("]
        for i, layer in enumerate(self.layers):
            lines.append(f"  ({i}): " + repr(layer).replace("\n", "\n  "))
        return "\n".join(lines) + "\n)"
