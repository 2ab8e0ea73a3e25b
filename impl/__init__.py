"""Vetted neural-network layers in JAX, accurate to the last bit or close to it.

``impl.functional`` holds the functional API, ``impl.nn`` the layer classes.
``impl`` never imports ``reference``: it is measured against it by the tests.
"""

from . import functional as functional
from . import nn as nn

__version__ = "0.1.0"
