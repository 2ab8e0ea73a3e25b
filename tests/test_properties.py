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

from tools.registry import OPS, get

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

MONOTONE = [o.name for o in OPS if "monotone" in o.properties]  # Op.properties of the registry
ODD = [o.name for o in OPS if "odd" in o.properties]
DTYPES = {"float32": np.float32, "float16": np.float16}


def _arrays(dtype):
    # elementwise ops do not care about shape: one shape keeps it to one compilation per op
    return hnp.arrays(dtype, (64,), elements=st.floats(-1e4, 1e4, width=np.finfo(dtype).bits,
                                                        allow_subnormal=False))


@pytest.mark.parametrize("name", MONOTONE)
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_monotone(name, dtype, impl_op):
    fn = impl_op(name)

    @SETTINGS
    @given(_arrays(DTYPES[dtype]))
    def check(x):
        xs = np.sort(x.ravel())
        y = np.asarray(fn(jnp.asarray(xs))).astype(np.float64)
        bad = np.flatnonzero(np.diff(y) < 0)
        assert bad.size == 0, f"{name} decreases between x={xs[bad[0]]!r} and {xs[bad[0] + 1]!r}: {y[bad[0]]} > {y[bad[0] + 1]}"

    check()


@pytest.mark.parametrize("name", ODD)
def test_odd(name, impl_op):
    fn = impl_op(name)

    @SETTINGS
    @given(_arrays(np.float32))
    def check(x):
        a = np.asarray(fn(jnp.asarray(x)))
        b = np.asarray(fn(jnp.asarray(-x)))
        np.testing.assert_array_equal(a, -b, err_msg=f"{name}(-x) != -{name}(x)")

    check()


def _f32_ulp_budget(case_id):
    return get(case_id).budgets["float32"].max_ulp


def test_sigmoid_complement(impl_op):
    """sigmoid(x) + sigmoid(-x) = 1: each term is within the float32 budget (max_ulp ulps of its
    own value), so the float64 sum is within max_ulp * (ulp(a) + ulp(b)) of 1 (np.spacing of
    the rounded term bounds the ulp of the exact one)."""
    fn, m = impl_op("sigmoid"), _f32_ulp_budget("sigmoid")

    @SETTINGS
    @given(_arrays(np.float32))
    def check(x):
        a = np.asarray(fn(jnp.asarray(x)))
        b = np.asarray(fn(jnp.asarray(-x)))
        s = a.astype(np.float64) + b.astype(np.float64)
        tol = m * (np.spacing(a).astype(np.float64) + np.spacing(b).astype(np.float64))
        bad = np.flatnonzero(np.abs(s - 1) > tol)
        assert bad.size == 0, (f"sigmoid(x) + sigmoid(-x) = {s[bad[0]]!r} at x = {x[bad[0]]!r}, expected 1 "
                               f"within {tol[bad[0]]:.3g} (the float32 budget of {m} ulp per term)")

    check()


def test_softplus_difference_is_x(impl_op):
    """softplus(x) - softplus(-x) = x, within the float32 budget of each of the two terms."""
    fn, m = impl_op("softplus"), _f32_ulp_budget("softplus")

    @SETTINGS
    @given(_arrays(np.float32))
    def check(x):
        a = np.asarray(fn(jnp.asarray(x))).astype(np.float64)
        b = np.asarray(fn(jnp.asarray(-x))).astype(np.float64)
        tol = m * (np.spacing(np.abs(a).astype(np.float32)) + np.spacing(np.abs(b).astype(np.float32)))
        bad = np.flatnonzero(np.abs((a - b) - x.astype(np.float64)) > tol)
        assert bad.size == 0, (f"softplus(x) - softplus(-x) = {a[bad[0]] - b[bad[0]]!r} at x = {x[bad[0]]!r}, "
                               f"expected x within {tol[bad[0]]:.3g}")

    check()


def test_relu_plus_negative_part(impl_op):
    """relu(x) - relu(-x) = x exactly."""
    fn = impl_op("relu")

    @SETTINGS
    @given(_arrays(np.float32))
    def check(x):
        xj = jnp.asarray(x)
        np.testing.assert_array_equal(np.asarray(fn(xj) - fn(-xj)), x + 0.0, err_msg="relu(x) - relu(-x) != x")

    check()
