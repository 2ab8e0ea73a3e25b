"""The functional API: the names and keyword names here are a contract.

Every function is jitted, works under ``jax.jit``, ``jax.vmap`` and ``jax.grad``,
and returns the input's dtype for float16, bfloat16, float32 and float64
(see ``impl._core`` for the dtype policy; ``linear`` and ``conv2d`` return the
promoted dtype of their operands).

Layers (docs/layers.md): ``linear`` (weight ``(in, out)``) and ``conv2d``
(NHWC input, HWIO kernel) follow the matmul precision policy of
``impl._linear`` (``Precision.HIGHEST``, float32 or float64 accumulation, one
final rounding); ``max_pool2d`` is exact and ``avg_pool2d`` correctly rounded
(``impl._pooling``); ``dropout(x, p, key)`` drops with probability ``p``.
"""

from ._activations import *  # noqa: F403  (its __all__: every activation of the LAYERS table)
from ._batch_norm import batch_norm as batch_norm
from ._dropout import dropout as dropout
from ._linear import conv2d as conv2d
from ._linear import linear as linear
from ._pooling import avg_pool2d as avg_pool2d
from ._pooling import max_pool2d as max_pool2d
from ._reshape import flatten as flatten
from ._reductions import group_norm as group_norm
from ._reductions import instance_norm as instance_norm
from ._reductions import layer_norm as layer_norm
from ._reductions import log_softmax as log_softmax
from ._reductions import rms_norm as rms_norm
from ._reductions import softmax as softmax
