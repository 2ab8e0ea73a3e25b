"""The normalizations' derivatives above ``_SMALL_P_BYTES`` of float64 compute their own
statistics from a fresh copy of the input instead of sharing the value's (faster in a training
step: no float64 array written out, docs/performance.md).  The same formulas either way (the
float32 shift pass scaled by another power of two, which changes nothing unless its terms
underflow; the sums in another fusion, which could change their order): on these inputs, above
2**20 elements where the branches differ, the value and the VJP are bit for bit those of the
shared branch.  The derivatives themselves are checked against exact
VJPs at smaller sizes by test_reduction_vjps.py."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import impl.functional as F
from impl import _reductions

OPS = {
    "layer_norm": lambda x: F.layer_norm(x, (x.shape[-1],)),
    "rms_norm": lambda x: F.rms_norm(x, (x.shape[-1],)),
    "group_norm": lambda x: F.group_norm(x.reshape(x.shape[0], 32, 32, 64), 4).reshape(x.shape),
    "instance_norm": lambda x: F.instance_norm(x.reshape(x.shape[0], 32, 32, 64)).reshape(x.shape),
}


def _value_and_vjp(f, x, g):
    def train(x, g):
        y, vjp = jax.vjp(f, x)
        return y, vjp(g)[0]
    program = jax.jit(train).lower(x, g).as_text()
    y, d = jax.jit(train)(x, g)
    return np.asarray(y), np.asarray(d), program


@pytest.mark.parametrize("op", sorted(OPS))
def test_own_statistics_give_the_shared_ones_bits(op, monkeypatch):
    rng = np.random.default_rng(5)
    shape = (18, 65536)  # 1,179,648 elements: 9 MiB of float64, above _SMALL_P_BYTES (8 MiB)
    assert np.prod(shape) * 8 > _reductions._SMALL_P_BYTES
    x = jnp.asarray((rng.standard_normal(shape) * 3 + 1e3).astype(np.float32))
    g = jnp.asarray(rng.standard_normal(shape).astype(np.float32))
    y_own, d_own, own_program = _value_and_vjp(OPS[op], x, g)
    monkeypatch.setattr(_reductions, "_SMALL_P_BYTES", 1 << 40)
    jax.clear_caches()
    try:
        y_shared, d_shared, shared_program = _value_and_vjp(OPS[op], x, g)
    finally:
        monkeypatch.undo()
        jax.clear_caches()
    assert own_program != shared_program, f"{op}: both runs lowered the same program, so no branch was compared"
    assert np.array_equal(y_own.view(np.uint32), y_shared.view(np.uint32)), f"{op}: values differ between the branches"
    bad = np.flatnonzero(d_own.view(np.uint32) != d_shared.view(np.uint32))
    assert bad.size == 0, (f"{op}: VJP differs between own and shared statistics at {bad.size} elements, "
                           f"e.g. flat index {bad[:3]}: {d_own.ravel()[bad[:3]]} against {d_shared.ravel()[bad[:3]]}")


def test_rms_norm_eps0_gradient_rounded_once():
    """rms_norm with ``eps = 0`` is differentiated by JAX through its float64 formula; ``x`` is
    widened once there, so the cotangents of the sum and of the output meet in float64 and the
    VJP is rounded once (two widenings rounded each path's cotangent to float32 before adding:
    the two cancel, and results were thousands of ulps off).  Checked against the exact VJP
    ``(c - x mean(c x) / ms) / sqrt(ms)`` at 60 digits: within 0.5 ulp plus the float64
    evaluation's own error (a few 2**-53 of the cancelling terms, in ulps of the result).
    The slack, ``2**-50 = 8 x 2**-53``, is the typical error of the 33-term float64 sums
    (about sqrt(33) roundings), not their worst case ((33 + 6) 2**-53); measured: every entry
    within 0.4964 ulp, the slack unused."""
    import mpmath
    rng = np.random.default_rng(11)
    x = rng.standard_normal((4, 33)).astype(np.float32)
    c = rng.standard_normal((4, 33)).astype(np.float32)
    got = np.asarray(jax.vjp(lambda z: F.rms_norm(z, 33, eps=0.0), jnp.asarray(x))[1](jnp.asarray(c))[0])
    with mpmath.workdps(60):
        for i in range(4):
            xs = [mpmath.mpf(float(v)) for v in x[i]]
            cs = [mpmath.mpf(float(v)) for v in c[i]]
            ms = sum(v * v for v in xs) / 33
            k = sum(a * b for a, b in zip(cs, xs)) / 33 / ms
            for j in range(33):
                exact = (cs[j] - xs[j] * k) / mpmath.sqrt(ms)
                terms = (abs(cs[j]) + abs(xs[j] * k)) / mpmath.sqrt(ms)
                ulp = np.spacing(np.float32(abs(float(exact))))
                err = abs(float(mpmath.mpf(float(got[i, j])) - exact)) / float(ulp)
                slack = float(terms) * 2.0**-50 / float(ulp)
                assert err <= 0.5 + slack, (
                    f"rms_norm eps=0 VJP at row {i}, column {j}: got {got[i, j]!r}, exact {float(exact)!r}, "
                    f"{err:.3f} ulp off (allowed {0.5 + slack:.3f})")


def _textbook_vjp(x, c, axes):
    """``(c - mean c - xhat mean(c xhat)) / sigma`` over ``axes`` in float64 (numpy), with the
    magnitude of its cancelling terms."""
    x, c = x.astype(np.float64), c.astype(np.float64)
    mu = x.mean(axis=axes, keepdims=True)
    sigma = np.sqrt(((x - mu) ** 2).mean(axis=axes, keepdims=True))
    xhat = (x - mu) / sigma
    mc, mcx = c.mean(axis=axes, keepdims=True), (c * xhat).mean(axis=axes, keepdims=True)
    return (c - mc - xhat * mcx) / sigma, (np.abs(c) + np.abs(mc) + np.abs(xhat * mcx)) / sigma


@pytest.mark.parametrize("op", ["layer_norm", "group_norm", "instance_norm", "batch_norm"])
def test_eps0_gradients_rounded_once(op):
    """With ``eps = 0`` JAX differentiates the float64 formula; ``x`` is widened once
    (``_one_widening``), so the VJP is rounded once: within 0.5 ulp of the textbook VJP plus
    the float64 evaluations' error (``2**-45`` of the cancelling terms, in ulps of the result:
    ``256 x 2**-53 >= 2 (36 + 10) 2**-53``, the worst-case error of two float64 evaluations,
    the implementation's and numpy's, each of at most 36 summed terms and about 10 further
    operations).  Measured: every entry within 0.4995 ulp, the slack unused.
    Widened per consumer, the paths' cotangents were rounded apart and cancelled (thousands of
    ulps)."""
    rng = np.random.default_rng(12)
    if op == "layer_norm":
        x = rng.standard_normal((4, 33)) + 3
        f, axes = (lambda z: F.layer_norm(z, 33, eps=0.0)), (1,)
    elif op == "group_norm":
        x = rng.standard_normal((2, 3, 3, 8)) - 2
        f, axes = (lambda z: F.group_norm(z, 2, eps=0.0)), None
    elif op == "instance_norm":
        x = rng.standard_normal((2, 4, 4, 3)) + 5
        f, axes = (lambda z: F.instance_norm(z, eps=0.0)), (1, 2)
    else:
        x = rng.standard_normal((4, 3, 3, 5)) * 2
        f, axes = (lambda z: F.batch_norm(z, None, None, training=True, eps=0.0)[0]), (0, 1, 2)
    x = x.astype(np.float32)
    c = rng.standard_normal(x.shape).astype(np.float32)
    got = np.asarray(jax.vjp(f, jnp.asarray(x))[1](jnp.asarray(c))[0]).astype(np.float64)
    if op == "group_norm":  # groups of 4 channels: (n, h, w, group, 4) normalized over h, w, 4
        g = x.reshape(2, 3, 3, 2, 4), c.reshape(2, 3, 3, 2, 4)
        want, terms = (a.reshape(x.shape) for a in _textbook_vjp(*g, (1, 2, 4)))
    else:
        want, terms = _textbook_vjp(x, c, axes)
    ulp = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
    err = np.abs(got - want) / ulp
    allowed = 0.5 + terms * 2.0**-45 / ulp
    worst = np.unravel_index(np.argmax(err - allowed), err.shape)
    assert np.all(err <= allowed), (
        f"{op} eps=0 VJP at {worst}: got {got[worst]!r}, textbook {want[worst]!r}, "
        f"{err[worst]:.2f} ulp off (allowed {allowed[worst]:.2f})")
