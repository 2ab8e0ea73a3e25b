"""Linear maps, pooling, flatten, dropout and the model API (``impl.nn``).

* Golden: every case of ``tools/registry/layers.py`` x dtype x device, within
  its derived bound (linear, conv2d) or bit for bit (pooling).
* By construction: the references against Fractions, avg_pool2d at midpoints,
  dropout's law, mask and scaling, flatten, the model API.
The functional tests judge the module under test (``--impl``, through
``impl_op``); the precision policy, the layer classes and the error messages
are those of ``impl`` itself.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import impl.functional as F
from impl import nn
from impl import random as irandom
from reference import FORMATS
from reference import _exact as E
from reference import linear as RL
from reference import pooling as RP
from tools import calls
from tools import devices as D
from tools import metric, reporting
from tools.registry import DTYPES, by_family
from tools.registry import layers as L

from .helpers import NP_DTYPES, case_param, x64_for

CASES = by_family("layers")


# ---- golden: every case x dtype x device ------------------------------------------------

def _where(shape, i):
    return tuple(int(v) for v in np.unravel_index(i, shape))


@pytest.mark.parametrize("case,dtype", [case_param(c, d) for c in CASES for d in DTYPES if d in c.budgets])
def test_golden(case, dtype, device, impl_op, store, record, reproduce):
    fn = impl_op(case.op)
    stored = store.load_case(case.family, dtype, case.id)
    ins = L.stored_inputs(stored, dtype)
    got = calls.run(fn, case.op, ins, case.params, dtype, device)["y"]
    rounded = stored["rounded"].astype(np.float64)
    dev = D.device_id(device)
    label = f"{case.id} {dtype} on {dev}"
    assert got.dtype == ins["x"].dtype, f"{label}: returned {got.dtype} for a {dtype} input"
    assert got.shape == rounded.shape, f"{label}: output shape {got.shape}, expected {rounded.shape}"
    budget = case.budgets[dtype]
    stats, err, codes = metric.evaluate(got.ravel(), rounded.ravel(), stored["residual"].ravel(), dtype,
                                        budget.max_ulp)
    if isinstance(budget, L.BoundBudget):
        _check_bound(case, dtype, dev, got, stored, stats, err, budget, label, reproduce, record)
        return
    bad = np.flatnonzero(~((got.ravel().astype(np.float64) == rounded.ravel())
                           | (np.isnan(got.ravel().astype(np.float64)) & np.isnan(rounded.ravel()))))
    msg = None
    if bad.size:
        lines = [f"{label}: {bad.size} of {got.size} outputs differ from the correctly rounded reference "
                 f"(budget: {budget.why}); first ones:"]
        for i in bad[:5]:
            lines.append(f"  output {_where(got.shape, i)}: got {float(got.ravel()[i])!r}, expected "
                         f"{rounded.ravel()[i]!r} ({err[i]:+.4g} ulp)")
        lines.append(f"  reproduce: {reproduce}")
        msg = "\n".join(lines)
    row = reporting.row_from_stats("value", case.id, dtype, dev, "golden", stats, budget, message=msg)
    record(row)
    assert row.passed, msg


def _check_bound(case, dtype, dev, got, stored, stats, err_ulp, budget, label, reproduce, record):
    fmt = FORMATS[dtype]
    rounded = stored["rounded"].astype(np.float64).ravel()
    ulp = metric.ulp_of_exact(rounded, stored["residual"].ravel(), fmt)
    exact = rounded + stored["residual"].ravel().astype(np.float64) / 2**14 * ulp
    n = L.n_products(case)
    has_bias = "bias" in stored
    bound = L.error_bound(budget, stored["abs_sum"].ravel(), exact, n, has_bias)
    frac = np.abs(err_ulp * ulp) / bound
    worst = int(np.nanargmax(frac))
    text = f"error <= gamma_{n + has_bias} bound"  # no pipes: the report is a Markdown table
    over = np.flatnonzero(~(frac <= budget.max_bound_fraction))
    msg = None
    if over.size or stats.n_nonfinite_mismatch:
        lines = [f"{label}: {over.size} of {got.size} outputs exceed the derived error bound "
                 f"({budget.why}; m = {n + has_bias} terms); worst first:"]
        for i in over[np.argsort(-np.nan_to_num(frac[over], nan=np.inf))][:5]:
            lines.append(f"  output {_where(got.shape, i)}: got {float(got.ravel()[i])!r}, exact ~ {exact[i]!r}, "
                         f"error {err_ulp[i]:+.4g} ulp = {frac[i]:.4g} x bound {bound[i]:.4g} "
                         f"(sum|wx| + |b| = {stored['abs_sum'].ravel()[i]:.6g})")
        lines.append(f"  reproduce: {reproduce}")
        msg = "\n".join(lines)
    row = reporting.row_from_stats(
        "value", case.id, dtype, dev, "golden", stats, budget, message=msg,
        extra={"bound_fraction": float(frac[worst]), "budget_text": text, "budget_max_ulp": None,
               "max_bound_fraction": budget.max_bound_fraction, "worst_output": _where(got.shape, worst)})
    record(row)
    assert row.passed, msg


def test_golden_inputs_are_in_the_case_files(store):
    """Inputs travel with the golden results (stored in their dtype), so the
    reference never depends on a generator at test time."""
    case = CASES[0]
    for d in DTYPES:
        ins = L.stored_inputs(store.load_case(case.family, d, case.id), d)
        assert ins["x"].dtype == NP_DTYPES[d] and ins["weight"].dtype == NP_DTYPES[d], (d, ins["x"].dtype)


# ---- the matmul precision policy -----------------------------------------------------------

def _subjaxprs(v):
    if hasattr(v, "eqns"):
        yield v
    elif hasattr(getattr(v, "jaxpr", None), "eqns"):
        yield v.jaxpr
    elif isinstance(v, (tuple, list)):
        for e in v:
            yield from _subjaxprs(e)


def _eqns(jaxpr, names):
    """Equations named ``names`` in ``jaxpr`` and every jaxpr nested in it (jit, custom_jvp, ...)."""
    for e in jaxpr.eqns:
        if e.primitive.name in names:
            yield e
        for v in e.params.values():
            for sub in _subjaxprs(v):
                yield from _eqns(sub, names)


def _policy_ops(dtype):
    dt = NP_DTYPES[dtype]
    x2, w2, b = jnp.ones((2, 5), dt), jnp.ones((5, 3), dt), jnp.ones((3,), dt)
    x4, w4 = jnp.ones((1, 4, 4, 2), dt), jnp.ones((3, 3, 2, 3), dt)
    return {
        "linear": (lambda x, w, b: F.linear(x, w, b), (x2, w2, b)),
        "conv2d": (lambda x, w, b: F.conv2d(x, w, b), (x4, w4, b)),
        "grad of linear": (jax.grad(lambda x, w, b: F.linear(x, w, b).astype(jnp.float32).sum(), (0, 1)),
                           (x2, w2, b)),
        "grad of conv2d": (jax.grad(lambda x, w, b: F.conv2d(x, w, b).astype(jnp.float32).sum(), (0, 1)),
                           (x4, w4, b)),
    }


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("what", ["linear", "conv2d", "grad of linear", "grad of conv2d"])
def test_matmul_precision_policy_in_the_jaxpr(what, dtype):
    """Every dot/conv of the vetted layers (and of their gradients) requests
    Precision.HIGHEST and accumulates in float32 (float64 for float64)."""
    with x64_for(dtype):
        fn, args = _policy_ops(dtype)[what]
        jaxpr = jax.make_jaxpr(fn)(*args)
    eqns = list(_eqns(jaxpr.jaxpr, ("dot_general", "conv_general_dilated")))
    assert eqns, f"{what} ({dtype}): no dot_general/conv_general_dilated found in\n{jaxpr}"
    want = jnp.float64 if dtype == "float64" else jnp.float32
    highest = jax.lax.Precision.HIGHEST
    for e in eqns:
        prec = e.params["precision"]
        assert prec in ((highest, highest), highest), (
            f"{what} ({dtype}): {e.primitive.name} has precision={prec}, expected Precision.HIGHEST")
        pet = e.params["preferred_element_type"]
        assert pet is not None and jnp.dtype(pet) == want, (
            f"{what} ({dtype}): {e.primitive.name} accumulates in {pet}, expected {jnp.dtype(want)}")


def test_full_precision_whatever_the_default_matmul_precision(device):
    """1 + 2**-20 survives a product by 1: it would not in TF32 (10 bits) or bfloat16
    passes, which ``jax.default_matmul_precision('bfloat16')`` allows where
    precision is not requested explicitly (GPUs, TPUs)."""
    v = 1.0 + 2.0**-20
    x = jax.device_put(jnp.full((1, 1), v, jnp.float32), device)
    w = jax.device_put(jnp.ones((1, 1), jnp.float32), device)
    x4 = jax.device_put(jnp.full((1, 1, 1, 1), v, jnp.float32), device)
    w4 = jax.device_put(jnp.ones((1, 1, 1, 1), jnp.float32), device)
    with jax.default_matmul_precision("bfloat16"):
        got = [float(F.linear(x, w)[0, 0]), float(F.conv2d(x4, w4)[0, 0, 0, 0])]
    assert got == [v, v], f"linear, conv2d of {v!r} * 1 under default_matmul_precision('bfloat16') gave {got}"


@pytest.mark.parametrize("dtype,small,expect", [
    ("bfloat16", 2.0**-9, 1.0 + 2.0**-7),  # each 1 + 2**-9 rounds back to 1 in bfloat16
    ("float16", 2.0**-12, 1.0 + 2.0**-10),
])
def test_narrow_inputs_accumulate_in_float32(dtype, small, expect, device):
    """``1 + 4 * small`` is exact in the narrow format, but every partial sum ``1 + small``
    rounds back to 1 there: only a wider accumulator gets the exact value."""
    dt = NP_DTYPES[dtype]
    vals = jnp.asarray([1.0] + [small] * 4, dt)
    got_lin = F.linear(jax.device_put(vals[None], device), jax.device_put(jnp.ones((5, 1), dt), device))
    got_conv = F.conv2d(jax.device_put(vals.reshape(1, 1, 1, 5), device),
                        jax.device_put(jnp.ones((1, 1, 5, 1), dt), device))
    assert got_lin.dtype == dt and got_conv.dtype == dt
    assert float(got_lin[0, 0]) == expect and float(got_conv[0, 0, 0, 0]) == expect, (
        f"{dtype}: 1 + 4 * {small!r} gave linear {float(got_lin[0, 0])!r}, conv2d {float(got_conv[0, 0, 0, 0])!r}, "
        f"expected {expect!r}")


# ---- the references themselves ---------------------------------------------------------------

def _frac_dot(xs, ws):
    return sum((Fraction(float(a)) * Fraction(float(b)) for a, b in zip(xs, ws)), Fraction(0))


def test_reference_linear_is_the_exact_dot_product_rounded_once():
    """float64 target: Fraction -> float is correctly rounded, so it must match bit for bit."""
    x = np.ldexp(np.array([[3.0, -5.0, 7.0], [1.0, 2.0**-60, -1.0]]), [[0, -30, 29], [0, 0, 0]])
    w = np.array([[1.0 / 3, 2.0], [-0.1, 2.0**40], [0.7, -1e-20]])
    b = np.array([2.0**-70, -3.0])
    r = RL.linear(x, w, b, "float64")
    for i in range(2):
        for j in range(2):
            exact = _frac_dot(x[i], w[:, j]) + Fraction(float(b[j]))
            assert r["rounded"][i, j] == float(exact), (i, j, r["rounded"][i, j], float(exact))
            assert r["abs_sum"][i, j] == float(_frac_dot(np.abs(x[i]), np.abs(w[:, j])) + abs(Fraction(float(b[j]))))


def test_reference_conv2d_matches_its_definition():
    """Direct loops over the definition (zero padding, stride, dilation, groups) with Fractions."""
    rng_vals = np.ldexp(np.arange(1, 2 * 5 * 6 * 4 + 1, dtype=np.float64) % 13 - 6, -3)
    x = rng_vals.reshape(2, 5, 6, 4)
    w = (np.arange(3 * 2 * 2 * 6, dtype=np.float64) % 7 - 3).reshape(3, 2, 2, 6) * 0.375
    r = RL.conv2d(x, w, None, "float64", stride=(2, 1), padding="SAME", dilation=(2, 1), groups=2)
    # SAME along height: out = ceil(5/2) = 3, k_eff = 5, total = max(2*2 + 5 - 5, 0) = 4 -> (2, 2)
    # along width: out = 6, k_eff = 2, total = 1 -> (0, 1)
    assert r["rounded"].shape == (2, 3, 6, 6)
    for (n, i, j, o) in [(0, 0, 0, 0), (1, 2, 5, 5), (0, 1, 3, 2), (1, 0, 4, 3)]:
        g = o // 3
        total = Fraction(0)
        for p in range(3):
            for q in range(2):
                hi, wi = i * 2 + p * 2 - 2, j + q
                if 0 <= hi < 5 and 0 <= wi < 6:
                    for c in range(2):
                        total += Fraction(float(x[n, hi, wi, g * 2 + c])) * Fraction(float(w[p, q, c, o]))
        assert r["rounded"][n, i, j, o] == float(total), ((n, i, j, o), r["rounded"][n, i, j, o], float(total))


def test_reference_avg_pool2d_rounds_the_exact_quotient():
    # [[1, 1], [1, 1 + 2**-22]]: mean 1 + 2**-24, a float32 midpoint: ties to even -> 1.0, residual +1/2 ulp
    tie = np.array([1.0, 1.0, 1.0, 1.0 + 2.0**-22]).reshape(1, 2, 2, 1)
    r = RP.avg_pool2d(tie, 2, fmt="float32")
    assert r["rounded"].item() == 1.0 and r["residual"].item() == 2**14 // 2, (r["rounded"], r["residual"])
    x = np.array([1.0, 1.0, 1.0, 1.0 + 2.0**-22, 3.0, 2.0**-30, -1.0, 5.0, 7.0]).reshape(1, 3, 3, 1)
    r = RP.avg_pool2d(x, 3, fmt="float64")
    exact = sum(Fraction(float(v)) for v in x.ravel()) / 9
    assert r["rounded"].item() == float(exact)


# ---- avg_pool2d: exactness where plain float arithmetic fails ---------------------------------

TIE_CASES = [  # (dtype, window values, expected mean): midpoints and near-midpoints
    ("float32", [1.0, 1.0, 1.0, 1.0 + 2.0**-22], 1.0),  # 1 + 2**-24: tie -> even
    ("float32", [1.0, 1.0, 1.0 + 2.0**-23, 1.0 + 2.0**-22], 1.0 + 2.0**-23),  # 1 + 3 * 2**-25: above the tie
    ("float32", [3.0, 2.0**-60, -2.0**-60, 2.0**-20], 0.75 + 2.0**-22),  # tiny cancelling terms
    ("bfloat16", [1.0, 1.0, 1.0, 1.0 + 2.0**-6], 1.0),  # 1 + 2**-8: tie -> even
    ("bfloat16", [1.0, 1.0, 1.0 + 2.0**-7, 1.0 + 2.0**-6], 1.0 + 2.0**-7),  # 3 * 2**-9 above 1: rounds up
    ("float16", [1.0, 1.0, 1.0, 1.0 + 2.0**-9], 1.0),  # 1 + 2**-11: tie -> even
    ("float64", [1.0, 1.0, 1.0, 1.0 + 2.0**-51], 1.0),  # 1 + 2**-53: tie -> even
    ("float64", [1.0, 2.0**-52, 2.0**-80, 1.0], 0.5 + 2.0**-53),  # just above the midpoint 0.5 + 2**-54
    ("float64", [1.0, 2.0**-52, -2.0**-80, 1.0], 0.5),  # just below it
    ("float64", [1e300, -1e300, 2.0**-1000, 3.0], 0.75),  # massive cancellation
]


@pytest.mark.parametrize("dtype,vals,expect", TIE_CASES, ids=[f"{d}-{i}" for i, (d, _, _) in enumerate(TIE_CASES)])
def test_avg_pool2d_rounds_exact_means_at_midpoints(dtype, vals, expect, impl_op):
    fn = impl_op("avg_pool2d")
    with x64_for(dtype):
        x = jnp.asarray(np.array(vals, dtype=np.float64).astype(NP_DTYPES[dtype]).reshape(1, 2, 2, 1))
        got = float(fn(x, 2)[0, 0, 0, 0])
    assert got == expect, f"avg_pool2d of {vals} in {dtype}: got {got!r}, expected {expect!r} (correctly rounded)"


def test_avg_pool2d_same_padding_does_not_count_padded_cells(impl_op):
    fn = impl_op("avg_pool2d")
    x = jnp.arange(1.0, 10.0, dtype=jnp.float32).reshape(1, 3, 3, 1)
    y = np.asarray(fn(x, 3, 1, "SAME"))[0, :, :, 0]
    # corner (0, 0) averages 1, 2, 4, 5 (4 cells); the centre all nine
    assert y[0, 0] == 3.0 and y[1, 1] == 5.0 and y[0, 1] == 3.5, y


@pytest.mark.jax_transforms
def test_avg_pool2d_gradient_is_the_adjoint_of_the_mean(impl_op):
    fn = impl_op("avg_pool2d")
    x = jnp.ones((1, 3, 3, 1), jnp.float32)
    g = jax.grad(lambda t: fn(t, 3, 1, "SAME").sum())(x)[0, :, :, 0]
    # cell (0, 0) is in the windows of outputs (0,0),(0,1),(1,0),(1,1) of sizes 4, 6, 6, 9
    assert np.isclose(float(g[0, 0]), 1 / 4 + 2 / 6 + 1 / 9, rtol=2**-20), g


@pytest.mark.jax_transforms
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_max_pool2d_gradient_goes_to_the_maximum(dtype, impl_op):
    fn = impl_op("max_pool2d")
    x = jnp.asarray([[4.0, 1.0], [2.0, 3.0]], NP_DTYPES[dtype]).reshape(1, 2, 2, 1)
    g = jax.grad(lambda t: fn(t, 2).astype(jnp.float32).sum())(x)
    assert g.dtype == x.dtype and np.asarray(g).ravel().tolist() == [1.0, 0.0, 0.0, 0.0], g


@pytest.mark.jax_transforms
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("shape", [(1, 8, 8, 4), (64, 32, 32, 64)], ids=["small", "2**22"])
def test_max_pool2d_nan_windows(dtype, shape, impl_op):
    """A 2 x 2 window holding a NaN is NaN, whichever of its cells holds it, and the cotangent of
    a window goes to its first maximal cell (its first NaN cell, where it is NaN: a NaN input has
    NaN derivatives).  XLA's CPU reductions by maximum skip a NaN from 4096 elements (YNNPACK;
    ``-inf`` when the NaN is a row's last entry): float32 windows with a NaN came out finite, at
    every size tried from (1, 8, 8, 64)."""
    fn = impl_op("max_pool2d")
    rng = np.random.default_rng(7)
    xs = rng.standard_normal(shape).astype(np.float32)
    n, h, w, c = shape
    for k, (i, j) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):  # each cell of a window
        xs[-1 if k % 2 else 0, 2 + i, 2 * k + j, k % c] = np.nan
    xs[0, 5, 4:6, c - 1] = np.nan  # two NaNs in one window: the first gets the cotangent
    with x64_for(dtype):
        x = jnp.asarray(xs, dtype)
        ct = jnp.asarray(rng.uniform(1, 2, (n, h // 2, w // 2, c)), dtype)
        y, vjp = jax.vjp(lambda t: fn(t, 2), x)
        g = np.asarray(vjp(ct)[0], np.float64)
        y = np.asarray(y, np.float64)
        cs = np.asarray(ct, np.float64)
    xq = np.asarray(x.astype(jnp.float32), np.float64)
    windows = xq.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 2, 4).reshape(n, h // 2, w // 2, c, 4)
    want = windows.max(axis=-1)  # NumPy's maximum propagates NaN
    bad = ~((y == want) | (np.isnan(y) & np.isnan(want)))
    assert not bad.any(), (f"max_pool2d {dtype} {shape}: windows {np.argwhere(bad)[:4].tolist()} give "
                           f"{y[bad][:4].tolist()}, expected {want[bad][:4].tolist()}")
    first = windows.argmax(axis=-1)  # NumPy's argmax: the first NaN, else the first maximum
    routed = np.zeros(windows.shape)
    np.put_along_axis(routed, first[..., None], np.where(np.isnan(want), np.nan, cs)[..., None], axis=-1)
    want_g = routed.reshape(n, h // 2, w // 2, c, 2, 2).transpose(0, 1, 4, 2, 5, 3).reshape(shape)
    bad = ~((g == want_g) | (np.isnan(g) & np.isnan(want_g)))
    assert not bad.any(), (f"max_pool2d {dtype} {shape}: the cotangent at cells {np.argwhere(bad)[:4].tolist()} is "
                           f"{g[bad][:4].tolist()}, expected {want_g[bad][:4].tolist()} (the window's first maximal "
                           f"cell; NaN at a NaN window's first NaN cell)")


@pytest.mark.jax_transforms
def test_max_pool2d_overlapping_windows_round_the_gradient_once(impl_op):
    """A cell under several overlapping windows receives the sum of their cotangents, rounded
    once to bfloat16.  Before, XLA's ``select_and_scatter`` added them in bfloat16, a rounding
    a term: 18 of the 648 cells of this input differed from the correctly rounded sum."""
    import ml_dtypes

    fn = impl_op("max_pool2d")
    x = jnp.asarray(np.random.default_rng(1).standard_normal((2, 9, 9, 4)), jnp.bfloat16)
    ct = jnp.asarray(np.random.default_rng(2).standard_normal((2, 7, 7, 4)), jnp.bfloat16)
    g = np.asarray(jax.vjp(lambda t: fn(t, 3, 1), x)[1](ct)[0])
    xs, cs = np.asarray(x, np.float64), np.asarray(ct, np.float64)
    exact = np.zeros(xs.shape)  # float64 sums of at most 9 bfloat16 values: exact
    for i in range(7):
        for j in range(7):
            k = xs[:, i:i + 3, j:j + 3, :].reshape(2, 9, 4).argmax(axis=1)  # the first maximal cell
            for b in range(2):
                for ch in range(4):
                    exact[b, i + k[b, ch] // 3, j + k[b, ch] % 3, ch] += cs[b, i, j, ch]
    want = exact.astype(ml_dtypes.bfloat16)
    bad = np.argwhere(g.view(np.uint16) != want.view(np.uint16))
    assert bad.size == 0, (f"max_pool2d bfloat16 3x3 stride 1: the gradient at cells {bad[:4].tolist()} is "
                           f"{g[tuple(bad[:4].T)].tolist()}, the correctly rounded sum is "
                           f"{want[tuple(bad[:4].T)].tolist()}")


def test_max_pool2d_same_padding_never_picks_padding(impl_op):
    fn = impl_op("max_pool2d")
    x = -jnp.arange(1.0, 10.0, dtype=jnp.float32).reshape(1, 3, 3, 1)
    y = np.asarray(fn(x, 2, 2, "SAME"))[0, :, :, 0]
    assert y.tolist() == [[-1.0, -3.0], [-7.0, -9.0]], y


def test_pools_default_strides_are_the_kernel_size(impl_op):
    x = jnp.arange(64.0, dtype=jnp.float32).reshape(1, 8, 8, 1)
    assert impl_op("max_pool2d")(x, (2, 4)).shape == (1, 4, 2, 1)
    assert impl_op("avg_pool2d")(x, 2).shape == (1, 4, 4, 1)
    assert impl_op("max_pool2d")(x[0], 2).shape == (4, 4, 1)  # one image, (H, W, C)


# ---- flatten ---------------------------------------------------------------------------------

def test_flatten_merges_trailing_axes_in_row_major_order(impl_op):
    fn = impl_op("flatten")
    x = jnp.arange(2 * 3 * 4 * 5, dtype=jnp.float32).reshape(2, 3, 4, 5)
    assert fn(x).shape == (2, 60) and np.array_equal(np.asarray(fn(x)), np.asarray(x).reshape(2, 60))
    assert fn(x, 0).shape == (120,)
    assert fn(x, -2).shape == (2, 3, 20)
    assert fn(x, start_axis=3).shape == (2, 3, 4, 5)
    assert fn(x.astype(jnp.bfloat16)).dtype == jnp.bfloat16


def test_flatten_of_an_empty_batch_keeps_it():
    """A batch of 0 rows flattens to (0, prod of the rest): reshape's -1 cannot be inferred
    there (it raised ZeroDivisionError), so the merged size is written out."""
    assert F.flatten(jnp.zeros((0, 3, 4))).shape == (0, 12)
    assert F.flatten(jnp.zeros((2, 0, 4)), 1).shape == (2, 0)
    assert nn.Flatten()(jnp.zeros((0, 8, 8, 3), jnp.bfloat16)).shape == (0, 192)


# ---- dropout ----------------------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_keep_rate_within_binomial_bound(p, impl_op):
    """The number kept of n is Binomial(n, 1 - p); for a fresh key it lies within
    6 standard deviations of n (1 - p) except with probability < 2e-9."""
    n = 200_000
    y = np.asarray(impl_op("dropout")(jnp.ones(n, jnp.float32), p, jax.random.key(1234)))
    kept = int((y != 0).sum())
    mean, sd = n * (1 - p), math.sqrt(n * p * (1 - p))
    assert abs(kept - mean) <= 6 * sd, f"p={p}: kept {kept} of {n}, expected {mean:.0f} +- {6 * sd:.0f} (6 sd)"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.5, 0.3])
def test_dropout_mask_and_scaling_are_exact(dtype, p, impl_op):
    """Mask = jax.random.bernoulli(key, float32(1 - p)) bit for bit; survivors = x * (1 / (1 - p))
    multiplied in float64 and rounded once to the dtype (exactly 2x for p = 0.5)."""
    fn = impl_op("dropout")
    key = jax.random.key(7)
    with x64_for(dtype):
        x = np.linspace(-3, 3, 1001).astype(NP_DTYPES[dtype])
        y = np.asarray(fn(jnp.asarray(x), p, key))
        mask = np.asarray(jax.random.bernoulli(key, jnp.float32(1 - p), x.shape))
    assert y.dtype == x.dtype
    assert np.array_equal(y != 0, mask & (x != 0)), f"{dtype}: the mask differs from jax.random.bernoulli's"
    x64 = x.astype(np.float64)
    scale = 1.0 / (1.0 - p)
    if p == 0.5:
        expect = 2 * x64
    elif dtype in ("float32", "float64"):
        expect = (x64 * scale).astype(NP_DTYPES[dtype]).astype(np.float64)
    else:  # one correct rounding of the float64 product (round-to-odd through float32)
        expect = E.round_dyadic(E.to_dyadic(x64 * scale), FORMATS[dtype])[0]
    got = y.astype(np.float64)[mask]
    assert np.array_equal(got, expect[mask]), f"{dtype}, p={p}: survivors are not x * (1 / (1 - p)) rounded once"


def test_dropout_mask_does_not_depend_on_x64(impl_op):
    fn = impl_op("dropout")
    x = jnp.ones(1000, jnp.float32)
    a = np.asarray(fn(x, 0.3, jax.random.key(3)))
    with jax.enable_x64(True):
        b = np.asarray(fn(x, 0.3, jax.random.key(3)))
    assert np.array_equal(a, b)


def test_dropout_same_key_same_mask_different_key_different_mask(impl_op):
    fn = impl_op("dropout")
    x = jnp.ones(4096, jnp.float32)
    a, b = fn(x, 0.5, jax.random.key(0)), fn(x, 0.5, jax.random.key(0))
    c = fn(x, 0.5, jax.random.key(1))
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))
    legacy = fn(x, 0.5, jax.random.PRNGKey(0))  # raw uint32[2] keys work too
    assert legacy.shape == x.shape
    x2 = jnp.ones((8, 64), jnp.float32)  # the mask contract holds for any shape
    mask = np.asarray(jax.random.bernoulli(jax.random.key(4), jnp.float32(0.75), x2.shape))
    assert np.array_equal(np.asarray(fn(x2, 0.25, jax.random.key(4))) != 0, mask)


def test_dropout_is_the_identity_when_not_training_or_p_is_zero(impl_op):
    fn = impl_op("dropout")
    x = jnp.linspace(-1, 1, 11, dtype=jnp.bfloat16)
    assert np.array_equal(np.asarray(fn(x, 0.5, jax.random.key(0), training=False)), np.asarray(x))
    assert np.array_equal(np.asarray(fn(x, 0.0, jax.random.key(0))), np.asarray(x))
    assert np.array_equal(np.asarray(fn(x, 0.7, None, training=False)), np.asarray(x))  # no key needed


@pytest.mark.jax_transforms
def test_dropout_gradient_is_mask_over_keep_probability(impl_op):
    fn = impl_op("dropout")
    key = jax.random.key(5)
    x = jnp.linspace(-1, 1, 64, dtype=jnp.float32)
    g = jax.grad(lambda t: fn(t, 0.5, key).sum())(x)
    mask = np.asarray(jax.random.bernoulli(key, jnp.float32(0.5), x.shape))
    assert np.array_equal(np.asarray(g), np.where(mask, 2.0, 0.0).astype(np.float32))


# ---- layers: constructors, initializers, repr, pytree, transformations --------------------------

def test_tutorial_constructors_and_shapes():
    irandom.seed(0)
    conv = nn.Conv2d(3, 64, kernel_size=(3, 3), padding="SAME")
    pool = nn.MaxPool2d(kernel_size=(2, 2), strides=(2, 2))
    fc = nn.Linear(64 * 4 * 4, 256)
    x = irandom.randn(2, 8, 8, 3)
    y = nn.Flatten()(pool(conv(x)))
    assert conv.weight.shape == (3, 3, 3, 64) and conv.bias.shape == (64,)
    assert fc.weight.shape == (1024, 256) and fc.bias.shape == (256,)
    assert y.shape == (2, 1024) and fc(y).shape == (2, 256)
    assert nn.AvgPool2d(2)(x).shape == (2, 4, 4, 3)
    assert nn.Dropout(p=0.5).p == 0.5 and nn.Dropout().training


@pytest.mark.parametrize("make,fan_in", [
    (lambda k: nn.Linear(50, 7, key=k), 50),
    (lambda k: nn.Conv2d(6, 4, 3, groups=2, key=k), 27),
])
def test_initializers_are_uniform_with_bound_one_over_sqrt_fan_in(make, fan_in):
    """PyTorch's kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)), bias likewise."""
    layer = make(jax.random.key(0))
    bound = 1 / math.sqrt(fan_in)
    for name in ("weight", "bias"):
        v = np.asarray(getattr(layer, name)).ravel()
        assert v.dtype == np.float32 and np.abs(v).max() <= bound, (name, np.abs(v).max(), bound)
    w = np.asarray(layer.weight).ravel()
    # U(-b, b) has variance b**2 / 3; over >= 100 samples the sample std is within 30 % of it
    assert abs(w.std() / (bound / math.sqrt(3)) - 1) < 0.3, (w.std(), bound / math.sqrt(3))


def test_initialization_is_reproducible_from_key_or_global_seed():
    a, b = nn.Linear(5, 3, key=jax.random.key(1)), nn.Linear(5, 3, key=jax.random.key(1))
    assert np.array_equal(np.asarray(a.weight), np.asarray(b.weight))
    irandom.seed(42)
    c, r1 = nn.Linear(5, 3), irandom.randn(3)
    irandom.seed(42)
    d, r2 = nn.Linear(5, 3), irandom.randn(3)
    assert np.array_equal(np.asarray(c.weight), np.asarray(d.weight)) and np.array_equal(np.asarray(r1), np.asarray(r2))
    e = nn.Linear(5, 3)  # the global key advanced: new parameters
    assert not np.array_equal(np.asarray(c.weight), np.asarray(e.weight))
    assert nn.Linear(5, 3, dtype=jnp.bfloat16, key=jax.random.key(0)).weight.dtype == jnp.bfloat16
    assert nn.Linear(5, 3, bias=False, key=jax.random.key(0)).bias is None


@functools.lru_cache(maxsize=None)
def _built(seed):
    k = jax.random.split(jax.random.key(seed), 3)
    return nn.Sequential(
        nn.Conv2d(3, 4, (3, 3), key=k[0]), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, padding="VALID", groups=2, key=k[1]), nn.AvgPool2d(2, padding="SAME"),
        nn.Flatten(), nn.Linear(4 * 1 * 1, 5, key=k[2]), nn.Dropout(0.5),
    )


def _copy(model):
    """New module objects sharing the arrays (so a test may change attributes freely)."""
    return jax.tree_util.tree_map(lambda a: a, model)


def _small_model(seed=0):
    return _copy(_built(seed))


def test_repr_shows_the_tree():
    model = _small_model()
    assert repr(model) == (
        "Sequential(\n"
        "  (0): Conv2d(3, 4, kernel_size=(3, 3), stride=(1, 1), padding='SAME')\n"
        "  (1): ReLU()\n"
        "  (2): MaxPool2d(kernel_size=(2, 2), strides=(2, 2), padding='VALID')\n"
        "  (3): Conv2d(4, 4, kernel_size=(3, 3), stride=(1, 1), padding='VALID', groups=2)\n"
        "  (4): AvgPool2d(kernel_size=(2, 2), strides=(2, 2), padding='SAME')\n"
        "  (5): Flatten(start_axis=1)\n"
        "  (6): Linear(in_features=4, out_features=5, bias=True)\n"
        "  (7): Dropout(p=0.5)\n"
        ")")

    class Net(nn.Module):
        def __init__(self):
            self.body = _small_model()
            self.head = nn.Linear(5, 2, bias=False, key=jax.random.key(1))

    text = repr(Net())
    assert text.startswith("Net(\n  (body): Sequential(\n    (0): Conv2d(3, 4,"), text
    assert text.endswith("    (7): Dropout(p=0.5)\n  )\n"
                         "  (head): Linear(in_features=5, out_features=2, bias=False)\n)"), text


def test_pytree_round_trip_keeps_parameters_and_hyperparameters():
    model = _small_model()
    leaves, treedef = jax.tree_util.tree_flatten(model)
    assert len(leaves) == 6  # three weights, three biases; everything else is static
    again = jax.tree_util.tree_unflatten(treedef, leaves)
    assert repr(again) == repr(model) and type(again[0]) is nn.Conv2d
    assert all(a is b for a, b in zip(jax.tree_util.tree_leaves(again), leaves))
    doubled = jax.tree_util.tree_map(lambda v: 2 * v, model)
    assert np.array_equal(np.asarray(doubled[6].weight), 2 * np.asarray(model[6].weight))
    assert doubled[7].training and doubled[3].groups == 2


@pytest.mark.slow
def test_model_under_jit_grad_and_vmap():
    model = _small_model().eval()
    x = jax.random.normal(jax.random.key(9), (2, 6, 6, 3))
    y = jax.jit(lambda m, v: m(v))(model, x)
    assert np.array_equal(np.asarray(model(x)), np.asarray(y)), "jit changed the result of the eager model"

    # grad with respect to the whole model: a model-shaped tree of gradients
    g = jax.jit(jax.grad(lambda m: m(x).sum()))(model)
    assert type(g) is nn.Sequential and g[6].weight.shape == (4, 5)
    assert np.array_equal(np.asarray(g[6].bias), np.full(5, 2.0, np.float32))  # d sum / d bias = batch size

    # vmap over a stack of models (an ensemble), and over the images of the batch
    stack = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), model, _small_model(1).eval())
    ys = jax.jit(jax.vmap(lambda m: m(x)))(stack)
    assert ys.shape == (2, 2, 5) and np.array_equal(np.asarray(ys[0]), np.asarray(y))
    yv = jax.jit(jax.vmap(lambda v: model(v[None])[0]))(x)
    assert np.array_equal(np.asarray(yv), np.asarray(y)), "vmap over images changed the result"


@pytest.mark.slow
def test_model_gradient_matches_finite_differences_in_float64():
    with jax.enable_x64(True):
        model = jax.tree_util.tree_map(lambda v: v.astype(jnp.float64), _small_model()).eval()
        x = jax.random.normal(jax.random.key(3), (2, 6, 6, 3), jnp.float64)

        def loss(m):
            return jnp.sum(jnp.sin(m(x)))

        g = jax.jit(jax.grad(loss))(model)
        loss = jax.jit(loss)
        h = 1e-6
        for idx in [(0, 0, 0, 1), (2, 1, 1, 3)]:
            w0 = model[0].weight
            plus, minus = _copy(model), _copy(model)
            plus[0].weight = w0.at[idx].add(h)
            minus[0].weight = w0.at[idx].add(-h)
            fd = (loss(plus) - loss(minus)) / (2 * h)
            # central difference: truncation ~ h**2 |f'''| ~ 1e-12, rounding ~ eps |f| / h ~ 1e-10
            assert abs(float(fd) - float(g[0].weight[idx])) <= 1e-6, (idx, float(fd), float(g[0].weight[idx]))


def test_dropout_layer_keys_and_modes():
    x = jnp.ones((2, 1000), jnp.float32)
    layer = nn.Dropout(0.5)
    irandom.seed(0)
    a, b = layer(x), layer(x)
    assert not np.array_equal(np.asarray(a), np.asarray(b)), "the global key did not advance between calls"
    irandom.seed(0)
    assert np.array_equal(np.asarray(layer(x)), np.asarray(a)), "seed(0) did not reproduce the mask"
    k = jax.random.key(11)
    assert np.array_equal(np.asarray(layer(x, key=k)), np.asarray(F.dropout(x, 0.5, k)))
    assert np.array_equal(np.asarray(layer.eval()(x)), np.asarray(x)) and not layer.training
    layer.train()
    assert layer.training
    # under jit: an explicit key is required, and then each key gives its own mask
    f = jax.jit(lambda m, v, key: m(v, key=key))
    assert np.array_equal(np.asarray(f(layer, x, k)), np.asarray(layer(x, key=k)))
    with pytest.raises(ValueError, match=r"Dropout\(p=0.5\) in training mode was called inside a JAX "
                                         r"transformation .* without a key"):
        jax.jit(lambda m, v: m(v))(layer, x)
    # the layer and its input closed over: the same global key would be frozen into the compiled
    # function, every call dropping the same elements; refused, not silently repeated
    g = jax.jit(lambda: layer(x))
    with pytest.raises(ValueError, match=r"Dropout\(p=0.5\) .* without a key; .* every call would drop the "
                                         r"same elements; pass one: layer\(x, key=k\)"):
        g()
    h = jax.jit(lambda key: layer(x, key=key))  # the fix: a new key per call, a new mask per call
    assert not np.array_equal(np.asarray(h(jax.random.key(1))), np.asarray(h(jax.random.key(2))))


def test_sequential_splits_its_key_among_dropout_layers():
    model = nn.Sequential(nn.Dropout(0.5), nn.ReLU(), nn.Dropout(0.5))
    x = jnp.ones((4, 256), jnp.float32)
    k = jax.random.key(2)
    k0, _, k2 = jax.random.split(k, 3)
    expect = F.dropout(F.dropout(x, 0.5, k0), 0.5, k2)
    assert np.array_equal(np.asarray(model(x, key=k)), np.asarray(expect))
    assert np.array_equal(np.asarray(jax.jit(lambda m, v, key: m(v, key=key))(model, x, k)), np.asarray(expect))
    ys = jax.vmap(lambda key: model(x, key=key))(jax.random.split(k, 3))
    assert not np.array_equal(np.asarray(ys[0]), np.asarray(ys[1])), "vmap over keys gave equal masks"


# Bad input and its messages: tests/input_rules.py (one table, tests/test_input_rules.py).


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_dropout_value_under_grad_is_the_forward_value(dtype):
    """The one-rounding rule's derivative runs when JAX differentiates, outside the op's
    ``enable_x64`` block: the value it returns under ``jax.vjp`` must be the forward value
    bit for bit (an earlier rule truncated its float64 comparison to float32 there), with no
    dtype warning (the suite turns warnings into errors)."""
    x = (jnp.linspace(-3.0, 3.0, 4096, dtype=jnp.float32) * 1.001).astype(dtype)
    key = jax.random.key(3)
    f = lambda t: F.dropout(t, 0.3, key)
    y = np.asarray(f(x)).view(np.uint16)
    y_vjp, pullback = jax.vjp(f, x)
    assert np.array_equal(np.asarray(y_vjp).view(np.uint16), y), \
        f"dropout {dtype}: the value under jax.vjp differs from the forward value"
    (g,) = pullback(jnp.ones_like(y_vjp))
    kept = y != 0
    want = np.float32(1 / 0.7)
    assert np.all(np.asarray(g, np.float32)[kept] == np.asarray(jnp.asarray(want).astype(dtype), np.float32)), \
        f"dropout {dtype}: the gradient of a kept element is not 1/(1-p) rounded to {dtype}"
