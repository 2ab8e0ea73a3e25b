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

import copy
import inspect

__all__ = ["OPS", "ACTIVATIONS", "REQUIRED", "signature", "defaults", "outputs", "checks"]


# ---- what the suite checks of an elementwise activation ----------------------------------
#
# ``@_checked(...)`` on a stub below is the op's whole suite record apart from its references
# (reference/) and its second oracle (tools/mpfr_oracle.py): the registry
# (tools/registry/activations.py) builds its ``Op`` from it and nothing else names the op.
#
# * ``layer``: the class of ``impl.nn`` (and of any module under test) that wraps the op;
# * ``golden``: the parameter sets with stored golden data, ``(params, what)`` each;
# * ``sweeps``: more parameter sets, checked against live mpmath, not stored;
# * ``special``: exact results at special inputs, ``{x token: expected token}``, for every
#   golden parameter set (tokens: ``tools.special_values.resolve``; ``"x"`` is the input);
# * ``kinks``: where the op or its derivative jumps (the golden inputs hold their neighbours;
#   the derivative there is a convention, ``docs/conventions.md``);
# * ``properties``: ``"monotone"`` (non-decreasing) and ``"odd"``, checked on random inputs;
# * ``second_order``: the second derivative has golden data too;
# * ``exact``: the orders (0 the value, 1 the first derivative) whose float64 result is one
#   comparison, select or rounded product, so float64 is held to correct rounding there;
# * ``rejects``: parameters outside the op's domain, ``(keywords, exception, message)``: the
#   call ``op(x, keywords)`` raises ``exception`` with a message matching ``message`` (a
#   regular expression pinning the parameter, the value received and what to pass).
#   ``impl``'s input-rule tests (tests/input_rules.py) check each; other modules under test
#   are not held to them.

_CHECKED: dict = {}
_SAT_ODD = {"-0": -0.0, "0": 0.0, "nan": "nan"}  # odd at zero: the sign of a zero input is kept
_MONO, _ODD = ("monotone",), ("monotone", "odd")


def _checked(*, layer, golden, special, kinks=(), properties=(), sweeps=(), second_order=False, exact=(),
             rejects=()):
    def mark(f):
        _CHECKED[f.__name__] = {"layer": layer, "golden": golden, "special": special, "kinks": kinks,
                                "properties": frozenset(properties), "sweeps": sweeps,
                                "second_order": second_order, "exact": exact, "rejects": rejects}
        return f
    return mark


# ---- elementwise activations ------------------------------------------------------------

@_checked(layer="ReLU", golden=(({}, "max(x, 0)"),), exact=(0, 1), kinks=(0.0,), properties=_MONO,
          special={"-inf": 0.0, "-max": 0.0, "-tiny": 0.0, "-0": 0.0, "0": 0.0, "tiny": "x", "max": "x",
                   "inf": "inf", "nan": "nan", "-1": 0.0, "1": 1.0})
def relu(x):
    """``max(x, 0)``; +0 for x <= 0; ``relu'(0) = 0``."""


@_checked(layer="ReLU6", golden=(({}, "min(max(x, 0), 6)"),), exact=(0, 1), kinks=(0.0, 6.0),
          properties=_MONO,
          special={"-inf": 0.0, "-max": 0.0, "-0": 0.0, "0": 0.0, "6": 6.0, "max": 6.0, "inf": 6.0,
                   "nan": "nan", "-tiny": 0.0})
def relu6(x):
    """``min(max(x, 0), 6)``; +0 for x <= 0; derivative 0 at both kinks (0 and 6)."""


@_checked(layer="LeakyReLU", golden=(({"negative_slope": 0.01}, "default slope 0.01"),
                                  ({"negative_slope": 0.1}, "the tutorial's slope 0.1")),
          exact=(0, 1), kinks=(0.0,), properties=_MONO,
          sweeps=({"negative_slope": 0.2}, {"negative_slope": 0.0}, {"negative_slope": 3.0}),
          special={"-inf": "-inf", "-0": -0.0, "0": 0.0, "inf": "inf", "max": "x", "nan": "nan",
                   "-tiny": -0.0, "tiny": "x"},
          rejects=(('negative_slope=float("nan")', ValueError, "negative_slope must be finite, got nan; pass a finite float"),
                   ('negative_slope="a"', TypeError, "negative_slope must be a Python float, got 'a' \\(str\\); pass a number")))
def leaky_relu(x, negative_slope=0.01):
    """``x`` for x >= 0 (so -0 -> -0), ``negative_slope * x`` below, rounded once;
    ``leaky_relu'(0) = negative_slope``."""


@_checked(layer="ELU", golden=(({}, "alpha * expm1(x) for x <= 0"),), second_order=True, kinks=(0.0,),
          properties=_MONO, sweeps=({"alpha": 0.5}, {"alpha": 2.0}, {"alpha": 0.25}),
          special={"-inf": -1.0, "-max": -1.0, **_SAT_ODD, "inf": "inf", "max": "x", "tiny": "x",
                   "-tiny": "x"},
          rejects=(("alpha=-1.0", ValueError, "alpha must be >= 0, got -1.0; pass a non-negative float"),
                   ('alpha=float("nan")', ValueError, "alpha must be finite, got nan; pass a finite float")))
def elu(x, alpha=1.0):
    """``x`` for x > 0, ``alpha * expm1(x)`` for x <= 0 (``alpha >= 0``); -0 -> -0, -inf -> -alpha;
    ``elu'(0) = alpha``."""


@_checked(layer="CELU", golden=(({"alpha": 2.0}, "alpha * expm1(x / alpha) for x <= 0"),), second_order=True,
          kinks=(0.0,), properties=_MONO, sweeps=({"alpha": 0.5}, {"alpha": 1.0}, {"alpha": 3.0}),
          special={"-inf": -2.0, "-max": -2.0, **_SAT_ODD, "inf": "inf", "max": "x", "tiny": "x"},
          rejects=(("alpha=0.0", ValueError, "alpha must be > 0, got 0.0; pass a positive float"),
                   ('alpha=float("inf")', ValueError, "alpha must be finite, got inf; pass a finite float")))
def celu(x, alpha=1.0):
    """``max(0, x) + min(0, alpha * expm1(x / alpha))`` (``alpha > 0``); ``celu'(0) = 1``."""


@_checked(layer="SELU", golden=(({}, "scale * alpha * expm1(x) for x <= 0"),), second_order=True,
          kinks=(0.0,), properties=_MONO,
          special={**_SAT_ODD, "inf": "inf", "max": "inf", "-inf": "selu(-inf)"})
def selu(x):
    """``scale * elu(x, alpha)`` with scale = 1.0507009873554804934 and alpha = 1.6732632423543772848
    (their binary64 values); ``selu'(0) = scale * alpha``."""


@_checked(layer="GELU", golden=(({}, "x/2 erfc(-x/sqrt 2)"), ({"approximate": True}, "tanh form with 0.044715")),
          second_order=True, sweeps=({"approximate": False},),
          special={"-inf": -0.0, "-max": -0.0, **_SAT_ODD, "inf": "inf", "max": "x"},
          rejects=(('approximate="tanh"', TypeError, "approximate must be a bool, got 'tanh'; pass True or False"),))
def gelu(x, approximate=False):
    """``x/2 * erfc(-x/sqrt(2))`` (False, the exact erf form) or ``x/2 * (1 + tanh(u))`` with
    ``u = sqrt(2/pi) * (x + 0.044715 x**3)`` (True, the tanh form); -inf -> -0."""


@_checked(layer="SiLU", golden=(({}, "x / (1 + exp(-x))"),), second_order=True,
          special={"-inf": -0.0, "-max": -0.0, **_SAT_ODD, "inf": "inf", "max": "x"})
def silu(x):
    """``x * sigmoid(x) = x / (1 + exp(-x))`` (swish); -inf -> -0."""


@_checked(layer="Mish", golden=(({}, "x tanh(softplus(x))"),), second_order=True,
          special={"-inf": -0.0, "-max": -0.0, **_SAT_ODD, "inf": "inf", "max": "x"})
def mish(x):
    """``x * tanh(softplus(x))``; -inf -> -0."""


@_checked(layer="Sigmoid", golden=(({}, "1 / (1 + exp(-x))"),), second_order=True, properties=_MONO,
          special={"-inf": 0.0, "-max": 0.0, "-0": 0.5, "0": 0.5, "tiny": 0.5, "-tiny": 0.5, "inf": 1.0,
                   "max": 1.0, "nan": "nan"})
def sigmoid(x):
    """``1 / (1 + exp(-x))``; -inf -> +0, +inf -> 1."""


@_checked(layer="LogSigmoid", golden=(({}, "-log1p(exp(-x))"),), second_order=True, properties=_MONO,
          special={"-inf": "-inf", "-max": "x", "inf": -0.0, "max": -0.0, "0": "-ln2", "-0": "-ln2",
                   "nan": "nan"})
def log_sigmoid(x):
    """``-log1p(exp(-x))``; -inf -> -inf, +inf -> -0."""


@_checked(layer="Tanh", golden=(({}, "tanh"),), second_order=True, properties=_ODD,
          special={"-inf": -1.0, "-max": -1.0, **_SAT_ODD, "inf": 1.0, "max": 1.0, "tiny": "x", "-tiny": "x"})
def tanh(x):
    """Hyperbolic tangent; odd, ±inf -> ±1, -0 -> -0."""


@_checked(layer="Softplus", golden=(({}, "log1p(exp(x))"),), second_order=True, properties=_MONO,
          special={"-inf": 0.0, "-max": 0.0, "inf": "inf", "max": "x", "0": "ln2", "-0": "ln2", "nan": "nan"})
def softplus(x):
    """``log1p(exp(x))``; -inf -> +0, +inf -> +inf."""


@_checked(layer="Hardsigmoid", golden=(({}, "relu6(x + 3) / 6"),), exact=(1,), kinks=(-3.0, 3.0),
          properties=_MONO,
          special={"-inf": 0.0, "-max": 0.0, "-3": 0.0, "-0": 0.5, "0": 0.5, "3": 1.0, "max": 1.0, "inf": 1.0,
                   "nan": "nan"})
def hard_sigmoid(x):
    """``relu6(x + 3) / 6``; +0 for x <= -3, 1 for x >= 3; derivative 0 at both kinks."""


@_checked(layer="Hardswish", golden=(({}, "x relu6(x + 3) / 6"),), kinks=(-3.0, 3.0),
          special={"-inf": -0.0, "-max": -0.0, "-3": -0.0, **_SAT_ODD, "3": 3.0, "max": "x", "inf": "inf"})
def hard_swish(x):
    """``x * relu6(x + 3) / 6``; -0 for x <= -3; derivative 0 at -3 and 1 at 3."""


@_checked(layer="Softsign", golden=(({}, "x / (1 + |x|)"),), kinks=(0.0,), properties=_ODD,
          special={"-inf": -1.0, "-max": -1.0, **_SAT_ODD, "inf": 1.0, "max": 1.0})
def softsign(x):
    """``x / (1 + |x|)``; ±inf -> ±1, -0 -> -0."""


@_checked(layer="Hardtanh", golden=(({}, "min(max(x, -1), 1)"),), exact=(0, 1), kinks=(-1.0, 1.0),
          properties=_ODD,
          sweeps=({"min_val": -2.0, "max_val": 2.0}, {"min_val": 0.0, "max_val": 6.0},
                  {"min_val": -0.1, "max_val": 0.25}),
          special={"-inf": -1.0, "-max": -1.0, "-1": -1.0, **_SAT_ODD, "tiny": "x", "-tiny": "x", "1": 1.0,
                   "max": 1.0, "inf": 1.0},
          rejects=(("min_val=1.0, max_val=-1.0", ValueError,
                    "hard_tanh: min_val must be below max_val, got min_val=1.0, max_val=-1.0; pass min_val < max_val"),))
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
ACTIVATIONS = tuple(n for n in OPS if n in _CHECKED)  # the elementwise activations, in the order above


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


def checks(name: str) -> dict:
    """What the suite checks of the activation ``name`` (the fields of ``_checked`` above:
    ``layer``, ``golden``, ``sweeps``, ``special``, ``kinks``, ``properties``, ``second_order``,
    ``exact``, ``rejects``); a deep copy each call, so a caller cannot change the contract."""
    signature(name)
    if name not in _CHECKED:
        raise KeyError(f"{name!r} is not an elementwise activation of the contract; they are: "
                       f"{', '.join(ACTIVATIONS)}")
    return copy.deepcopy(_CHECKED[name])
