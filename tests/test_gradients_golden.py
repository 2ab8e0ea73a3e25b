"""Derivatives of every elementwise case x dtype x device against the stored golden references.

For ``grad:<id>`` cases the op ``f`` is differentiated three ways on the
golden inputs: ``vmap(grad(f))``, ``vjp(f)`` and ``jvp(f)`` (for an elementwise
op all three give the diagonal of the Jacobian; the cotangent and tangent are
random values in {±1, ±2}, which the products and the division back leave
exact); for ``grad2:<id>`` the same three ways are applied
to ``f' = vmap(grad(f))`` (reverse-over-reverse, forward-over-reverse).  Each
result is measured against the golden derivative with the case's budget; the
report gets one row (kind ``grad``/``grad2``, the ``vmap(grad)`` figures, the
worst of the three modes failing the test).

Before that, the VJP and the JVP must agree: ``<v, J u> = <J^T v, u>`` for
random ``u, v`` (each side rounds one product per element in the dtype, so
they agree to ``2 * 2**-p * sum|v_i J_ii u_i|``).  A known failure (float64,
xfail strict) covers only a golden mismatch (``GoldenMismatch``); an
inconsistency still fails the test.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tools import devices as D
from tools.inputs import KINKS, uniform
from tools.registry import DTYPES, by_family
from tools.registry.gradients import grad_inputs, inputs_digest

from tools.verdict import Verdict

from .helpers import JNP_DTYPES, budget_for, case_param, check_against, check_subnormal_class, x64_for

CASES = by_family("gradients")


class GoldenMismatch(AssertionError):
    """A derivative outside its budget (the only failure a known failure expects)."""


PARAMS = [case_param(c, d, raises=GoldenMismatch) for c in CASES for d in DTYPES if d in c.budgets]


def _differentiated(fn, params, order):
    """``(scalar, elementwise)``: the function whose derivative is the derivative of
    ``order`` of the op, for scalars (for ``grad``) and for arrays (for vjp/jvp)."""
    f = functools.partial(fn, **params)
    if order == 1:
        return f, f
    return jax.grad(f), jax.vmap(jax.grad(f))


def _signs_and_twos(n, stream):
    """``n`` values in {-2, -1, 1, 2}: multiplying by them, and dividing back, is exact
    (short of overflow, and of underflow that flushing would zero anyway)."""
    h = uniform(n, stream)
    return np.where(h < 0.5, -1.0, 1.0) * np.where((h * 4) % 2 < 1, 1.0, 2.0)


@functools.lru_cache(maxsize=None)
def _all_modes(fn, params_key, order):
    """The jitted ``(x, u, v) -> [vmap(grad)(x), J u, J^T v]`` of a case, one object
    per case so that its trace is reused across dtypes and devices.  The three
    results are stacked into one array: XLA then compiles one fusion instead of
    seven (0.19 s instead of 0.30 s per program), with the same elementwise code."""
    g_scalar, g = _differentiated(fn, dict(params_key), order)

    def all_modes(xd, ud, vd):
        d_grad = jax.vmap(jax.grad(g_scalar))(xd)
        _, pullback = jax.vjp(g, xd)
        jtv, = pullback(vd)
        _, ju = jax.jvp(g, (xd,), (ud,))
        return jnp.stack([d_grad, ju, jtv])

    return jax.jit(all_modes)


def _evaluate(fn, params_key, order, dtype, device, store):
    """``(x, {"grad", "vjp", "jvp"}, (u, J u, v, J^T v))`` on the golden inputs of the case.

    ``jvp`` is ``J u / u`` and ``vjp`` is ``J^T v / v`` for ``u, v`` of
    ``_signs_and_twos``: the diagonal of the Jacobian, exactly, from the same
    two products the consistency check uses (one compiled program per test)."""
    xs = store.load_inputs(dtype)
    x = xs[grad_inputs(dtype, xs)]
    n = x.shape[0]
    u = _signs_and_twos(n, 9001).astype(x.dtype)
    v = _signs_and_twos(n, 9002).astype(x.dtype)
    with x64_for(dtype):
        args = [jax.device_put(jnp.asarray(a, dtype=JNP_DTYPES[dtype]), device) for a in (x, u, v)]
        d_grad, ju, jtv = np.asarray(jax.block_until_ready(_all_modes(fn, params_key, order)(*args)))
    with np.errstate(all="ignore"):
        modes = {"grad": d_grad, "vjp": (jtv / v).astype(x.dtype), "jvp": (ju / u).astype(x.dtype)}
    return x, modes, (u, ju, v, jtv)


def kink_points(x, rounded):
    """Where the derivative has a convention rather than a value: the inputs at ``tools.inputs.KINKS``
    (0 included) at which the exact derivative jumps between the nearest golden inputs on either
    side (relu' at 0, hard_swish' at ±3, elu'' at 0).  Found from the golden data, so no op needs
    a table of its kinks."""
    x64 = np.asarray(x).astype(np.float64)
    r = np.asarray(rounded, np.float64)
    order = np.argsort(x64, kind="stable")
    xs = x64[order]
    out = np.zeros(x64.shape, bool)
    for k in KINKS:
        at = np.flatnonzero(x64 == k)
        lo, hi = np.searchsorted(xs, k, "left") - 1, np.searchsorted(xs, k, "right")
        if at.size == 0 or lo < 1 or hi + 1 >= xs.size:
            continue
        a2, a, b, b2 = (r[order[i]] for i in (lo - 1, lo, hi, hi + 1))
        if not np.isfinite([a2, a, b, b2]).all():
            continue
        # a jump: a quarter of the values (far below the jumps at kinks: relu' 0 -> 1, selu' 1.05 -> 1.76,
        # softsign'' -2 -> 2) and 8 times the change between the next neighbours on either side (a
        # smooth derivative, even a steep tail like bfloat16 gelu'' at 6, changes about as much there)
        jump = abs(a - b)
        if jump > 0.25 * max(abs(a), abs(b)) and jump > 8 * max(abs(a - a2), abs(b - b2)):
            out[at] = True
    return out


def _bits_equal(a, b):
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return bool(np.all(((a64 == b64) & (np.signbit(a64) == np.signbit(b64))) | (np.isnan(a64) & np.isnan(b64))))


@pytest.mark.jax_transforms
@pytest.mark.parametrize("case,dtype", PARAMS)
def test_grad_vjp_jvp(case, dtype, device, impl_op, store, record, reproduce):
    """VJP/JVP consistency first (a failure here is never a known failure), then
    ``vmap(grad)``, ``vjp`` and ``jvp`` against the golden derivative."""
    order = dict(case.extra)["order"]
    x, modes, (u, ju, v, jtv) = _evaluate(impl_op(case.op), case.kwargs, order, dtype, device, store)
    dev = D.device_id(device)
    _check_consistency(case, dtype, dev, x, u, ju, v, jtv, reproduce)

    ref = store.load_case(case.family, dtype, case.id)
    if not np.array_equal(ref["inputs_sha256"], inputs_digest(x)):
        raise AssertionError(
            f"{case.id} {dtype}: the golden file was made for other inputs than "
            f"tools.registry.gradients.grad_inputs gives now; regenerate with: "
            f"python -m tools.regen_golden --only '{case.id}'")
    budget = budget_for(case, dtype)
    rounded = ref["rounded"].astype(np.float64)
    # the derivative at a kink is a convention (test_grad_at_kinks), not a figure of accuracy
    keep = ~kink_points(x, rounded)
    kind = "grad" if order == 1 else "grad2"
    base = dict(case.extra)["of"]
    failures = []
    for mode, got in modes.items():
        assert got.dtype == x.dtype, f"{case.id} via {mode} returned {got.dtype} for a {dtype} input"
        if mode != "grad" and _bits_equal(got, modes["grad"]):
            continue  # the same bits as vmap(grad): the same verdict
        label = f"{kind} of {base} via {mode} ({case.id}) {dtype} on {dev} vs golden"
        row, msg, codes_kept = check_against(label, x[keep], got[keep], rounded[keep], ref["residual"][keep], dtype,
                                             budget, reproduce, kind=kind, case=base, device=dev, source="golden")
        codes = np.zeros(x.shape, codes_kept.dtype)
        codes[keep] = codes_kept  # the subnormal check reads the result at ±0 (a device that reads them as zero)
        if mode == "grad":
            row.figures["also_checked"] = "vjp, jvp"
            record(row)
        if msg:
            failures.append(msg)
            continue
        try:
            check_subnormal_class(label, x, got.astype(np.float64), rounded, codes == 1, device, dtype)
        except AssertionError as e:
            failures.append(str(e))
    if failures:
        raise GoldenMismatch("\n".join(failures))


def _check_consistency(case, dtype, dev, x, u, ju, v, jtv, reproduce):
    """``<v, J u> = <J^T v, u>``: both sides round one product per element in the
    dtype, so they differ by at most ``2 * 2**-p * sum|v_i J_ii u_i|``, plus what
    underflow or flushing to zero can take from each product (``min_normal``)."""
    from reference import FORMATS

    fmt = FORMATS[dtype]
    x64 = np.asarray(x).astype(np.float64)
    u, ju, v, jtv = (np.asarray(a).astype(np.float64) for a in (u, ju, v, jtv))
    finite = np.isfinite(x64)
    bad = finite & ~(np.isfinite(ju) & np.isfinite(jtv))
    assert not bad.any(), (
        f"{case.id} {dtype} on {dev}: J u or J^T v is not finite at finite x = {x64[bad][:3]!r}; "
        f"reproduce: {reproduce}")
    lhs = float(np.dot(v[finite], ju[finite]))
    rhs = float(np.dot(jtv[finite], u[finite]))
    scale = float(np.sum(np.abs(v[finite] * ju[finite])))
    tol = (2.0 * 2.0**-fmt.p + 1e-12) * scale + 2.0 * finite.sum() * fmt.min_normal
    assert abs(lhs - rhs) <= tol, (
        f"{case.id} {dtype} on {dev}: VJP/JVP inconsistent: <v, J u> = {lhs!r} but <J^T v, u> = {rhs!r}, "
        f"difference {abs(lhs - rhs):.3g} > {tol:.3g} (2 roundings per element in {dtype}); reproduce: {reproduce}")


KINK_PARAMS = [pytest.param(c, d, id=f"{c.id}-{d}") for c in CASES for d in DTYPES if d in c.budgets]


@pytest.mark.convention
@pytest.mark.jax_transforms
@pytest.mark.parametrize("case,dtype", KINK_PARAMS)
def test_grad_at_kinks(case, dtype, impl_op, store, record, reproduce):
    """At each kink of the golden inputs (``kink_points``) ``vmap(grad)`` gives the contract's
    convention, bit for bit (the sign of a zero counts; the first device)."""
    xs = store.load_inputs(dtype)
    x = xs[grad_inputs(dtype, xs)]
    rounded = store.load_case(case.family, dtype, case.id)["rounded"].astype(np.float64)
    at = np.flatnonzero(kink_points(x, rounded))
    if not at.size:
        return
    order = dict(case.extra)["order"]
    g_scalar, _ = _differentiated(impl_op(case.op), dict(case.kwargs), order)
    with x64_for(dtype):
        got = np.asarray(jax.jit(jax.vmap(jax.grad(g_scalar)))(jnp.asarray(x[at], dtype=JNP_DTYPES[dtype])))
    got = got.astype(np.float64)
    name = f"{dict(case.extra)['of']}{chr(8242) * order}"
    bad = [f"expected {name}({float(x[i])!r}) = {rounded[i]!r} in {dtype}, got {g!r}"
           for i, g in zip(at, got) if not _bits_equal(np.array([g]), rounded[i:i + 1])]
    row = Verdict(kind="check", case=dict(case.extra)["of"], dtype=dtype, device=D.device_id(jax.devices()[0]),
                  source="kinks", passed=not bad, cause="convention" if bad else "",
                  detail=f"differs from the contract's convention: {'; '.join(bad)}" if bad else "",
                  figures={"kinks": [float(x[i]) for i in at]})
    record(row)
    assert row.passed, f"{case.id}: {row.detail} (docs/conventions.md); reproduce: {reproduce}"


def test_kink_points_are_where_the_exact_derivative_jumps():
    x = np.array([-0.5, -2.0 ** -20, 0.0, 2.0 ** -20, 3.0 - 2.0 ** -19, 3.0 - 2.0 ** -20, 3.0, 3.0 + 2.0 ** -20, 3.5,
                  6.0], np.float32)
    relu1 = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 1], np.float64)
    assert kink_points(x, relu1).tolist() == [False, False, True] + [False] * 7
    hard_swish1 = np.array([-0.2, 0.5, 0.5, 0.5, 1.5, 1.5, 1.0, 1.0, 1.0, 1.0])
    assert np.flatnonzero(kink_points(x, hard_swish1)).tolist() == [6]
    tail = np.exp(-8.0 * x.astype(np.float64))  # a steep smooth tail: no kink
    assert not kink_points(x, tail).any()
    smooth = np.cos(x.astype(np.float64))  # no jump anywhere; 6.0 has no neighbour above: never a kink
    assert not kink_points(x, smooth).any()
