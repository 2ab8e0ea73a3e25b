"""Property tests (hypothesis) of softmax and the normalizations: invariances that
hold for any input, shape and parameters.

Inputs are drawn on a grid (integers times a power of two) small enough that
the shifted input ``x + c`` and the scaled input ``x * 2**k`` are exact in the
dtype, so the exact outputs before and after are identical.  Each output is
within the float32/float16 budget (1 ulp, ``tools/registry/reductions.py``) of
that exact value, so the two computed outputs may differ by at most 2 ulp:
that is the bound checked.  Randomness is hypothesis's, derandomized and
without its database: every run draws the same examples.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

# grid step and integer range per dtype: |x| <= k_max * step, |c| <= k_max * step, so that
# x + c needs at most (1 + log2(2 k_max)) significant bits (float32: 23 of 24; float16: 10 of 11)
GRID = {"float32": (2.0**-10, 2**21), "float16": (2.0**-4, 2**9)}
TWO_ULP = 2  # two results each within the 1-ulp budget of the same exact value


def _grid_arrays(draw, dtype, shape):
    step, kmax = GRID[dtype]
    ks = draw(st.lists(st.integers(-kmax, kmax), min_size=math.prod(shape), max_size=math.prod(shape)))
    return (np.array(ks, np.float64) * step).reshape(shape).astype(dtype)


@st.composite
def _norm_case(draw, dtype):
    """(op name, x of shape (N, S, C), call(x, eps))."""
    op = draw(st.sampled_from(["layer_norm", "group_norm", "instance_norm"]))
    # a few shapes (each new shape is a compilation): (N, S, C) with C = groups * per-group
    (n, s, c), groups = draw(st.sampled_from([((1, 2, 2), 1), ((2, 5, 6), 2), ((3, 3, 8), 4)]))
    x = _grid_arrays(draw, dtype, (n, s, c))
    return op, x, groups


def _call(op, fn, x, groups, eps):
    if op == "layer_norm":
        return fn(x, (x.shape[-1],), eps=eps)
    if op == "group_norm":
        return fn(x, groups, eps=eps)
    return fn(x, eps=eps)


def _assert_close(a, b, what):
    a, b = np.asarray(a), np.asarray(b)
    try:
        np.testing.assert_array_max_ulp(a, b, maxulp=TWO_ULP)
    except AssertionError as e:
        raise AssertionError(f"{what}: {e}") from None


@pytest.mark.parametrize("dtype", list(GRID))
def test_normalizations_are_shift_invariant(dtype, impl_op):
    step, kmax = GRID[dtype]

    @SETTINGS
    @given(_norm_case(dtype), st.integers(-kmax, kmax))
    def check(case, kc):
        op, x, groups = case
        fn = impl_op(op)
        c = np.asarray(kc * step, dtype)
        assume(np.all(np.abs(x.astype(np.float64) + kc * step) <= 2 * kmax * step))
        shifted = (x.astype(np.float64) + float(c)).astype(dtype)
        assert np.array_equal(shifted.astype(np.float64), x.astype(np.float64) + float(c)), "the shift must be exact"
        _assert_close(_call(op, fn, shifted, groups, 1e-5), _call(op, fn, x, groups, 1e-5),
                      f"{op}(x + {float(c)}) != {op}(x) beyond 2 ulp for x = {x.tolist()}")
    check()


@pytest.mark.parametrize("dtype", list(GRID))
def test_normalizations_are_positive_scale_invariant(dtype, impl_op):
    """With eps = 0 (eps is not scale-invariant), ``norm(x * 2**k) == norm(x)``."""
    @SETTINGS
    @given(_norm_case(dtype), st.integers(-3, 3))
    def check(case, k):
        op, x, groups = case
        fn = impl_op(op)
        y0 = np.asarray(_call(op, fn, x, groups, 0.0))
        assume(np.all(np.isfinite(y0)))  # a group with zero variance is 0/0 with eps = 0
        scaled = (x.astype(np.float64) * 2.0**k).astype(dtype)
        _assert_close(_call(op, fn, scaled, groups, 0.0), y0,
                      f"{op}(x * 2**{k}) != {op}(x) beyond 2 ulp for x = {x.tolist()}")
    check()


@pytest.mark.parametrize("dtype", ["float32"])
def test_batch_norm_eval_is_the_affine_map(dtype, impl_op):
    """Eval mode is ``(x - running_mean) / sqrt(running_var + eps) * weight + bias``: within
    the 1-ulp budget of that map evaluated in float64 (float64 rounding error ~1e-16
    relative, far below a float32 ulp)."""
    fn = impl_op("batch_norm")

    @SETTINGS
    @given(st.data())
    def check(data):
        c = data.draw(st.sampled_from([1, 3]))
        x = _grid_arrays(data.draw, dtype, (4, c))
        rm = _grid_arrays(data.draw, dtype, (c,))
        rv = np.abs(_grid_arrays(data.draw, dtype, (c,))) + np.float32(0.5)
        w = _grid_arrays(data.draw, dtype, (c,))
        b = _grid_arrays(data.draw, dtype, (c,))
        got = fn(x, rm, rv, w, b, training=False)
        got = np.asarray(got[0] if isinstance(got, tuple) else got)
        f = lambda a: a.astype(np.float64)  # noqa: E731
        want = ((f(x) - f(rm)) / np.sqrt(f(rv) + f(np.float32(1e-5)).item()) * f(w) + f(b)).astype(dtype)
        # outputs near 0 (cancellation in * weight + bias) are judged on the scale of the terms
        scale = np.abs((f(x) - f(rm)) / np.sqrt(f(rv)) * f(w)) + np.abs(f(b))
        err = np.abs(f(got) - f(want))
        ulp = np.spacing(np.maximum(scale, np.abs(f(want))).astype(dtype)).astype(np.float64)
        assert np.all(err <= 2 * ulp), (f"batch_norm eval: got {got.tolist()}, affine map {want.tolist()} "
                                        f"for x={x.tolist()}, running_mean={rm.tolist()}, running_var={rv.tolist()}")
    check()


@pytest.mark.parametrize("dtype", list(GRID))
def test_softmax_rows_sum_to_one_and_ignore_shifts(dtype, impl_op):
    """Each output within 1 ulp of its exact value and ulp(y) <= 2**-(p-1) y for normal y, so
    ``|sum(y) - 1| <= 2**-(p-1) (1 + tiny)`` plus one smallest-subnormal quantum per element
    (p = 24 for float32, 11 for float16); a shift of the row changes nothing exactly, so
    the two computed rows are within 2 ulp."""
    fn = impl_op("softmax")
    step, kmax = GRID[dtype]
    p = np.finfo(dtype).nmant + 1
    tiny = float(np.finfo(dtype).smallest_subnormal)

    @SETTINGS
    @given(st.data(), st.integers(-kmax // 2, kmax // 2))
    def check(data, kc):
        n = data.draw(st.sampled_from([1, 7, 40]))
        x = (_grid_arrays(data.draw, dtype, (3, n)).astype(np.float64) / 2).astype(dtype)
        y = np.asarray(fn(x, axis=-1)).astype(np.float64)
        sums = y.sum(axis=-1)
        bound = 2.0**-(p - 1) * (1 + 2.0**-20) + n * tiny
        assert np.all(np.abs(sums - 1) <= bound), f"softmax row sums {sums.tolist()} (bound {bound:.3g}) for x={x.tolist()}"
        shifted = (x.astype(np.float64) + kc * step).astype(dtype)
        assume(np.array_equal(shifted.astype(np.float64), x.astype(np.float64) + kc * step))
        _assert_close(fn(shifted, axis=-1), y.astype(dtype), f"softmax(x + {kc * step}) != softmax(x) for x={x.tolist()}")
    check()
