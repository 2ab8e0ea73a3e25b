"""Property tests (hypothesis): invariances that hold for any input, shape and dtype.

Randomness is hypothesis's, with its database off and derandomized, so every
run draws the same examples (no flaky tests).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import impl.functional as F

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

MONOTONE = ["relu", "relu6", "leaky_relu", "elu", "celu", "selu", "softplus", "sigmoid", "tanh",
            "log_sigmoid", "hard_sigmoid", "softsign"]
ODD = ["tanh", "softsign"]
DTYPES = {"float32": np.float32, "float16": np.float16}


def _arrays(dtype):
    # elementwise ops do not care about shape: one shape keeps it to one compilation per op
    return hnp.arrays(dtype, (64,), elements=st.floats(-1e4, 1e4, width=np.finfo(dtype).bits,
                                                        allow_subnormal=False))


@pytest.mark.parametrize("name", MONOTONE)
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_monotone(name, dtype):
    fn = getattr(F, name)

    @SETTINGS
    @given(_arrays(DTYPES[dtype]))
    def check(x):
        xs = np.sort(x.ravel())
        y = np.asarray(fn(jnp.asarray(xs))).astype(np.float64)
        bad = np.flatnonzero(np.diff(y) < 0)
        assert bad.size == 0, f"{name} decreases between x={xs[bad[0]]!r} and {xs[bad[0] + 1]!r}: {y[bad[0]]} > {y[bad[0] + 1]}"

    check()


@pytest.mark.parametrize("name", ODD)
def test_odd(name):
    fn = getattr(F, name)

    @SETTINGS
    @given(_arrays(np.float32))
    def check(x):
        a = np.asarray(fn(jnp.asarray(x)))
        b = np.asarray(fn(jnp.asarray(-x)))
        np.testing.assert_array_equal(a, -b, err_msg=f"{name}(-x) != -{name}(x)")

    check()


@SETTINGS
@given(_arrays(np.float32))
def test_sigmoid_complement(x):
    """sigmoid(x) + sigmoid(-x) = 1: each term is correctly rounded, so the float64 sum is within
    half an ulp of each term of 1 (<= 2**-24 + 2**-25 for terms in [0.5, 1])."""
    s = np.asarray(F.sigmoid(jnp.asarray(x))).astype(np.float64) + np.asarray(F.sigmoid(jnp.asarray(-x))).astype(np.float64)
    assert np.max(np.abs(s - 1)) <= 2.0**-24 + 2.0**-25


@SETTINGS
@given(_arrays(np.float32))
def test_softplus_difference_is_x(x):
    """softplus(x) - softplus(-x) = x, within the rounding of the two correctly rounded terms."""
    a = np.asarray(F.softplus(jnp.asarray(x))).astype(np.float64)
    b = np.asarray(F.softplus(jnp.asarray(-x))).astype(np.float64)
    tol = 0.5 * (np.spacing(np.abs(a).astype(np.float32)) + np.spacing(np.abs(b).astype(np.float32)))
    assert np.all(np.abs((a - b) - x.astype(np.float64)) <= tol)


@SETTINGS
@given(_arrays(np.float32))
def test_relu_plus_negative_part(x):
    """relu(x) - relu(-x) = x exactly."""
    xj = jnp.asarray(x)
    np.testing.assert_array_equal(np.asarray(F.relu(xj) - F.relu(-xj)), x + 0.0)
