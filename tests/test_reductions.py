"""Softmax family and normalization layers: golden cases, live references, layers, sharding, errors."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import impl.nn as nn
from reference import FORMATS
from reference import reductions as RREF
from tools import calls
from tools import devices as D
from tools import metric, profiles, reporting
from tools.dtypes import NP_DTYPES
from tools.registry import by_family
from tools.registry import reductions as RR

from .helpers import budget_for, case_param, x64_for

CASES = by_family("reductions")
STATS = ("running_mean", "running_var")


PARAMS = [case_param(c, d) for c in CASES for d in c.budgets]


# ---- measuring ------------------------------------------------------------------------

def _ulp(v, fmt):
    """Spacing of ``fmt`` at |v| (subnormal spacing below the normal range)."""
    v = np.abs(np.asarray(v, dtype=np.float64))
    v = np.where(np.isfinite(v), v, 1.0)  # no ulp at nan/inf: those results are compared apart
    with np.errstate(all="ignore"):
        e = np.where(v > 0, np.floor(np.log2(np.where(v > 0, v, 1.0))), fmt.emin)
    return np.ldexp(1.0, (np.maximum(e, fmt.emin) - (fmt.p - 1)).astype(np.int64))


def _exact(rounded, residual, fmt):
    return metric.exact_values(rounded, residual, fmt.name)


def _measure(label, got, rounded, residual, dtype, budget, reproduce, device, x=None, scale=None):
    """Stats, the figures beside them (``max_abs_ulps``: the largest |got - exact| in ulps of
    ``scale``, 1.0 by default, over the normal-range results; a profile's tolerance fraction),
    and a failure message (or None)."""
    fmt = FORMATS[dtype]
    got64 = np.asarray(got).astype(np.float64)
    rounded = np.asarray(rounded).astype(np.float64)
    xx = None if x is None else np.asarray(x)
    stats, err, codes = metric.evaluate(got64, rounded, residual, dtype, budget.max_ulp, xx)
    unit = _ulp(1.0 if scale is None else scale, fmt)
    with np.errstate(all="ignore"):
        abs_ulps = np.abs(got64 - _exact(rounded, residual, fmt)) / unit
    abs_ulps = np.where(codes == 0, abs_ulps, 0.0)
    abs_max = float(abs_ulps.max()) if abs_ulps.size else 0.0
    figs = {"max_abs_ulps": abs_max}
    lines = []
    flat_err = np.where(codes == 0, np.abs(err), -1.0).reshape(-1)

    def where(i):
        idx = np.unravel_index(i, np.shape(got))
        src = "" if xx is None else f", input {float(xx.reshape(-1)[i])!r}"
        return f"at {tuple(int(k) for k in idx)}{src}: got {got64.reshape(-1)[i]!r}, correctly rounded " \
               f"{rounded.reshape(-1)[i]!r}, error {err.reshape(-1)[i]:+.4g} ulp"

    if getattr(budget, "rtol", None) is not None:  # a profile's element tolerance
        frac = profiles.tolerance_fraction(got64, _exact(rounded, residual, fmt), codes, budget).reshape(-1)
        figs.update(bound_fraction=float(frac.max()) if frac.size else 0.0, budget_text=budget.text)
        over = np.flatnonzero(frac > 1.0)
        if over.size:
            lines.append(f"  {over.size} of {frac.size} results exceed {budget.text}; worst first:")
            lines += ["    " + where(i) for i in over[np.argsort(-frac[over])][:5]]
    elif stats.n_over:
        over = np.flatnonzero(flat_err > budget.max_ulp)
        lines.append(f"  {over.size} of {stats.n_normal} results exceed {budget.max_ulp} ulp "
                     f"(max {stats.max_ulp:.4g}); worst first:")
        lines += ["    " + where(i) for i in over[np.argsort(-flat_err[over])][:5]]
    if stats.pct_cr < budget.min_cr:
        bad = np.flatnonzero((codes.reshape(-1) == 0) & (got64.reshape(-1) != rounded.reshape(-1)))
        lines.append(f"  only {stats.pct_cr:.4f}% correctly rounded, budget >= {budget.min_cr}%:")
        lines += ["    " + where(i) for i in bad[:5]]
    if budget.max_abs_ulps is not None and abs_max > budget.max_abs_ulps:
        i = int(np.argmax(abs_ulps.reshape(-1)))
        what = "ulp(1.0)" if scale is None else "ulps of max(|old|, |new|)"
        lines.append(f"  |got - exact| reaches {abs_max:.4g} {what}, budget {budget.max_abs_ulps}; "
                     + where(i))
    if stats.n_nonfinite_mismatch:
        bad = np.flatnonzero((codes.reshape(-1) == 2) & ~(
            (np.isnan(rounded) & np.isnan(got64)) | (got64 == rounded)).reshape(-1))
        lines.append(f"  {stats.n_nonfinite_mismatch} nan/inf mismatches:")
        lines += ["    " + where(i) for i in bad[:5]]
    sub = codes == 1
    if sub.any():  # subnormal results: correctly rounded, or flushed on a device measured to flush
        beh = D.subnormal_behaviour(device)["float64" if dtype == "float64" else "float32"]
        ok = (got64 == rounded) & (np.signbit(got64) == np.signbit(rounded))
        if beh["flushes_results"]:
            ok |= got64 == 0
        bad = np.flatnonzero((sub & ~ok).reshape(-1))
        if bad.size:
            lines.append(f"  {bad.size} subnormal results neither correctly rounded nor flushed ({beh}):")
            lines += ["    " + where(i) for i in bad[:5]]
    msg = None
    if lines:
        msg = "\n".join([f"{label}:"] + lines + [f"  reproduce: {reproduce}"])
    return stats, figs, msg


def _inputs(arrays):
    """The case's input arrays (``x``, parameters, running statistics), without the stored results."""
    return {k: v for k, v in arrays.items()
            if not (k in ("rounded", "residual") or k.endswith(("_rounded", "_residual")))}


# ---- golden -----------------------------------------------------------------------------

@pytest.mark.parametrize("case,dtype", PARAMS)
def test_golden(case, dtype, device, impl_op, store, record, reproduce):
    """Every reduction case x dtype x device against its stored exact results."""
    fn = impl_op(case.op)
    arrays = RR.load_arrays(store, case, dtype)
    x = arrays["x"]
    dev = D.device_id(device)
    out = calls.run(fn, case.op, _inputs(arrays), case.params, dtype, device)
    y = out["y"]
    assert y.dtype == x.dtype, f"{case.id} returned {y.dtype} for a {dtype} input"
    assert y.shape == x.shape, f"{case.id}: output shape {y.shape}, expected the input's {x.shape}"
    budget = budget_for(case, dtype)
    label = f"{case.id} {dtype} on {dev} vs golden"
    stats, figs, msg = _measure(label, y, arrays["rounded"], arrays["residual"], dtype, budget, reproduce,
                                device, x=x)
    worst = float(np.asarray(x).reshape(-1)[stats.worst_index]) if stats.worst_index >= 0 else None
    row = reporting.row_from_stats("value", case.id, dtype, dev, "golden", stats, budget, worst,
                                   extra={**figs, "abs_unit": "ulp(1.0)"}, message=msg)
    record(row)
    msgs = [] if row.passed else [msg]
    if "running_mean_rounded" in arrays:
        sdt = RR.PARAM_DTYPE[dtype]
        sb = profiles.apply(RR.STATS_BUDGETS[sdt], sdt)
        for k in STATS:
            got = out[k]
            assert got.dtype == np.dtype(sdt), f"{case.id}: new {k} returned {got.dtype} for a {sdt} running statistic"
            exact = _exact(arrays[k + "_rounded"], arrays[k + "_residual"], FORMATS[sdt])
            scale = np.maximum(np.abs(np.asarray(arrays[k], np.float64)), np.abs(exact))
            s2, f2, m2 = _measure(f"{label}, new {k}", got, arrays[k + "_rounded"], arrays[k + "_residual"], sdt,
                                  sb, reproduce, device, scale=scale)
            r2 = reporting.row_from_stats("running_stats", f"{case.id}:{k}", dtype, dev, "golden", s2, sb,
                                          extra={**f2, "abs_unit": "ulp(scale)"}, message=m2)
            record(r2)
            if not r2.passed:
                msgs.append(m2)
    assert not msgs, "\n".join(msgs)


# ---- live references on fresh inputs ------------------------------------------------------

def _live_inputs(shape, mu, sigma, stream, dtype):
    z = RR.normal(math.prod(shape), stream).reshape(shape)
    return (mu + sigma * z).astype(NP_DTYPES[dtype])


LIVE = [  # (float64 and the other ops are covered by the golden cases; these exercise the references live)
    ("layer_norm", dict(normalized_shape=(33,)), (3, 33), 1e4, 1.0),
    ("group_norm", dict(num_groups=3), (2, 3, 3, 6), 1e3, 1.0),
    ("batch_norm", dict(training=True, momentum=0.25), (24, 3), 1e4, 2.0),
    ("softmax", dict(axis=-1), (4, 20), 0.0, 30.0),
    ("log_softmax", dict(axis=-1), (4, 20), 0.0, 30.0),
]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("op,kw,shape,mu,sigma", LIVE, ids=[f"{v[0]}-{i}" for i, v in enumerate(LIVE)])
def test_live_reference(op, kw, shape, mu, sigma, dtype, impl_op, reproduce):
    """The implementation against mpmath computed now, on inputs the golden set does not hold."""
    fn = impl_op(op)
    stream = 90000 + 17 * len(str(kw)) + shape[-1] + LIVE.index((op, kw, shape, mu, sigma))
    x = _live_inputs(shape, mu, sigma, stream, dtype)
    fmt = FORMATS[dtype]
    ref_kw = dict(kw)
    sdt = RR.PARAM_DTYPE[dtype]
    if op == "batch_norm":
        C = shape[-1]
        rm = np.linspace(mu - 1, mu + 1, C).astype(sdt)
        rv = np.linspace(0.5, 4.0, C).astype(sdt)
        ref = RREF.batch_norm(x, fmt, rm, rv, stats_fmt=FORMATS[sdt], **ref_kw)
        with x64_for(dtype):
            y, nrm, nrv = fn(x, rm, rv, **kw)
            got = {"y": np.asarray(y), "running_mean": np.asarray(nrm), "running_var": np.asarray(nrv)}
    else:
        ref = {"y": getattr(RREF, op)(x, fmt, **ref_kw)}
        with x64_for(dtype):
            if op in ("layer_norm", "rms_norm"):
                k = dict(kw)
                got = {"y": np.asarray(fn(x, k.pop("normalized_shape"), **k))}
            elif op == "group_norm":
                got = {"y": np.asarray(fn(x, kw["num_groups"]))}
            else:
                got = {"y": np.asarray(fn(x, **kw))}
    family_op = {"softmax": "softmax", "log_softmax": "softmax"}.get(op, "norm")
    if family_op == "softmax":
        budget = RR._sb(dtype, shape[-1])
    else:
        n = RR._stat_size(op, kw, shape)
        budget = RR._nb(dtype, op, n)
    cpu = jax.devices()[0]
    msgs = []
    _, _, msg = _measure(f"live {op}{kw} {dtype} on {shape}", got["y"], *ref["y"], dtype, budget, reproduce, cpu, x=x)
    msgs += [msg] if msg else []
    for k in STATS if op == "batch_norm" else ():
        exact = _exact(*ref[k], FORMATS[sdt])
        scale = np.maximum(np.abs(rm if k == "running_mean" else rv).astype(np.float64), np.abs(exact))
        _, _, m2 = _measure(f"live {op} new {k}", got[k], *ref[k], sdt, RR.STATS_BUDGETS[sdt], reproduce, cpu,
                            scale=scale)
        msgs += [m2] if m2 else []
    assert not msgs, "\n".join(msgs)


# ---- the reference against an independent float64 formula -----------------------------

@pytest.mark.parametrize("case", [c for c in CASES if "float64" in c.budgets], ids=lambda c: c.id)
def test_float64_formula_agrees(case, store, request):
    """The stored exact results (mpmath) and ``reference.float64_reductions`` agree within the
    formula's stated bound, on the float64 inputs of every case."""
    arrays = RR.load_arrays(store, case, "float64")
    x = arrays["x"]
    fmt = FORMATS["float64"]
    kw = dict(case.kwargs)
    for k in ("weight", "bias", "running_mean", "running_var"):
        if k in arrays:
            kw[k] = arrays[k]
    res = case.float64_formula(x, **kw)
    pairs = {"y": (res["y"] if case.op == "batch_norm" else res, arrays["rounded"], arrays["residual"])}
    if case.op == "batch_norm" and "running_mean_rounded" in arrays:
        for k in STATS:
            pairs[k] = (res[k], arrays[k + "_rounded"], arrays[k + "_residual"])
    for name, ((val, bound), rounded, residual) in pairs.items():
        exact = _exact(rounded, residual, fmt)
        ok_rows = np.isfinite(np.asarray(x, np.float64)).all(axis=-1, keepdims=True) if name == "y" else True
        keep = np.broadcast_to(ok_rows, np.shape(exact)) & np.isfinite(exact)
        slack = _ulp(exact, fmt) * 2.0**-13  # the stored residual's quantization
        with np.errstate(invalid="ignore"):  # non-finite rows are outside the formula (kept out)
            diff = np.abs(val - exact)
        bad = keep & ~(diff <= bound + slack)
        if bad.any():
            i = np.flatnonzero(bad.reshape(-1))[0]
            pytest.fail(f"{case.id} ({name}): the float64 formula and the exact reference differ by "
                        f"{diff.reshape(-1)[i]:.3g} at flat index {i}, beyond the stated bound "
                        f"{np.asarray(bound).reshape(-1)[i]:.3g} (formula {val.reshape(-1)[i]!r}, exact "
                        f"{exact.reshape(-1)[i]!r}); {int(bad.sum())} such elements.  Reproduce: "
                        f"pytest '{request.node.nodeid}'")


# ---- transformations and dtypes ------------------------------------------------------------

def _some_cases():
    wanted = ["layer_norm[mu=1e4,width=256]", "batch_norm[train,tutorial,mu=10,sigma=5,shape=32x10]",
              "group_norm[tutorial,groups=4,shape=2x8x8x16]", "log_softmax[special]"]
    return [c for c in CASES if c.id in wanted]


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return bool(((a == b) | (np.isnan(a) & np.isnan(b))).all())


@pytest.mark.jax_transforms
@pytest.mark.parametrize("case", _some_cases(), ids=lambda c: c.id)
def test_jit_and_direct_agree(case, impl_op, store):
    """The functional ops called directly (each is jitted on its own) and inside a user's
    ``jax.jit`` give the same bits; so does ``jax.vmap`` over the leading axis."""
    fn = impl_op(case.op)
    inputs = {k: jax.device_put(jnp.asarray(v), jax.devices()[0])
              for k, v in _inputs(RR.load_arrays(store, case, "float32")).items()}
    direct = calls.call(fn, case.op, inputs, case.params)
    jitted = jax.jit(lambda a: calls.call(fn, case.op, a, case.params))(inputs)
    for k, v in direct.items():
        if v is not None:
            assert _same(v, jitted[k]), f"{case.id}: {k} under an outer jax.jit differs from the direct call"
    if case.op in ("layer_norm", "rms_norm", "softmax", "log_softmax"):
        vm = jax.jit(jax.vmap(lambda xi: calls.call(fn, case.op, dict(inputs, x=xi), case.params)["y"]))(
            inputs["x"])
        assert _same(vm, direct["y"]), f"{case.id}: jax.vmap over the leading axis differs from the direct call"


@pytest.mark.jax_transforms
def test_eager_op_by_op_agrees(impl_op):
    """``jax.disable_jit`` (every primitive dispatched on its own, no fusion) gives the same bits
    as the compiled op: the float64 formulas do not depend on XLA's fusion decisions."""
    ln = impl_op("layer_norm")
    x = jnp.asarray(_live_inputs((3, 16), 1e4, 1.0, 5150, "float32"))
    w = jnp.linspace(0.5, 2.0, 16, dtype=jnp.float32)
    want = np.asarray(ln(x, 16, w, -w))
    with jax.disable_jit():
        got = np.asarray(ln(x, 16, w, -w))
    assert _same(want, got), f"layer_norm: op-by-op evaluation gives {got[want != got][:3]} where the " \
                             f"compiled op gives {want[want != got][:3]}"


@pytest.mark.parametrize("op", ["softmax", "layer_norm", "batch_norm"])
def test_integer_input_promotes(op, impl_ops):
    """Integer inputs are promoted to float32, like ``jnp.tanh`` does (dtype policy)."""
    F = impl_ops(op)
    x = jnp.arange(24).reshape(3, 8)
    y = {"softmax": lambda: F.softmax(x), "layer_norm": lambda: F.layer_norm(x, 8),
         "batch_norm": lambda: F.batch_norm(x, None, None, training=True)[0]}[op]()
    assert y.dtype == jnp.float32, f"{op}: integer input gave {y.dtype}, expected float32"


@pytest.mark.jax_transforms
def test_gradients_match_float64(impl_ops):
    """``jax.grad`` works through every op and matches the textbook formula differentiated in float64."""
    F = impl_ops("layer_norm", "log_softmax", "batch_norm")
    x = jnp.asarray(_live_inputs((4, 8), 100.0, 2.0, 4242, "float32"))
    w = jnp.asarray(np.linspace(0.5, 2, 8), jnp.float32)

    def textbook(name, t):
        if name == "layer_norm":
            m = t.mean(-1, keepdims=True)
            return (t - m) / jnp.sqrt(((t - m) ** 2).mean(-1, keepdims=True) + 1e-5) * w
        if name == "batch_norm":
            m = t.mean(0)
            return (t - m) / jnp.sqrt(((t - m) ** 2).mean(0) + 1e-5) * w
        if name == "rms_norm":
            return t / jnp.sqrt((t * t).mean(-1, keepdims=True) + 1e-6) * w
        return getattr(jax.nn, name)(t / 50)

    ours = {  # (softmax shares log_softmax's derivative code; rms_norm is differentiated like layer_norm)
        "layer_norm": lambda t: F.layer_norm(t, 8, w),
        "batch_norm": lambda t: F.batch_norm(t, None, None, w, training=True)[0],
        "log_softmax": lambda t: F.log_softmax(t / 50),
    }
    c = jnp.arange(32.0).reshape(4, 8) % 7  # a loss that depends on every output
    for name, f in ours.items():
        g = np.asarray(jax.jit(jax.grad(lambda t: jnp.sum(f(t) * c)))(x))
        with jax.enable_x64(True):
            x64 = jnp.asarray(np.asarray(x, np.float64))
            ref = np.asarray(jax.jit(jax.grad(lambda t: jnp.sum(textbook(name, t) * c)))(x64))
        err = np.max(np.abs(g - ref)) / np.max(np.abs(ref))
        assert err < 1e-5, f"{name}: gradient differs from the float64 textbook gradient by {err:.3g} (relative)"


# ---- edge rows and stress settings ---------------------------------------------------------

@pytest.mark.convention
def test_softmax_edge_rows(impl_op, impl_capabilities):
    """The documented definitions: -inf gives 0, +inf entries share the mass, all -inf is uniform,
    NaN only from NaN."""
    sm, lsm = impl_op("softmax"), impl_op("log_softmax")
    inf, nan = np.inf, np.nan
    x = jnp.asarray([[1.0, -inf, 2.0, -inf], [-inf] * 4, [inf, 1.0, inf, -inf], [inf, 0.0, 0.0, 0.0],
                     [1.0, nan, 2.0, 3.0], [5.0, -inf, -inf, -inf]], jnp.float32)
    p, lp = np.asarray(sm(x)), np.asarray(lsm(x))
    e = math.exp(-1.0)
    np.testing.assert_array_equal(p[0], np.float32([e / (1 + e), 0, 1 / (1 + e), 0]))
    np.testing.assert_array_equal(p[1], np.float32([0.25] * 4))
    np.testing.assert_array_equal(p[2], np.float32([0.5, 0, 0.5, 0]))
    np.testing.assert_array_equal(p[3], np.float32([1, 0, 0, 0]))
    assert np.isnan(p[4]).all() and np.isnan(lp[4]).all(), f"a NaN row must be all NaN, got {p[4]}, {lp[4]}"
    np.testing.assert_array_equal(p[5], np.float32([1, 0, 0, 0]))
    np.testing.assert_array_equal(lp[1], np.float32([-math.log(4)] * 4))
    np.testing.assert_array_equal(lp[2], np.float32([-math.log(2), -inf, -math.log(2), -inf]))
    np.testing.assert_array_equal(lp[5], np.float32([0, -inf, -inf, -inf]))
    assert not np.signbit(lp[5, 0]), "log_softmax of a row with one finite entry is +0 there"
    # the largest logit at scale 100: -7.4e-9, not 0 (every peer returns 0)
    top = float(lsm(jnp.asarray([0.0, -18.7], jnp.float32))[0])
    assert top == np.float32(-math.log1p(math.exp(-18.700000762939453))), top
    # no NaN gradient from the special rows
    if not impl_capabilities["jax_transforms"]:
        return
    g = jax.jit(jax.grad(lambda t: jnp.sum(jnp.where(jnp.isfinite(sm(t)), sm(t), 0.0))))(x[:4])
    assert np.isfinite(np.asarray(g)).all(), f"non-finite gradient for rows with infinities: {g}"


# rows with a finite maximum (the fast float64 path), built to hit its subtleties: a difference
# ``x - max`` that is exactly a midpoint of the format while the rest of the row underflows
# (the exact result lies just below it), a single finite entry (log_softmax exactly +0), ties,
# a largest logit whose log_softmax is tiny, and entries far below the maximum
_TRICKY = {
    "float32": [[2.0 ** -15, -800.0, -np.inf], [3.0, -np.inf, -np.inf], [1.0, 1.0, -1.0], [0.0, -18.7, -30.0],
                [10.5, 1e-4, -3.0], [100.0, -800.0, 99.0]],
    "bfloat16": [[2.0, -1000.0, -np.inf], [0.5, -200.0], [3.0, -np.inf, -np.inf], [1.0, 1.0, -1.0], [0.0, -18.75, -30.0],
                 [10.5, 0.0001, -3.0], [100.0, -800.0, 99.0]],
    "float16": [[0.25, -1000.0, -np.inf], [3.0, -np.inf, -np.inf], [1.0, 1.0, -1.0], [0.0, -11.5, -30.0],
                [10.5, 0.0001, -3.0], [100.0, -800.0, 99.0]],
}


@pytest.mark.parametrize("dtype", list(_TRICKY))
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_fast_path_rows(op, dtype, impl_op):
    """Each row alone (so every row of the call has a finite maximum) is correctly rounded:
    the value mpmath rounds, bit for bit, including the sign of zero."""
    fn = impl_op(op)
    fmt = FORMATS[dtype]
    for i, row in enumerate(_TRICKY[dtype]):
        x = np.asarray([row], dtype=NP_DTYPES[dtype])
        if i == 0:  # the midpoint row must be exact in the format
            assert (x.astype(np.float64) == np.asarray([row])).all(), f"{row} is not exact in {dtype}"
        want = np.asarray(getattr(RREF, op)(x, fmt)[0], np.float64)
        got = np.asarray(fn(jnp.asarray(x)), np.float64)
        same = (got == want) & (np.signbit(got) == np.signbit(want))
        assert same.all(), (f"{op} {dtype} of the row {x[0].tolist()}: got {got[0].tolist()}, the correctly "
                            f"rounded values are {want[0].tolist()}")


@pytest.mark.jax_transforms
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_vmap_mixes_fast_and_edge_rows(op, impl_op):
    """Under ``vmap`` the whole-array choice between the fast path and the edge-row path is
    made per row (``lax.cond`` becomes a select): the same bits as the batched call."""
    fn = impl_op(op)
    x = jnp.asarray([[1.0, 2.0, 3.0], [0.0, -np.inf, 1.0], [np.inf, 1.0, 2.0], [5.0, -1e4, 2.0],
                     [-np.inf, -np.inf, -np.inf], [np.nan, 0.0, 1.0]], jnp.float32)
    want = np.asarray(fn(x))
    for name, got in (("vmap", jax.vmap(fn)(x)), ("jit(vmap)", jax.jit(jax.vmap(fn))(x))):
        assert _same(want, np.asarray(got)), f"{op} under {name}: {np.asarray(got)} where the batched call " \
                                             f"gives {want}"


@pytest.mark.convention
def test_constant_and_tiny_batches(impl_ops):
    """Variance 0 gives exactly bias (never NaN, also with eps = 0); batch norm needs two values
    per channel in training, and takes a batch of one when H x W supplies them."""
    F = impl_ops("layer_norm", "batch_norm", "group_norm", "instance_norm", "rms_norm")
    b = jnp.asarray([0.5, -1.25, 0.0, 3.0], jnp.float32)
    w = jnp.asarray([2.0, -1.0, 0.5, 1.0], jnp.float32)
    # bfloat16 and eps = 0 (the golden cases cover every dtype with eps > 0, and layer_norm with eps = 0)
    x = jnp.full((5, 4), 7.25, jnp.bfloat16)
    outs = {
        "layer_norm": F.layer_norm(x, 4, w, b, eps=0.0)[0],
        "batch_norm": F.batch_norm(x, jnp.zeros(4), jnp.ones(4), w, b, training=True, eps=0.0)[0][0],
        "group_norm": F.group_norm(x[:, None], 2, w, b, eps=0.0)[0, 0],
        "instance_norm": F.instance_norm(x[None], w, b, eps=0.0)[0, 0],
    }
    for name, y in outs.items():
        np.testing.assert_array_equal(np.asarray(y, np.float32), np.asarray(b.astype(x.dtype), np.float32),
                                      err_msg=f"{name} of a constant bfloat16 input with eps=0")
        assert not np.signbit(np.asarray(y, np.float32)[2]), f"{name}: a zero bias must give +0"
    z = F.rms_norm(jnp.zeros((2, 4), jnp.bfloat16), 4, eps=0.0)
    assert (np.asarray(z, np.float32) == 0).all(), f"rms_norm of zeros with eps=0 gave {z}"
    # batch norm, training: one value per channel is an error, a batch of one image is not
    with pytest.raises(ValueError, match=r"needs more than 1 value per channel, got input shape \(1, 4\)"):
        F.batch_norm(jnp.ones((1, 4)), jnp.zeros(4), jnp.ones(4), training=True)
    y, rm, rv = F.batch_norm(_live_inputs((1, 3, 3, 4), 5.0, 2.0, 777, "float32"), jnp.zeros(4), jnp.ones(4),
                             training=True)
    assert np.isfinite(np.asarray(y)).all() and np.isfinite(np.asarray(rv)).all()
    y = F.layer_norm(jnp.asarray([[3.0, 5.0]]), 2)  # a batch of one row
    np.testing.assert_allclose(np.asarray(y), [[-1.0, 1.0]], rtol=1e-5)


# ---- the tutorial cells -------------------------------------------------------------------

def _mean_std(y, axes):
    y = np.asarray(y, np.float64)
    return y.mean(axis=axes), y.std(axis=axes)


def test_tutorial_cells():
    """The tutorial's cells give outputs with mean ~0 and standard deviation ~1."""
    bn = nn.BatchNorm1d(num_features=10)
    x = _live_inputs((32, 10), 10.0, 5.0, 1234, "float32")
    m, s = _mean_std(bn(x), 0)
    assert np.abs(m).max() < 1e-6 and np.abs(s - 1).max() < 1e-5, (m, s)
    two = np.stack([_live_inputs((1000,), 50.0, 10.0, 1235, "float32"),
                    _live_inputs((1000,), -5.0, 2.0, 1236, "float32")], axis=1)
    m, s = _mean_std(nn.BatchNorm1d(2)(two), 0)
    assert np.abs(m).max() < 1e-6 and np.abs(s - 1).max() < 1e-5, (m, s)
    ln = nn.LayerNorm(normalized_shape=(10,))
    m, s = _mean_std(ln(_live_inputs((10,), 3.0, 2.0, 1237, "float32")), 0)
    assert abs(m) < 1e-6 and abs(s - 1) < 1e-5, (m, s)
    gn = nn.GroupNorm(num_groups=4, num_channels=16)
    y = np.asarray(gn(_live_inputs((2, 8, 8, 16), 1e4, 1.0, 1238, "float32"))).reshape(2, 8, 8, 4, 4)
    m, s = _mean_std(y, (1, 2, 4))
    assert np.abs(m).max() < 1e-6 and np.abs(s - 1).max() < 1e-4, (m, s)


# ---- layer classes ----------------------------------------------------------------------------

def test_layer_reprs_and_defaults():
    assert repr(nn.Softmax()) == "Softmax(axis=-1)"
    assert repr(nn.LogSoftmax(axis=0)) == "LogSoftmax(axis=0)"
    assert repr(nn.BatchNorm1d(num_features=10)) == \
        "BatchNorm1d(10, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"
    assert repr(nn.BatchNorm2d(64, momentum=0.01)) == \
        "BatchNorm2d(64, eps=1e-05, momentum=0.01, affine=True, track_running_stats=True)"
    assert repr(nn.BatchNorm3d(8, axis_name="batch")).endswith("track_running_stats=True, axis_name='batch')")
    assert repr(nn.LayerNorm(normalized_shape=(10,))) == "LayerNorm((10,), eps=1e-05, elementwise_affine=True)"
    assert repr(nn.LayerNorm(10)) == "LayerNorm((10,), eps=1e-05, elementwise_affine=True)"
    assert repr(nn.GroupNorm(num_groups=4, num_channels=16)) == "GroupNorm(4, 16, eps=1e-05, affine=True)"
    assert repr(nn.InstanceNorm1d(8)) == "InstanceNorm1d(8, eps=1e-05, affine=False)"
    assert repr(nn.InstanceNorm2d(3, affine=True)) == "InstanceNorm2d(3, eps=1e-05, affine=True)"
    assert repr(nn.RMSNorm(16)) == "RMSNorm((16,), eps=1e-06, elementwise_affine=True)"
    bn = nn.BatchNorm2d(64)
    assert bn.training and bn.running_mean.dtype == jnp.float32 and bn.running_var.dtype == jnp.float32
    assert bn.weight.shape == (64,) and float(bn.running_var[0]) == 1.0
    assert nn.BatchNorm1d(4, affine=False).weight is None
    assert nn.LayerNorm(4, bias=False).bias is None
    assert nn.RMSNorm(4, elementwise_affine=False).weight is None
    seq_like = [nn.BatchNorm1d(4), nn.LayerNorm(4)]
    assert not seq_like[0].eval().training and seq_like[0].train().training


def test_layers_match_functional():
    import impl.functional as fn
    x = _live_inputs((6, 5, 8), 20.0, 3.0, 4321, "float32")
    np.testing.assert_array_equal(np.asarray(nn.Softmax()(x)), np.asarray(fn.softmax(x)))
    np.testing.assert_array_equal(np.asarray(nn.LogSoftmax(axis=1)(x)), np.asarray(fn.log_softmax(x, axis=1)))
    ln, ln2 = nn.LayerNorm(8), nn.LayerNorm((5, 8), elementwise_affine=False)
    rms, gn = nn.RMSNorm(8), nn.GroupNorm(2, 8)
    ln.weight = jnp.linspace(0.5, 2.0, 8, dtype=jnp.float32)  # parameters are plain attributes
    np.testing.assert_array_equal(np.asarray(ln(x)), np.asarray(fn.layer_norm(x, 8, ln.weight, ln.bias)))
    np.testing.assert_array_equal(np.asarray(ln2(x)), np.asarray(fn.layer_norm(x, (5, 8))))
    np.testing.assert_array_equal(np.asarray(rms(x)), np.asarray(fn.rms_norm(x, 8, rms.weight)))
    np.testing.assert_array_equal(np.asarray(gn(x)), np.asarray(fn.group_norm(x, 2, gn.weight, gn.bias)))
    np.testing.assert_array_equal(np.asarray(nn.InstanceNorm1d(8)(x)), np.asarray(fn.instance_norm(x)))
    np.testing.assert_array_equal(np.asarray(nn.InstanceNorm1d(8)(x[0])), np.asarray(fn.instance_norm(x[:1]))[0])
    np.testing.assert_array_equal(np.asarray(ln(x[0, 0])), np.asarray(fn.layer_norm(x[0, 0], 8, ln.weight, ln.bias)))


def test_batchnorm_train_eval_and_running_stats():
    """Training mode: batch statistics, running statistics updated in place (PyTorch's momentum
    and unbiased variance); eval mode: running statistics, left unchanged."""
    bn = nn.BatchNorm1d(3, momentum=0.25)
    x = _live_inputs((16, 5, 3), 1e4, 2.0, 999, "float32")  # (N, L, C)
    y = bn(x)
    x64 = np.asarray(x, np.float64).reshape(-1, 3)
    fmt = FORMATS["float32"]
    ref = RREF.batch_norm(np.asarray(x), fmt, np.zeros(3, np.float32), np.ones(3, np.float32), training=True,
                          momentum=0.25, stats_fmt=fmt)
    np.testing.assert_array_equal(np.asarray(y, np.float64), ref["y"][0])
    np.testing.assert_array_equal(np.asarray(bn.running_mean, np.float64), ref["running_mean"][0])
    np.testing.assert_array_equal(np.asarray(bn.running_var, np.float64), ref["running_var"][0])
    np.testing.assert_allclose(np.asarray(bn.running_var), 0.75 + 0.25 * x64.var(0, ddof=1), rtol=1e-6)
    rm, rv = bn.running_mean, bn.running_var
    bn.eval()
    y2 = bn(x + 1)
    assert bn.running_mean is rm and bn.running_var is rv, "eval mode must not touch the running statistics"
    exp = (np.asarray(x, np.float64) + 1 - np.asarray(rm)) / np.sqrt(np.asarray(rv, np.float64) + 1e-5)
    np.testing.assert_allclose(np.asarray(y2), exp, rtol=1e-5, atol=1e-6)
    free = nn.BatchNorm1d(3, track_running_stats=False).eval()
    yf = free(x)  # no running statistics: batch statistics in both modes
    np.testing.assert_array_equal(np.asarray(yf), np.asarray(y))
    assert free.running_mean is None


@pytest.mark.slow
def test_jitted_training_step_leaks_no_tracer():
    """A fully jitted training step through ``functional_call`` updates the running statistics,
    returns concrete arrays, leaves the input module untouched and leaks no tracer."""
    model = nn.BatchNorm1d(4)
    x = _live_inputs((32, 4), 3.0, 2.0, 31337, "float32")

    def loss_fn(m, x):
        y, m = nn.functional_call(m, x)
        return jnp.mean((y * jnp.arange(4.0)) ** 2), m

    @jax.jit
    def step(m, x):
        (loss, m2), grads = jax.value_and_grad(loss_fn, has_aux=True)(m, x)
        m2.weight = m2.weight - 0.1 * grads.weight  # a plain SGD step on the weight
        return loss, m2

    with jax.checking_leaks():
        loss, m2 = step(model, x)
        loss, m3 = step(m2, x)
    assert float(model.running_mean[0]) == 0.0, "the input module must be left unchanged"
    assert all(not isinstance(v, jax.core.Tracer) for v in jax.tree_util.tree_leaves(m3))
    eager = nn.BatchNorm1d(4)
    eager(x)
    eager(x)
    np.testing.assert_array_equal(np.asarray(m3.running_mean), np.asarray(eager.running_mean))
    np.testing.assert_array_equal(np.asarray(m3.running_var), np.asarray(eager.running_var))
    assert float(jnp.abs(m3.weight - 1).max()) > 0, "the weight should have moved"
    # a module passed in and returned may also be updated in place under jit
    _, m4 = jax.jit(lambda m, x: (m(x), m))(nn.BatchNorm1d(4), x)
    np.testing.assert_array_equal(np.asarray(m4.running_mean), np.asarray(m2.running_mean))
    # a module the traced function closes over would keep a tracer: refused
    closed = nn.BatchNorm1d(4)
    with pytest.raises(RuntimeError, match=r"BatchNorm1d\(4\) in training mode was called under a JAX "
                                           r"transformation .*impl\.nn\.functional_call"):
        jax.jit(lambda x: closed(x))(x)
    assert float(closed.running_mean[0]) == 0.0
    closed.eval()
    jax.jit(lambda x: closed(x))(x)  # eval mode updates nothing: fine


# ---- synchronized batch norm ----------------------------------------------------------------

@pytest.mark.jax_transforms
def test_sharded_batch_norm_equals_unsharded(impl_op):
    """``axis_name`` inside ``jax.shard_map`` over the two CPU devices: global statistics, the same
    output and running statistics as the unsharded call (up to float64 summation order)."""
    fn = impl_op("batch_norm")
    devs = jax.devices()
    if len(devs) < 2:
        pytest.skip("needs 2 devices (conftest forces 2 CPU devices through XLA_FLAGS)")
    mesh = jax.make_mesh((2,), ("batch",), devices=devs[:2])
    x = jnp.asarray(_live_inputs((16, 4, 6), 1e4, 3.0, 2024, "float32"))
    rm, rv = jnp.full((6,), 9999.0, jnp.float32), jnp.full((6,), 2.0, jnp.float32)
    w, b = jnp.linspace(0.5, 1.5, 6, dtype=jnp.float32), jnp.linspace(-1, 1, 6, dtype=jnp.float32)
    kw = dict(training=True, momentum=0.3)
    full = fn(x, rm, rv, w, b, **kw)
    sharded = jax.jit(jax.shard_map(
        lambda x, rm, rv, w, b: fn(x, rm, rv, w, b, axis_name="batch", **kw), mesh=mesh,
        in_specs=(P("batch"), P(), P(), P(), P()), out_specs=(P("batch"), P(), P())))
    xs = jax.device_put(x, NamedSharding(mesh, P("batch")))
    got = sharded(xs, rm, rv, w, b)
    local = fn(x[:8], rm, rv, w, b, **kw)  # what an unsynchronized shard would compute
    for name, a, g in zip(("y", "running_mean", "running_var"), full, got):
        np.testing.assert_array_max_ulp(np.asarray(g), np.asarray(a), maxulp=1)
    assert not np.array_equal(np.asarray(local[1]), np.asarray(full[1])), "the shards must be synchronized"
    # the layer class takes the axis name too
    bn = nn.BatchNorm1d(6, momentum=0.3, axis_name="batch")
    bn.weight, bn.bias, bn.running_mean, bn.running_var = w, b, rm, rv
    step = jax.jit(jax.shard_map(lambda m, x: nn.functional_call(m, x), mesh=mesh,
                                 in_specs=(P(), P("batch")), out_specs=(P("batch"), P())))
    y, bn2 = step(bn, xs)
    np.testing.assert_array_max_ulp(np.asarray(y), np.asarray(full[0]), maxulp=1)
    np.testing.assert_array_max_ulp(np.asarray(bn2.running_var), np.asarray(full[2]), maxulp=1)


# Bad input and its messages: tests/input_rules.py (one table, tests/test_input_rules.py).


def test_float64_rsqrt_within_the_rms_norm_budgets_derivation():
    """XLA compiles the normalizations' ``d / sqrt(v)`` as ``d * rsqrt(v)`` (``_scale_centred``),
    and float64 ``rsqrt`` is not correctly rounded on the CPU: the float64 rms_norm budget's
    derivation (``_WHY_R64``) counts it at 1.17 ulp.  This pins that figure, so that a backend
    whose ``rsqrt`` is worse shows up here rather than as a budget quietly spent."""
    import mpmath

    rng = np.random.default_rng(20261202)
    v = np.exp(rng.uniform(-40.0, 40.0, 4000))
    with jax.enable_x64(True):
        got = np.asarray(jax.jit(lambda t: 1.0 / jnp.sqrt(t))(jnp.asarray(v, jnp.float64)))
    worst, at = 0.0, None
    with mpmath.workprec(113):
        for vi, gi in zip(v.tolist(), got.tolist()):
            err = abs(mpmath.mpf(gi) - 1 / mpmath.sqrt(mpmath.mpf(vi))) / mpmath.mpf(float(np.spacing(gi)))
            if err > worst:
                worst, at = float(err), vi
    assert worst <= 1.17, (f"float64 1/sqrt(v) is {worst:.3f} ulp off at v = {at!r} (expected <= 1.17, the figure in "
                           f"tools/registry/reductions.py's _WHY_R64); reproduce: jax.jit(lambda t: 1/jnp.sqrt(t)) on "
                           f"float64 {at!r} against mpmath")
