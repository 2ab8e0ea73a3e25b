"""Implementations used by tests/test_target.py to exercise the ``--impl`` machinery."""

from __future__ import annotations

import types
import warnings

import jax.numpy as jnp

import impl.functional as F


def _relu6(x):
    if jnp.asarray(x).dtype == jnp.bfloat16:
        raise NotImplementedError("this library has no bfloat16 relu6")
    return F.relu6(x)


# relu from impl, relu6 without bfloat16, nothing else; not a JAX function (declared)
PARTIAL = types.SimpleNamespace(relu=F.relu, relu6=_relu6, sigmoid=None,
                                CONFORMANCE_CAPABILITIES={"jax_transforms": False},
                                CONFORMANCE_PEER="a partial test double")
NOTHING = types.SimpleNamespace(unrelated=len)
BAD_CAPABILITY = types.SimpleNamespace(relu=F.relu, CONFORMANCE_CAPABILITIES={"jit": False})
NOT_CALLABLE = types.SimpleNamespace(relu=3)


def _warning_relu(x):
    warnings.warn("relu of this library is deprecated", UserWarning, stacklevel=2)
    return F.relu(x)


# an implementation that warns: the suite records the warning and judges the result
WARNS = types.SimpleNamespace(relu=_warning_relu, CONFORMANCE_PEER="a test double that warns")
