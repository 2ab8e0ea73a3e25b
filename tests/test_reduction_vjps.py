"""Derivatives of the softmax family and the normalizations against exact VJPs (golden).

``jax.vjp`` of the implementation under test, at each ``vjp:<case>`` input, with each of the
case's fixed cotangents, against the correctly rounded exact VJP (``reference/reduction_vjps.py``).
Budgets and their derivations: ``tools/registry/vjps.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reference import FORMATS
from reference._convert import RESIDUAL_SCALE, round_to_format
from tools import calls
from tools import devices as D
from tools import metric, reporting
from tools.registry import by_family
from tools.registry import vjps as RV

from .helpers import case_param, x64_for

CASES = by_family("vjps")


PARAMS = [case_param(c, d) for c in CASES for d in c.budgets]


def _term_unit(term_exp, fmt):
    """ulp of ``2**term_exp`` in ``fmt`` (the subnormal spacing below the normal range)."""
    return np.ldexp(1.0, (np.maximum(np.asarray(term_exp, np.int64), fmt.emin) - (fmt.p - 1)))


def vjp_of(fn, case, arrays, device, cotangents):
    """``J(x)^T g`` of the op ``fn`` at the case's input for each cotangent (one ``jax.vjp``)."""
    base = RV.base_case(case)
    params = {k: jax.device_put(jnp.asarray(v), device) for k, v in arrays.items()
              if k in ("weight", "bias", "running_mean", "running_var")}
    x = jax.device_put(jnp.asarray(arrays["x"]), device)
    _, pullback = jax.vjp(lambda t: calls.call(fn, base.op, dict(params, x=t), base.params)["y"], x)
    return np.stack([np.asarray(pullback(jax.device_put(jnp.asarray(g), device))[0]) for g in cotangents])


def measure(got, arrays, dtype):
    """``(stats, abs_max, abs_ulps, codes)``: the metric's statistics (ulps of the result) and
    ``|got - exact|`` in ulps of ``2**term_exp`` over the normal-range results."""
    fmt = FORMATS[dtype]
    rounded, residual = np.asarray(arrays["rounded"]).astype(np.float64), arrays["residual"]
    got64 = np.asarray(got).astype(np.float64)
    stats, _, codes = metric.evaluate(got64, rounded, residual, dtype, np.inf)
    exact = rounded + residual / RESIDUAL_SCALE * metric.ulp_of_exact(rounded, residual, fmt)
    with np.errstate(all="ignore"):
        abs_ulps = np.where(codes == 0, np.abs(got64 - exact) / _term_unit(arrays["term_exp"], fmt), 0.0)
    return stats, float(abs_ulps.max()), abs_ulps, codes


@pytest.mark.jax_transforms
@pytest.mark.parametrize("case,dtype", PARAMS)
def test_vjp_golden(case, dtype, device, impl_op, store, record, reproduce):
    """Every VJP case x dtype x device: ``|got - exact|`` within the budget, in ulps of the
    largest term; subnormal results correctly rounded or flushed (on a device that flushes)."""
    fn = impl_op(case.op)
    arrays = RV.load_arrays(store, case, dtype)
    g = arrays["g"]
    with x64_for(dtype):
        got = vjp_of(fn, case, arrays, device, g)
    assert got.dtype == g.dtype, f"{case.id}: the VJP returned {got.dtype} for a {dtype} input"
    budget = case.budgets[dtype]
    stats, abs_max, abs_ulps, codes = measure(got, arrays, dtype)
    dev = D.device_id(device)
    lines = []
    rounded = np.asarray(arrays["rounded"]).astype(np.float64)
    got64 = got.astype(np.float64)

    def where(i):
        k, *idx = np.unravel_index(i, got.shape)
        return (f"cotangent {RV.COTANGENTS[k]!r} at {tuple(int(j) for j in idx)}: got {got64.reshape(-1)[i]!r}, "
                f"correctly rounded {rounded.reshape(-1)[i]!r}, largest term 2**{int(arrays['term_exp'].reshape(-1)[i])}")

    over = np.flatnonzero(abs_ulps.reshape(-1) > budget.max_abs_ulps)
    if over.size:
        lines.append(f"  {over.size} of {stats.n_normal} results are more than {budget.max_abs_ulps} ulps of the "
                     f"largest term off (max {abs_max:.4g}); worst first:")
        lines += ["    " + where(i) for i in over[np.argsort(-abs_ulps.reshape(-1)[over])][:5]]
    if stats.n_nonfinite_mismatch:
        lines.append(f"  {stats.n_nonfinite_mismatch} nan/inf mismatches")
    sub = (codes == 1).reshape(-1)
    if sub.any():
        beh = D.subnormal_behaviour(device)["float64" if dtype == "float64" else "float32"]
        ok = (got64 == rounded).reshape(-1) | (beh["flushes_results"] & (got64.reshape(-1) == 0))
        bad = np.flatnonzero(sub & ~ok)
        if bad.size:
            lines.append(f"  {bad.size} subnormal results neither correctly rounded nor flushed ({beh}):")
            lines += ["    " + where(i) for i in bad[:5]]
    msg = "\n".join([f"{case.id} {dtype} on {dev}, VJP vs golden:"] + lines + [f"  reproduce: {reproduce}"]) \
        if lines else None
    row = reporting.row_from_stats("vjp", case.id, dtype, dev, "golden", stats, budget, message=msg,
                                   extra={"max_abs_ulps": abs_max, "abs_unit": "ulp(largest term)"})
    record(row)
    assert row.passed, msg


def test_cotangents_are_the_stored_ones(store):
    """The stored cotangents are the registry's rule (a changed rule is noticed, not compared
    against VJPs of other cotangents)."""
    for case in CASES:
        for dtype in case.budgets:
            arrays = RV.load_arrays(store, case, dtype)
            want = RV.cotangents(case, dtype, arrays["x"].shape)
            assert np.array_equal(want.astype(np.float64), arrays["g"].astype(np.float64)), \
                f"{case.id} {dtype}: the stored cotangents differ from tools.registry.vjps.cotangents"


# ---- the reference's exact paths ---------------------------------------------------------------

def test_round_sqrt_ratio_exact_and_inexact():
    """``±sqrt(P/Q)`` by an integer square root: exact roots come out exact (residual 0, an exact
    midpoint rounds to even), an irrational root rounds as mpmath at 400 bits does."""
    import math

    import mpmath

    from reference import reduction_vjps as REF
    f32 = FORMATS["float32"]
    assert REF.round_sqrt_ratio(False, 9, 4, f32) == (1.5, 0.0)
    tie = REF.round_sqrt_ratio(True, 1, 2**300, f32)  # -2**-150: exactly half the smallest subnormal
    assert tie == (0.0, -0.5) and math.copysign(1.0, tie[0]) == -1.0, f"-2**-150 must round to -0.0, got {tie}"
    for P, Q in ((2, 1), (1, 3), (10**40 + 7, 3**50), (5, 2**200)):
        got, res = REF.round_sqrt_ratio(False, P, Q, f32)
        with mpmath.workprec(400):
            exact = mpmath.sqrt(mpmath.mpf(P) / Q)
            want, want_res = round_to_format(exact, f32)
        assert got == want and abs(res - want_res) < 2.0**-40, (P, Q, got, want)


def test_softmax_vjp_exact_zero_and_exact_values():
    """A cotangent constant on the row has VJP exactly 0 (softmax); log_softmax with ``sum g = 0``
    gives ``g`` itself; a row of equal logits has the rational VJP ``(g - mean g) / n``."""
    from reference import reduction_vjps as REF
    f32 = FORMATS["float32"]
    x = np.array([[0.5, -3.0, 2.0, 7.25]], np.float32)
    r, q, t = REF.softmax_vjp(x, np.full_like(x, 0.75), f32)
    assert (r == 0).all() and (q == 0).all() and (t == REF.NO_TERM).all()
    g = np.array([[1.0, -2.0, 0.5, 0.5]], np.float32)
    r, q, _ = REF.log_softmax_vjp(x, g, f32)
    assert (r == g).all() and (q == 0).all()
    r, q, _ = REF.softmax_vjp(np.zeros((1, 4), np.float32), g, f32)
    assert (r == (g - g.mean()) / 4).all() and (q == 0).all()


# ---- the stored VJPs against the textbook formulas at 320 bits -----------------------------------

def _groups(op, kwargs, x):
    """``x`` arranged as rows of the elements one statistic (softmax row) is taken over, by numpy
    axis moves written apart from the reference's index arithmetic."""
    if op in ("softmax", "log_softmax"):
        return np.moveaxis(x, kwargs["axis"], -1).reshape(-1, x.shape[kwargs["axis"]])
    if op in ("layer_norm", "rms_norm"):
        return x.reshape(-1, int(np.prod(kwargs["normalized_shape"])))
    C = x.shape[-1]
    if op == "batch_norm":
        return x.reshape(-1, C).T
    if op == "instance_norm":
        return np.moveaxis(x.reshape(x.shape[0], -1, C), 2, 1).reshape(x.shape[0] * C, -1)
    G = kwargs["num_groups"]
    return np.moveaxis(x.reshape(x.shape[0], -1, G, C // G), 2, 1).reshape(x.shape[0] * G, -1)


def _textbook(op, eps, xs, gs, ws):
    """The VJP of one row by its textbook formula, in the current mpmath precision."""
    import mpmath
    n = len(xs)
    x, g = [mpmath.mpf(float(v)) for v in xs], [mpmath.mpf(float(v)) for v in gs]
    if op in ("softmax", "log_softmax"):
        e = [mpmath.exp(v - max(x)) for v in x]
        Z = mpmath.fsum(e)
        p = [v / Z for v in e]
        dot, G = mpmath.fsum(a * b for a, b in zip(p, g)), mpmath.fsum(g)
        return [pj * (gj - dot) for pj, gj in zip(p, g)] if op == "softmax" else \
            [gj - pj * G for pj, gj in zip(p, g)]
    h = [gi * mpmath.mpf(float(wi)) for gi, wi in zip(g, ws)]
    d = x if op == "rms_norm" else [v - mpmath.fsum(x) / n for v in x]
    r = 1 / mpmath.sqrt(mpmath.fsum(v * v for v in d) / n + mpmath.mpf(eps))
    xhat = [v * r for v in d]
    mh = 0 if op == "rms_norm" else mpmath.fsum(h) / n
    mhx = mpmath.fsum(a * b for a, b in zip(h, xhat)) / n
    return [r * (hi - mh - xi * mhx) for hi, xi in zip(h, xhat)]


@pytest.mark.parametrize("case,dtype", [pytest.param(c, d, id=f"{c.id}-{d}") for c in CASES for d in c.budgets])
def test_stored_vjps_match_textbook_formula(case, dtype, store):
    """Every stored VJP is the textbook formula, evaluated by mpmath at 320 bits
    (no exact arithmetic, no error bound: a second derivation of the same numbers), rounded; a
    stored exact zero must be below 2**-250 of the row's scale at 320 bits."""
    import mpmath
    fmt = FORMATS[dtype]
    arrays = RV.load_arrays(store, case, dtype)
    kw = dict(case.kwargs)
    x = arrays["x"].astype(np.float64)
    w = np.broadcast_to(arrays["weight"].astype(np.float64), x.shape) if "weight" in arrays else np.ones(x.shape)
    xr, wr = _groups(case.op, kw, x), _groups(case.op, kw, w)
    for k, rule in enumerate(RV.COTANGENTS):
        gr = _groups(case.op, kw, arrays["g"][k].astype(np.float64))
        want = _groups(case.op, kw, arrays["rounded"][k].astype(np.float64))
        with mpmath.workprec(320):
            for i in range(xr.shape[0]):
                vals = _textbook(case.op, kw.get("eps", 0.0), xr[i], gr[i], wr[i])
                scale = max(abs(v) for v in vals) + mpmath.fsum(abs(v) for v in gr[i])
                for j, v in enumerate(vals):
                    exact_zero = want[i, j] == 0 and abs(v) < mpmath.ldexp(scale, -250)
                    got = 0.0 if exact_zero else round_to_format(v, fmt)[0]
                    assert got == want[i, j], (f"{case.id} {dtype}, cotangent {rule!r}, group {i}, element {j}: "
                                               f"stored {want[i, j]!r}, the textbook formula at 320 bits rounds "
                                               f"to {got!r}")
