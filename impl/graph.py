"""``impl.graph.Node``: the base class for composing layers, under the tutorial's name.

It is ``impl.nn.Module`` (a mutable pytree; see ``impl/_module.py``), so a model
written as ``class ModernCNN(impl.graph.Node)`` goes through ``jax.jit``,
``jax.grad`` and ``jax.vmap`` and prints as a tree.
"""

from ._module import Module as Node

__all__ = ["Node"]
