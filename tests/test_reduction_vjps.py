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
from tools import devices as D
from tools import metric, reporting
from tools.registry import by_family
from tools.registry import reductions as RR
from tools.registry import vjps as RV

from .helpers import x64_for

CASES = by_family("vjps")


def _param(c, d):
    b = c.budgets[d]
    marks = [pytest.mark.known_failure(b.known_failure)] if b.known_failure else []
    return pytest.param(c, d, id=f"{c.id}-{d}", marks=marks)


PARAMS = [_param(c, d) for c in CASES for d in c.budgets]


def _term_unit(term_exp, fmt):
    """ulp of ``2**term_exp`` in ``fmt`` (the subnormal spacing below the normal range)."""
    return np.ldexp(1.0, (np.maximum(np.asarray(term_exp, np.int64), fmt.emin) - (fmt.p - 1)))


def vjp_of(fn, case, arrays, device, cotangents):
    """``J(x)^T g`` of the op ``fn`` at the case's input for each cotangent (one ``jax.vjp``)."""
    base = RV.base_case(case)
    params = {k: jax.device_put(jnp.asarray(v), device) for k, v in arrays.items()
              if k in ("weight", "bias", "running_mean", "running_var")}
    x = jax.device_put(jnp.asarray(arrays["x"]), device)
    _, pullback = jax.vjp(lambda t: RR.call_op(fn, base, dict(params, x=t))["y"], x)
    return np.stack([np.asarray(pullback(jax.device_put(jnp.asarray(g), device))[0]) for g in cotangents])


def measure(got, arrays, dtype, device):
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
    assert got.dtype == g.dtype, f"{case.id}: the VJP of a {dtype} input is {got.dtype}; expected {dtype}"
    budget = case.budgets[dtype]
    stats, abs_max, abs_ulps, codes = measure(got, arrays, dtype, device)
    dev = D.device_id(device)
    record(reporting.row_from_stats("vjp", case.id, dtype, dev, "golden", stats, budget,
                                    extra={"max_abs_ulps": abs_max, "abs_unit": "ulp(largest term)",
                                           "budget_max_abs_ulps": budget.max_abs_ulps}))
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
    assert not lines, "\n".join([f"{case.id} {dtype} on {dev}, VJP vs golden:"] + lines
                                + [f"  reproduce: {reproduce}"])


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
