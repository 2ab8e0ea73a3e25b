"""The input rules: one table of every validation rule of impl's layers and ops,
with a bad input, the exception it must raise and the message pinned.

This table drives ``tests/test_input_rules.py`` (one test per row) and
``docs/input_rules.md`` (regenerate with ``python -m tests.input_rules``; a test
checks that the page matches the table).  Messages name the parameter, the
value received and the fix; ``match`` pins the part of the message that says
so.  No rule uses ``assert`` (a test checks that ``impl/`` has none), and no
bad input is silently broadcast into a different meaning.

Each row: ``Rule(section, what, code, exception, match)``; ``code`` is Python
evaluated with ``F`` (impl.functional), ``nn`` (impl.nn), ``impl_random``
(impl.random), ``jax``, ``jnp``, ``np``, ``math`` and ``X4x10`` (float32
zeros of shape (4, 10)) in scope.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Rule(NamedTuple):
    section: str
    what: str
    code: str
    exception: type
    match: str


RULES = [
    Rule('kernels, windows and padding', 'conv2d kernel larger than the padded input',
         'F.conv2d(jnp.ones((1, 2, 2, 1)), jnp.ones((3, 3, 1, 1)), padding="VALID")',
         ValueError, 'conv2d: the kernel size 3 is larger than the padded input along height \\(2 \\+ padding 0 \\+ 0 = 2\\)'),
    Rule('kernels, windows and padding', 'conv2d dilated kernel larger than the input',
         'F.conv2d(jnp.ones((1, 4, 9, 1)), jnp.ones((2, 2, 1, 1)), padding="VALID", dilation=4)',
         ValueError, 'kernel size 2 with dilation 4 \\(effective size 5\\) is larger than the padded input along height'),
    Rule('kernels, windows and padding', 'max_pool2d window larger than the input',
         'F.max_pool2d(jnp.ones((1, 4, 1, 1)), 2)',
         ValueError, 'max_pool2d: the kernel size 2 .* along width'),
    Rule('kernels, windows and padding', 'bad padding string',
         'F.conv2d(jnp.ones((1, 4, 4, 1)), jnp.ones((3, 3, 1, 1)), padding="FULL")',
         ValueError, "conv2d: padding must be 'SAME', 'VALID', an int, \\(ph, pw\\) or .* got 'FULL'"),
    Rule('kernels, windows and padding', 'bad padding string on a pool',
         'nn.AvgPool2d(2, padding="same-ish")',
         ValueError, "AvgPool2d: padding must be 'SAME', 'VALID'"),
    Rule('kernels, windows and padding', 'negative padding',
         'F.avg_pool2d(jnp.ones((1, 4, 4, 1)), 2, padding=-1)',
         ValueError, 'avg_pool2d: padding must be >= 0 along both axes, got -1'),
    Rule('kernels, windows and padding', 'pool padding as large as the window',
         'F.avg_pool2d(jnp.ones((1, 4, 4, 1)), 2, strides=1, padding=2)',
         ValueError, 'avg_pool2d: padding \\(2, 2\\) along height must be smaller than the kernel size 2 on each side'),
    Rule('kernels, windows and padding', 'pool layer padding as large as the window',
         'nn.MaxPool2d(3, padding=((0, 0), (1, 3)))',
         ValueError, 'MaxPool2d: padding \\(1, 3\\) along width must be smaller than the kernel size 3'),
    Rule('kernels, windows and padding', 'zero stride',
         'F.conv2d(jnp.ones((1, 4, 4, 1)), jnp.ones((3, 3, 1, 1)), stride=0)',
         ValueError, 'conv2d: stride must be >= 1 along both axes, got 0'),
    Rule('kernels, windows and padding', 'stride of three values',
         'nn.MaxPool2d(2, strides=(1, 2, 2))',
         ValueError, 'MaxPool2d: strides must be an int or a pair of ints \\(height, width\\), got \\(1, 2, 2\\)'),
    Rule('types', 'float stride',
         'F.max_pool2d(jnp.ones((1, 4, 4, 1)), 2, strides=1.5)',
         TypeError, 'max_pool2d: strides must be an int or a pair of ints, got 1.5'),
    Rule('types', 'string kernel size',
         'nn.Conv2d(3, 4, kernel_size="3")',
         TypeError, "Conv2d: kernel_size must be an int or a pair of ints, got '3'"),
    Rule('parameter values', 'dropout p = 1',
         'F.dropout(jnp.ones(3), 1.0, jax.random.key(0))',
         ValueError, 'dropout: p is the probability of DROPPING an element and must be in \\[0, 1\\), got 1.0'),
    Rule('parameter values', 'dropout p < 0',
         'nn.Dropout(p=-0.1)',
         ValueError, 'Dropout: p is the probability of DROPPING an element and must be in \\[0, 1\\), got -0.1'),
    Rule('parameter values', 'dropout p nan',
         'nn.Dropout(p=float("nan"))',
         ValueError, 'p must be finite, got nan'),
    Rule('parameter values', 'dropout without a key',
         'F.dropout(jnp.ones(3), 0.5, None)',
         ValueError, 'dropout: key is None but training=True and p > 0'),
    Rule('kernels, windows and padding', 'Conv2d wrong input channels',
         'nn.Conv2d(3, 8, 3, key=jax.random.key(0))(jnp.ones((2, 3, 16, 16)))',
         ValueError, 'Conv2d\\(3, 8, .*\\) expects NHWC input with x.shape\\[-1\\] == in_channels == 3, got x.shape = \\(2, 3, 16, 16\\); .* jnp.moveaxis\\(x, 1, -1\\)'),
    Rule('kernels, windows and padding', 'conv2d kernel and input channels disagree',
         'F.conv2d(jnp.ones((1, 4, 4, 5)), jnp.ones((3, 3, 4, 2)))',
         ValueError, 'conv2d: x has 5 channels .* expects weight.shape\\[2\\] \\* groups = 4'),
    Rule('kernels, windows and padding', 'groups not dividing the channels',
         'nn.Conv2d(6, 4, 3, groups=4)',
         ValueError, 'Conv2d: groups = 4 must divide in_channels = 6 and out_channels = 4'),
    Rule('kernels, windows and padding', 'conv2d on a 2-D input',
         'F.conv2d(jnp.ones((4, 4)), jnp.ones((3, 3, 1, 1)))',
         ValueError, 'conv2d: x must be NHWC, \\(N, H, W, C\\) or \\(H, W, C\\) for one image, got shape \\(4, 4\\)'),
    Rule('shapes and sizes', 'Linear wrong in_features',
         'nn.Linear(8192, 256, key=jax.random.key(0))(jnp.ones((4, 100)))',
         ValueError, 'Linear\\(in_features=8192, out_features=256, bias=True\\) expects x.shape\\[-1\\] == in_features == 8192, got x.shape = \\(4, 100\\)'),
    Rule('shapes and sizes', 'linear with a PyTorch-layout weight',
         'F.linear(jnp.ones((2, 3)), jnp.ones((4, 3)))',
         ValueError, 'linear: x.shape\\[-1\\] must equal weight.shape\\[0\\] = in_features = 4, got x.shape = \\(2, 3\\)'),
    Rule('shapes and sizes', 'Linear with zero features',
         'nn.Linear(0, 3)',
         ValueError, 'Linear: in_features must be >= 1, got 0'),
    Rule('types', 'Linear with a float size',
         'nn.Linear(4.0, 3)',
         TypeError, 'Linear: in_features must be an int, got 4.0 \\(float\\)'),
    Rule('shapes and sizes', 'flatten axis out of range',
         'F.flatten(jnp.ones((2, 3)), 2)',
         ValueError, 'flatten: start_axis must be in \\[-2, 1\\] for x of shape \\(2, 3\\), got 2'),
    Rule('types', 'seed not an int',
         'impl_random.seed(1.5)',
         TypeError, 'seed must be a Python int, got 1.5'),
    Rule('types', 'complex input',
         'F.linear(jnp.ones((2, 3), jnp.complex64), jnp.ones((3, 2)))',
         TypeError, 'x must be a real floating array, got dtype complex64'),
    Rule('shapes and sizes', 'LayerNorm((10,)) on a (4, 12) input',
         'nn.LayerNorm(normalized_shape=(10,))(np.zeros((4, 12), np.float32))',
         ValueError, 'LayerNorm\\(normalized_shape=\\(10,\\)\\) expects an input whose last 1 axis is \\(10,\\), got shape \\(4, 12\\)'),
    Rule('shapes and sizes', 'BatchNorm2d(64) on 32 channels',
         'nn.BatchNorm2d(64)(np.zeros((8, 4, 4, 32), np.float32))',
         ValueError, 'BatchNorm2d\\(64\\) expects 64 features on the last axis, got input of shape \\(8, 4, 4, 32\\) with 32'),
    Rule('shapes and sizes', 'BatchNorm2d on a 2-D input',
         'nn.BatchNorm2d(64)(np.zeros((8, 64), np.float32))',
         ValueError, 'BatchNorm2d\\(64\\) expects a 4-D input \\(N, H, W, C\\), got shape \\(8, 64\\)'),
    Rule('shapes and sizes', 'GroupNorm(num_groups=4, num_channels=18)',
         'nn.GroupNorm(num_groups=4, num_channels=18)',
         ValueError, 'num_channels=18 is not divisible by num_groups=4; pass a num_groups that divides 18 \\(one of \\[1, 2, 3, 6, 9, 18\\]\\)'),
    Rule('shapes and sizes', 'group_norm with groups not dividing the channels',
         'F.group_norm(np.zeros((2, 3, 18)), 4)',
         ValueError, 'the input has 18 channels .* num_groups=4 does not divide'),
    Rule('parameter values', 'layer_norm negative eps',
         'F.layer_norm(X4x10, 10, eps=-1e-5)',
         ValueError, 'eps must be >= 0, got -1e-05'),
    Rule('parameter values', 'BatchNorm1d eps nan',
         'nn.BatchNorm1d(10, eps=float("nan"))',
         ValueError, 'eps must be finite, got nan'),
    Rule('parameter values', 'rms_norm eps inf',
         'F.rms_norm(X4x10, 10, eps=math.inf)',
         ValueError, 'eps must be finite, got inf'),
    Rule('parameter values', 'BatchNorm1d momentum above 1',
         'nn.BatchNorm1d(10, momentum=1.5)',
         ValueError, 'momentum must be in \\[0, 1\\], got 1.5'),
    Rule('parameter values', 'batch_norm negative momentum',
         'F.batch_norm(X4x10, np.zeros(10), np.ones(10), training=True, momentum=-0.1)',
         ValueError, 'momentum must be in \\[0, 1\\], got -0.1'),
    Rule('parameter values', 'BatchNorm2d momentum nan',
         'nn.BatchNorm2d(3, momentum=float("nan"))',
         ValueError, 'momentum must be finite, got nan'),
    Rule('shapes and sizes', 'softmax axis out of range',
         'F.softmax(X4x10, axis=2)',
         ValueError, 'axis=2 is out of range for an input of rank 2; pass an axis in \\[-2, 1\\]'),
    Rule('shapes and sizes', 'LogSoftmax negative axis out of range',
         'nn.LogSoftmax(axis=-3)(X4x10)',
         ValueError, 'axis=-3 is out of range'),
    Rule('types', 'Softmax float axis',
         'nn.Softmax(axis=1.0)',
         TypeError, 'axis must be an int, got 1.0 \\(float\\)'),
    Rule('shapes and sizes', 'layer_norm weight of the wrong shape',
         'F.layer_norm(X4x10, 10, weight=np.ones(9))',
         ValueError, 'weight has shape \\(9,\\), expected \\(10,\\) \\(normalized_shape\\)'),
    Rule('shapes and sizes', 'batch_norm bias of the wrong shape',
         'F.batch_norm(X4x10, np.zeros(10), np.ones(10), bias=np.ones((10, 1)))',
         ValueError, 'bias has shape \\(10, 1\\), expected \\(10,\\)'),
    Rule('shapes and sizes', 'batch_norm running_mean of the wrong shape',
         'F.batch_norm(X4x10, np.zeros(9), np.ones(10))',
         ValueError, 'running_mean has shape \\(9,\\), expected \\(10,\\)'),
    Rule('shapes and sizes', 'batch_norm with only one running statistic',
         'F.batch_norm(X4x10, np.zeros(10), None, training=True)',
         ValueError, 'running_mean and running_var must both be arrays or both be None'),
    Rule('shapes and sizes', 'batch_norm in eval mode without running statistics',
         'F.batch_norm(X4x10, None, None)',
         ValueError, 'training=False needs running_mean and running_var'),
    Rule('shapes and sizes', 'group_norm weight of the wrong shape',
         'F.group_norm(np.zeros((2, 3, 8)), 2, weight=np.ones(4))',
         ValueError, 'weight has shape \\(4,\\), expected \\(8,\\)'),
    Rule('shapes and sizes', 'instance_norm on a 2-D input',
         'F.instance_norm(X4x10)',
         ValueError, 'instance_norm expects an input of rank >= 3 \\(N, \\*spatial, C\\), got shape \\(4, 10\\)'),
    Rule('shapes and sizes', 'InstanceNorm1d(8) on 4 features',
         'nn.InstanceNorm1d(8)(np.zeros((2, 5, 4)))',
         ValueError, 'InstanceNorm1d\\(8\\) expects 8 features on the last axis'),
    Rule('shapes and sizes', 'BatchNorm1d training on one value per channel',
         'nn.BatchNorm1d(10)(np.ones((1, 10), np.float32))',
         ValueError, 'needs more than 1 value per channel'),
    Rule('shapes and sizes', 'BatchNorm1d zero features',
         'nn.BatchNorm1d(num_features=0)',
         ValueError, 'num_features must be a positive int, got 0'),
    Rule('shapes and sizes', 'LayerNorm empty normalized_shape',
         'nn.LayerNorm(normalized_shape=())',
         ValueError, 'normalized_shape must be a non-empty tuple of positive ints, got \\(\\)'),
    Rule('types', 'softmax complex input',
         'F.softmax(np.ones(3, np.complex64))',
         TypeError, 'x must be a real floating array'),
    Rule('types', 'functional_call on a plain function',
         'nn.functional_call(lambda x: x, 1.0)',
         TypeError, 'functional_call expects an impl.nn Module, got function'),
    Rule('types', 'batch_norm training a string',
         'F.batch_norm(X4x10, np.zeros(10), np.ones(10), training="yes")',
         TypeError, "training must be a bool, got 'yes'"),
    Rule('types', 'activation complex input',
         'F.gelu(jnp.ones(3, jnp.complex64))',
         TypeError, 'x must be a real floating array, got dtype complex64'),
    Rule('types', 'leaky_relu negative_slope a string, passed by position',
         'F.leaky_relu(jnp.ones(3), "a")',
         TypeError, "negative_slope must be a Python float, got 'a' \\(str\\); pass a number"),
    Rule('parameter values', 'LeakyReLU negative_slope inf',
         'nn.LeakyReLU(negative_slope=float("inf"))',
         ValueError, 'negative_slope must be finite, got inf'),
    Rule('parameter values', 'CELU alpha negative',
         'nn.CELU(alpha=-2)',
         ValueError, 'alpha must be > 0, got -2'),
    Rule('types', 'GELU approximate a string',
         'nn.GELU(approximate="none")',
         TypeError, "approximate must be a bool, got 'none'"),
    Rule('kernels, windows and padding', 'max_pool2d kernel size 0',
         'F.max_pool2d(jnp.ones((2, 8, 8, 3)), 0)',
         ValueError, 'max_pool2d: kernel_size must be >= 1 along both axes, got 0'),
    Rule('kernels, windows and padding', 'AvgPool2d negative kernel size',
         'nn.AvgPool2d(-2)',
         ValueError, 'AvgPool2d: kernel_size must be >= 1 along both axes, got -2'),
    Rule('kernels, windows and padding', 'avg_pool2d stride 0',
         'F.avg_pool2d(jnp.ones((2, 8, 8, 3)), 2, strides=0)',
         ValueError, 'avg_pool2d: strides must be >= 1 along both axes, got 0'),
    Rule('kernels, windows and padding', 'max_pool2d on a 2-D input',
         'F.max_pool2d(jnp.ones((8, 8)), 2)',
         ValueError, 'max_pool2d: x must be NHWC, \\(N, H, W, C\\) or \\(H, W, C\\) for one image, got shape \\(8, 8\\)'),
    Rule('kernels, windows and padding', 'Conv2d zero out_channels',
         'nn.Conv2d(3, 0, 3)',
         ValueError, 'Conv2d: out_channels must be >= 1, got 0'),
    Rule('kernels, windows and padding', 'Conv2d kernel size 0',
         'nn.Conv2d(3, 4, 0)',
         ValueError, 'Conv2d: kernel_size must be >= 1 along both axes, got 0'),
    Rule('kernels, windows and padding', 'Conv2d groups 0',
         'nn.Conv2d(4, 4, 3, groups=0)',
         ValueError, 'Conv2d: groups must be >= 1, got 0'),
    Rule('kernels, windows and padding', 'conv2d dilation 0',
         'F.conv2d(jnp.ones((2, 8, 8, 3)), jnp.ones((3, 3, 3, 4)), dilation=0)',
         ValueError, 'conv2d: dilation must be >= 1 along both axes, got 0'),
    Rule('kernels, windows and padding', 'conv2d bias of the wrong size',
         'F.conv2d(jnp.ones((2, 8, 8, 3)), jnp.ones((3, 3, 3, 4)), bias=jnp.ones(5))',
         ValueError, 'conv2d: bias must have shape \\(C_out,\\) = \\(4,\\), got \\(5,\\)'),
    Rule('kernels, windows and padding', 'conv2d 3-D weight',
         'F.conv2d(jnp.ones((2, 8, 8, 3)), jnp.ones((3, 3, 3)))',
         ValueError, 'conv2d: weight must be 4-D HWIO \\(kh, kw, C_in / groups, C_out\\), got shape \\(3, 3, 3\\)'),
    Rule('shapes and sizes', 'linear 1-D weight',
         'F.linear(jnp.ones((4, 10)), jnp.ones(10))',
         ValueError, 'linear: weight must be 2-D \\(in_features, out_features\\), got shape \\(10,\\)'),
    Rule('shapes and sizes', 'linear bias of the wrong size',
         'F.linear(jnp.ones((4, 10)), jnp.ones((10, 3)), jnp.ones(4))',
         ValueError, 'linear: bias must have shape \\(out_features,\\) = \\(3,\\), got \\(4,\\)'),
    Rule('shapes and sizes', 'Linear negative out_features',
         'nn.Linear(3, -1)',
         ValueError, 'Linear: out_features must be >= 1, got -1'),
    Rule('types', 'Sequential of a non-layer',
         'nn.Sequential(3)',
         TypeError, 'Sequential: layer 0 is not callable: 3'),
    Rule('types', 'LayerNorm float normalized_shape',
         'nn.LayerNorm(10.0)',
         TypeError, 'normalized_shape must be an int or a tuple of ints, got 10.0'),
    Rule('shapes and sizes', 'layer_norm normalized_shape not the trailing axes',
         'F.layer_norm(X4x10, (3, 10))',
         ValueError, "layer_norm with normalized_shape=\\(3, 10\\) expects the input's last 2 axes to be \\(3, 10\\), got input of shape \\(4, 10\\)"),
    Rule('parameter values', 'RMSNorm negative eps',
         'nn.RMSNorm(10, eps=-1.0)',
         ValueError, 'eps must be >= 0, got -1.0'),
    Rule('shapes and sizes', 'GroupNorm zero groups',
         'nn.GroupNorm(0, 8)',
         ValueError, 'num_groups must be a positive int, got 0'),
    Rule('parameter values', 'instance_norm infinite eps',
         'F.instance_norm(jnp.ones((2, 8, 8, 3)), eps=math.inf)',
         ValueError, 'eps must be finite, got inf'),
    Rule('types', 'BatchNorm1d momentum a string',
         'nn.BatchNorm1d(10, momentum="0.1")',
         TypeError, "momentum must be a Python float, got '0.1' \\(str\\)"),
    Rule('types', 'softmax axis a tuple',
         'F.softmax(X4x10, axis=(0, 1))',
         TypeError, 'axis must be an int, got \\(0, 1\\) \\(tuple\\)'),
    Rule('types', 'Dropout p a string',
         'nn.Dropout(p="0.5")',
         TypeError, "p must be a Python float, got '0.5' \\(str\\)"),
    Rule('parameter values', 'dropout p 1.5',
         'F.dropout(X4x10, 1.5, jax.random.key(0))',
         ValueError, 'dropout: p is the probability of DROPPING an element and must be in \\[0, 1\\), got 1.5'),
    Rule('parameter values', 'batch_norm negative running_var',
         'F.batch_norm(X4x10, np.zeros(10), -np.ones(10))',
         ValueError, 'batch_norm: running_var must be >= 0 \\(a variance\\), got -1.0 at index 0 \\(10 of 10 entries '
                     'negative\\); pass the running variance itself'),
    Rule('shapes and sizes', 'batch_norm training under vmap with a global batch of 1',
         'jax.vmap(lambda r: F.batch_norm(r, None, None, training=True, axis_name="b")[0], axis_name="b")'
         '(jnp.ones((1, 1, 3)))',
         ValueError, "needs more than 1 value per channel, got 1 over the batch axis 'b' of size 1 .* use a global "
                     "batch of at least 2"),
    Rule('types', 'Sequential of a layer class',
         'nn.Sequential(nn.Linear(4, 2, key=jax.random.key(0)), nn.Dropout)',
         TypeError, 'Sequential: layer 1 is the class Dropout, not a layer; pass an instance: Dropout\\(...\\)'),
    Rule('types', 'Linear whose weight was set to None',
         '(lambda m: (setattr(m, "weight", None), m(jnp.ones((1, 3)))))(nn.Linear(3, 2, key=jax.random.key(0)))',
         TypeError, 'Linear\\(in_features=3, out_features=2, bias=True\\): weight is None; .* assign an array of '
                    'shape \\(3, 2\\)'),
    Rule('types', 'linear weight None',
         'F.linear(X4x10, None)',
         TypeError, 'linear: weight is None; pass an array'),
    Rule('shapes and sizes', 'randn negative size',
         'impl_random.randn(-1)',
         ValueError, 'randn: shape must be sizes >= 0, got \\(-1,\\)'),
    Rule('types', 'dropout key an int',
         'F.dropout(X4x10, 0.5, 0)',
         TypeError, 'dropout: key must be a jax.random key, got 0 \\(int\\); pass one such as jax.random.key\\(0\\)'),
    Rule('types', 'dropout legacy key of 3 words',
         'F.dropout(X4x10, 0.5, jnp.zeros(3, jnp.uint32))',
         ValueError, 'dropout: a legacy uint32 key has shape \\(2,\\), got shape \\(3,\\); pass one such as '
                     'jax.random.key\\(0\\)'),
    Rule('types', 'Dropout layer key an int',
         'nn.Dropout(0.5)(X4x10, key=0)',
         TypeError, 'dropout: key must be a jax.random key, got 0 \\(int\\)'),
    Rule('parameter values', 'Dropout under jit without a key, the input closed over',
         '(lambda d: jax.jit(lambda: d(X4x10))())(nn.Dropout(0.5))',
         ValueError, 'Dropout\\(p=0.5\\) in training mode was called inside a JAX transformation .* without a key; '
                     '.* every call would drop the same elements'),
]


def _contract_rules() -> list[Rule]:
    """The rules the contract states for the activations' parameters (``rejects`` of their
    ``@_checked`` in vetted_layers_suite/contract.py), as rows of this table."""
    from vetted_layers_suite import contract

    return [Rule("types" if exc is TypeError else "parameter values", f"{name}(x, {kw})", f"F.{name}(X4x10, {kw})",
                 exc, message)
            for name in contract.ACTIVATIONS for kw, exc, message in contract.checks(name)["rejects"]]


RULES += _contract_rules()

SECTIONS = ["shapes and sizes", "kernels, windows and padding", "parameter values", "types"]

# documented instead of rejected: what happens to input that is not a floating array
PROMOTIONS = [
    ("integer or bool array", "promoted to JAX's default float dtype (float32, float64 under jax_enable_x64), as "
     "jnp.tanh does (docs/dtype_policy.md)"),
    ("complex array", "TypeError (a row above): the layers are real functions"),
    ("values that are only known under jit (NaN running variance, negative running_var)",
     "not checked: a traced value cannot raise; NaN propagates to the output, and a negative running_var gives "
     "±inf where x differs from the running mean (concrete values are checked: a row above)"),
    ("a batch of zero rows", "kept: flatten of (0, 3, 4) is (0, 12), a layer maps an empty batch to an empty batch"),
]


def namespace() -> dict:
    import impl.functional as F
    import impl.nn as nn
    import impl.random as impl_random

    return {"F": F, "nn": nn, "impl_random": impl_random, "jax": jax, "jnp": jnp, "np": np, "math": math,
            "X4x10": np.zeros((4, 10), np.float32)}


def run(rule: Rule):
    """Evaluate the rule's bad call (it is expected to raise)."""
    return eval(rule.code, namespace())  # the code is this table's own text


def render() -> str:
    """docs/input_rules.md from the table."""
    out = ["# Input rules", "",
           "Every validation rule of `impl`'s layers and ops, with a bad input, the exception it raises and the",
           "part of the message that a test pins (`tests/test_input_rules.py`, one test per row).  Messages name",
           "the parameter, the value received and the fix.  Generated from `tests/input_rules.py` (with the",
           "`rejects` of the activations' `@_checked` in `vetted_layers_suite/contract.py`) by",
           "`python -m tests.input_rules`; a test fails when this page and the table differ.", "",
           f"{len(RULES)} rules.", ""]
    for sec in SECTIONS:
        rows = [r for r in RULES if r.section == sec]
        out += [f"## {sec.capitalize()} ({len(rows)})", "", "| what | bad input | raises | message (pinned pattern) |",
                "|---|---|---|---|"]
        for r in rows:
            pattern = r.match.replace("|", "\\|")
            out.append(f"| {r.what} | `{r.code}` | {r.exception.__name__} | `{pattern}` |")
        out.append("")
    out += ["## Not rejected, documented", "", "| input | behaviour |", "|---|---|"]
    out += [f"| {a} | {b} |" for a, b in PROMOTIONS]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    import pathlib

    path = pathlib.Path(__file__).resolve().parent.parent / "docs" / "input_rules.md"
    path.write_text(render())
    print(f"wrote {path.name}: {len(RULES)} rules")
