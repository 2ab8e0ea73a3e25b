"""The functional contract: one stub per op, with its signature, defaults and conventions.

A specification with no implementation (as array-api-tests keeps its signature
stubs apart from any library): ``impl.functional``, the adapters of
``adapters/`` and any module passed with ``--impl`` are checked against these
signatures (``tests/test_contract.py``), and the suite's cases call the ops as
written here.  The stubs return nothing; never call them.

For every op:

* ``x`` comes first, positionally: a JAX array of float16, bfloat16, float32
  or float64 (float64 only with x64 enabled by the caller), of any shape
  including ``()`` and ``(0,)``, possibly committed to a device or sharded.
  Integer inputs are promoted to JAX's default float dtype.
* The op's parameters are keywords with the names and defaults below; they
  arrive as Python floats, ints and bools.  Parameter arrays (``weight``,
  ``bias``, running statistics) are float32 for float16/bfloat16/float32
  inputs and float64 for float64 ones.
* The result has the shape and dtype of ``x`` (``linear`` and ``conv2d``: the
  promoted dtype of their operands).  Errors are signed, in ulps of that
  dtype, against the exact result on the exact input; parameters are taken at
  their exact binary64 values (``0.01`` is 0.01000000000000000020816...).
* Signed zeros, NaN and infinities follow the IEEE results of the defining
  formula; derivatives at kinks and at ±inf are in ``docs/conventions.md``.
* An op the module cannot compute for a case raises ``NotImplementedError``
  with the reason (the case is skipped, saying so); a missing op is "not
  provided".

The normalizations are channels-last (features on the last axis,
``(N, *spatial, C)``).
"""

from __future__ import annotations

import inspect

__all__ = ["OPS", "REQUIRED", "signature", "defaults", "outputs"]


# ---- elementwise activations ------------------------------------------------------------

def relu(x):
    """``max(x, 0)``; +0 for x <= 0; ``relu'(0) = 0``."""


def relu6(x):
    """``min(max(x, 0), 6)``; +0 for x <= 0; derivative 0 at both kinks (0 and 6)."""


def leaky_relu(x, negative_slope=0.01):
    """``x`` for x >= 0 (so -0 -> -0), ``negative_slope * x`` below, rounded once;
    ``leaky_relu'(0) = negative_slope``."""


def elu(x, alpha=1.0):
    """``x`` for x > 0, ``alpha * expm1(x)`` for x <= 0 (``alpha >= 0``); -0 -> -0, -inf -> -alpha;
    ``elu'(0) = alpha``."""


def celu(x, alpha=1.0):
    """``max(0, x) + min(0, alpha * expm1(x / alpha))`` (``alpha > 0``); ``celu'(0) = 1``."""


def selu(x):
    """``scale * elu(x, alpha)`` with scale = 1.0507009873554804934 and alpha = 1.6732632423543772848
    (their binary64 values); ``selu'(0) = scale * alpha``."""


def gelu(x, approximate=False):
    """``x/2 * erfc(-x/sqrt(2))`` (False, the exact erf form) or ``x/2 * (1 + tanh(u))`` with
    ``u = sqrt(2/pi) * (x + 0.044715 x**3)`` (True, the tanh form); -inf -> -0."""


def silu(x):
    """``x * sigmoid(x) = x / (1 + exp(-x))`` (swish); -inf -> -0."""


def mish(x):
    """``x * tanh(softplus(x))``; -inf -> -0."""


def sigmoid(x):
    """``1 / (1 + exp(-x))``; -inf -> +0, +inf -> 1."""


def log_sigmoid(x):
    """``-log1p(exp(-x))``; -inf -> -inf, +inf -> -0."""


def tanh(x):
    """Hyperbolic tangent; odd, ±inf -> ±1, -0 -> -0."""


def softplus(x):
    """``log1p(exp(x))``; -inf -> +0, +inf -> +inf."""


def hard_sigmoid(x):
    """``relu6(x + 3) / 6``; +0 for x <= -3, 1 for x >= 3; derivative 0 at both kinks."""


def hard_swish(x):
    """``x * relu6(x + 3) / 6``; -0 for x <= -3; derivative 0 at -3 and 1 at 3."""


def softsign(x):
    """``x / (1 + |x|)``; ±inf -> ±1, -0 -> -0."""


def hard_tanh(x, min_val=-1.0, max_val=1.0):
    """``min(max(x, min_val), max_val)`` (``min_val < max_val``; PyTorch's Hardtanh): ``x``
    between the bounds (-0 -> -0), else the bound; derivative 0 at both kinks."""


# ---- softmax and normalizations ----------------------------------------------------------

def softmax(x, axis=-1):
    """``exp(x_j) / sum_i exp(x_i)`` along ``axis``."""


def log_softmax(x, axis=-1):
    """``x_j - log(sum_i exp(x_i))`` along ``axis``."""


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """``(x - mean) / sqrt(var + eps) * weight + bias`` over the trailing ``normalized_shape``
    axes (biased variance)."""


def rms_norm(x, normalized_shape, weight=None, eps=1e-6):
    """``x / sqrt(mean(x**2) + eps) * weight`` over the trailing ``normalized_shape`` axes."""


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    """Layer norm over each of ``num_groups`` groups of channels (and every spatial axis) of
    ``(N, *spatial, C)``; ``weight``/``bias`` per channel."""


def instance_norm(x, weight=None, bias=None, eps=1e-5):
    """Normalization of each channel of each sample of ``(N, *spatial, C)`` over its spatial axes."""


def batch_norm(x, running_mean, running_var, weight=None, bias=None, *, training=False, momentum=0.1, eps=1e-5,
               axis_name=None):
    """Batch normalization over every axis but the last; returns ``(y, new_running_mean,
    new_running_var)`` with PyTorch's conventions: ``new = (1 - momentum) * old + momentum *
    batch``, the batch's unbiased variance in the update and its biased variance in ``y``,
    ``eps`` added to the variance inside the square root.  Eval mode normalizes with the
    running statistics and returns them unchanged; without them, ``(y, None, None)``."""


# ---- layers ----------------------------------------------------------------------------

def linear(x, weight, bias=None):
    """``x @ weight + bias`` over the last axis of ``x``; ``weight`` is ``(in, out)``."""


def conv2d(x, weight, bias=None, stride=1, padding="SAME", dilation=1, groups=1):
    """2-D cross-correlation (no kernel flip), NHWC input, HWIO kernel."""


def max_pool2d(x, kernel_size, strides=None, padding="VALID"):
    """Maximum over ``kernel_size`` windows of an NHWC input (exact)."""


def avg_pool2d(x, kernel_size, strides=None, padding="VALID"):
    """Mean over ``kernel_size`` windows of an NHWC input, correctly rounded."""


def flatten(x, start_axis=1):
    """Merge the axes ``start_axis, ..., -1`` of ``x`` into one (row-major)."""


def dropout(x, p, key, training=True):
    """Inverted dropout: drop each element with probability ``p`` (``0 <= p < 1``), scale the
    kept ones by ``1 / (1 - p)``; the identity when ``training`` is False."""


REQUIRED = inspect.Parameter.empty  # the "default" of a parameter without one

# what an op returns, by name: one array ``y`` unless listed here
_OUTPUTS = {"batch_norm": ("y", "running_mean", "running_var")}

OPS = tuple(n for n, f in globals().items() if inspect.isfunction(f) and not n.startswith("_")
            and f.__module__ == __name__ and n not in __all__)


def signature(name: str) -> inspect.Signature:
    """The contract's signature of ``name``."""
    if name not in OPS:
        raise KeyError(f"{name!r} is not an op of the contract; its ops: {', '.join(OPS)}")
    return inspect.signature(globals()[name])


def defaults(name: str) -> dict:
    """The parameters of ``name`` after ``x`` that have names, with their defaults (``REQUIRED``
    for a required one), in the order of the signature."""
    ps = list(signature(name).parameters.values())[1:]
    return {p.name: p.default for p in ps if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def outputs(name: str) -> tuple[str, ...]:
    """The names of what ``name`` returns: ``("y",)``, or batch_norm's three."""
    signature(name)
    return _OUTPUTS.get(name, ("y",))
