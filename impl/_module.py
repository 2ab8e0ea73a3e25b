"""``Module``: the base class of every layer, and a JAX pytree.

Attributes that hold arrays, other modules, or lists/tuples/dicts of them are
the pytree's children (parameters, buffers and sub-layers); every other
attribute (ints, floats, strings, tuples of those) is static metadata and
becomes part of the tree structure, so it must be hashable.  A whole model
therefore goes through ``jax.jit``, ``jax.grad`` and ``jax.vmap`` as an
argument, and ``print(model)`` shows the tree.

Modules are ordinary mutable Python objects: a layer that updates state in
place (BatchNorm's running statistics in training mode) does so on the object
it was called on.  Inside a jitted function, work on the module passed in as
an argument and return it (``impl.nn.functional_call``), so no tracer is kept
on an object that outlives the trace.
"""

from __future__ import annotations

import jax
import numpy as np

__all__ = ["Module"]


def _is_child(v) -> bool:
    if isinstance(v, (Module, jax.Array, np.ndarray)):
        return True
    if isinstance(v, (list, tuple)):
        return any(_is_child(e) for e in v)
    if isinstance(v, dict):
        return any(_is_child(e) for e in v.values())
    return hasattr(v, "shape") and hasattr(v, "dtype")  # tracers and array-likes


class Module:
    """Base class of layers: a mutable pytree (see module docstring)."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        jax.tree_util.register_pytree_with_keys(
            cls, cls._flatten_with_keys, cls._unflatten, flatten_func=cls._flatten
        )

    def _split(self):
        children, static = [], []
        for k, v in vars(self).items():
            (children if _is_child(v) else static).append((k, v))
        return children, static

    def _flatten_with_keys(self):
        children, static = self._split()
        keys = tuple(k for k, _ in children)
        return [(jax.tree_util.GetAttrKey(k), v) for k, v in children], (keys, tuple(static))

    def _flatten(self):
        children, static = self._split()
        return [v for _, v in children], (tuple(k for k, _ in children), tuple(static))

    @classmethod
    def _unflatten(cls, aux, values):
        keys, static = aux
        obj = object.__new__(cls)
        for k, v in static:
            object.__setattr__(obj, k, v)
        for k, v in zip(keys, values):
            object.__setattr__(obj, k, v)
        return obj

    # -- training mode -------------------------------------------------------
    def train(self, mode: bool = True):
        """Set training mode on this module and every sub-module; returns self."""
        for m in self.modules():
            if "training" in vars(m):
                object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        """Evaluation mode (``train(False)``); returns self."""
        return self.train(False)

    def modules(self):
        """This module and all sub-modules, depth first."""
        yield self
        for _, v in vars(self).items():
            for leaf in _iter_modules(v):
                yield from leaf.modules()

    # -- printing ------------------------------------------------------------
    def extra_repr(self) -> str:
        """The constructor arguments shown by ``repr``; layers override it."""
        return ""

    def __repr__(self):
        subs = [(k, v) for k, v in vars(self).items() if isinstance(v, Module)]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not subs:
            return head + ")"
        lines = [head]
        for k, v in subs:
            body = repr(v).replace("\n", "\n  ")
            lines.append(f"  ({k}): {body}")
        return "\n".join(lines) + "\n)"


def _iter_modules(v):
    if isinstance(v, Module):
        yield v
    elif isinstance(v, (list, tuple)):
        for e in v:
            yield from _iter_modules(e)
    elif isinstance(v, dict):
        for e in v.values():
            yield from _iter_modules(e)
