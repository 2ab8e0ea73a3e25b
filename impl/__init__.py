"""Vetted neural-network layers in JAX, accurate to the last bit or close to it.

``impl.functional`` holds the functional API, ``impl.nn`` the layer classes,
``impl.random`` seeded randomness for scripts (``seed``, ``randn``),
``impl.numerics`` the float64-and-round-once step the ops share (for variants of them),
``impl.graph.Node`` the base class for composing layers (``impl.nn.Module``).
``impl`` never imports ``reference``: it is measured against it by the tests.
"""

from . import functional as functional
from . import graph as graph
from . import nn as nn
from . import numerics as numerics
from . import random as random

__version__ = "0.1.0"
