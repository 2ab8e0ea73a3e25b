"""log_softmax's tie count (``_tie_count``) in both of its forms, and the few-row fast path.

Below 4096 rows the count uses expressions and constants of its own (``x + (-M)``, ``2**201``,
cap 2), so that XLA writes no float64 array shared with the sum of exponentials; from 4096 rows
it shares ``|x - M|`` with that sum.  Both must give the exact number of entries equal to the
row's maximum, which numpy counts here.  The values themselves are checked against the truth
by the golden tests; ``tests/test_temporaries.py`` guards the memory.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import impl.functional as F
from impl import _reductions as R

from .helpers import bit_patterns


def _rows(dtype):
    """Rows with one, two and all entries on the maximum, ``-inf`` entries, the smallest normal
    value and its neighbour one unit in the last place up (float32: ``2**-126`` and a difference
    of ``2**-149``, subnormal in float32 but not in float64; bfloat16 ``2**-126`` and
    ``2**-133``; float16 ``2**-14`` and ``2**-24``), and differences of twice the largest finite
    value (``2**129`` in float32 and bfloat16, ``2**17`` in float16)."""
    fi = np.finfo(dtype) if dtype != jnp.bfloat16 else jnp.finfo(jnp.bfloat16)
    big, tiny = float(fi.max), float(fi.smallest_normal)
    rng = np.random.default_rng(11)
    n = 64
    rows = [rng.standard_normal(n) * 3 for _ in range(4)]
    rows[1][[3, 40]] = rows[1].max() + 1.0  # two ties
    rows.append(np.full(n, 2.5))  # every entry ties
    r = rng.standard_normal(n)
    r[::3] = -np.inf
    r[7] = r[8] = 4.0  # ties among -inf entries
    rows.append(r)
    # the smallest normal and the next value up: one unit in the last place apart
    if dtype == jnp.bfloat16:
        top, up = (float(np.array([b], np.uint16).view(jnp.bfloat16)[0]) for b in (0x0080, 0x0081))
    else:
        top = np.asarray(tiny, dtype)
        top, up = float(top), float(np.nextafter(top, np.asarray(1, dtype)))
    rows.append(np.where(np.arange(n) % 2 == 0, up, top))
    rows.append(np.where(np.arange(n) % 5 == 0, big, -big))  # differences of 2 max
    rows.append(np.where(np.arange(n) == 9, -tiny, -big))
    x = np.stack(rows)
    return jnp.asarray(x, dtype)


@pytest.mark.parametrize("axis", [-1, 0], ids=["last-axis", "axis-0"])
@pytest.mark.parametrize("distinct", [True, False], ids=["few-rows-form", "shared-form"])
@pytest.mark.parametrize("dtype", ["float16", "float32", "bfloat16"])
def test_tie_count_is_exact(dtype, distinct, axis):
    x = _rows(jnp.dtype(dtype))
    if axis == 0:
        x = x.T  # the rows along axis 0: n is x.shape[0], which the count must use

    @jax.jit
    def count(v):
        with jax.enable_x64(True):
            M = jnp.max(v, axis=axis, keepdims=True).astype(jnp.float64)
            return jnp.squeeze(R._tie_count(v, M, axis, distinct), axis)
    got = np.asarray(count(x))
    xn = np.asarray(x.astype(jnp.float32))
    want = (xn == xn.max(axis=axis, keepdims=True)).sum(axis=axis)
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, (f"_tie_count({dtype}, distinct={distinct}): rows {bad.tolist()} counted "
                           f"{got[bad].tolist()}, expected {want[bad].tolist()}")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_few_and_many_rows_agree(dtype):
    """The same rows as 64 rows (the few-row form) and inside 4096 rows (the shared form, one
    YNNPACK fusion): the same bits.  Observed (jaxlib 0.10 on x86-64), not guaranteed: the two
    programs add the float64 sums in their own order, and XLA may fuse exp and log1p into
    different loops, which can move a value only where it lies within a few float64 ulps of a
    rounding boundary (both are within the stated bound)."""
    x = _rows(jnp.dtype(dtype))
    assert R._few_rows(x, 1) and not R._few_rows(jnp.zeros((4096, x.shape[1])), 1)
    many = jnp.tile(x, (4096 // x.shape[0] + 1, 1))[:4096]
    f = jax.jit(F.log_softmax)
    a, b = np.asarray(f(x)), np.asarray(f(many))[: x.shape[0]]
    assert (bit_patterns(a) == bit_patterns(b)).all()


def test_along_another_axis():
    """Along axis 0 and along the middle axis of a 3-d input the few-row path gives the bits
    of the same rows laid along the last axis (observed, as above: the programs differ)."""
    x = jnp.asarray(np.random.default_rng(7).standard_normal((30, 40, 96)) * 4, jnp.float32)
    x = x.at[5].set(x[7])  # ties along axis 0
    assert R._few_rows(x, 0) and R._few_rows(x, 1)
    f = jax.jit(F.log_softmax, static_argnames="axis")
    for axis in (0, 1):
        got = np.asarray(f(x, axis=axis))
        want = np.moveaxis(np.asarray(f(jnp.moveaxis(x, axis, -1), axis=-1)), -1, axis)
        assert (bit_patterns(got) == bit_patterns(want)).all(), f"axis={axis}"


def test_batched_and_differentiated():
    """Batched, the few-row path gives the per-example bits (observed: ``vmap`` gives XLA one
    program over the batch); its gradient and tangent match the closed forms ``w - p sum(w)``
    and ``w - <p, w>`` from ``p = exp(y)``."""
    x = jnp.asarray(np.random.default_rng(4).standard_normal((2, 1100, 1024)) * 3, jnp.float32)
    x = x.at[:, :, 5].set(jnp.max(x, axis=-1))  # a tie in every row
    f = lambda v: F.log_softmax(v, axis=-1)
    batched = jax.jit(jax.vmap(f))(x)
    single = np.stack([np.asarray(jax.jit(f)(v)) for v in x])
    assert (bit_patterns(batched) == bit_patterns(single)).all()
    w = jnp.asarray(np.random.default_rng(5).standard_normal(x.shape[1:]), jnp.float32)
    g = jax.jit(jax.grad(lambda v: jnp.sum(f(v) * w)))(x[0])
    t = jax.jit(lambda v: jax.jvp(f, (v,), (w,))[1])(x[0])
    with jax.enable_x64(True):
        p = np.exp(np.asarray(f(x[0]), np.float64))
        w64 = np.asarray(w, np.float64)
        want_g = w64 - p * w64.sum(-1, keepdims=True)
        want_t = w64 - (p * w64).sum(-1, keepdims=True)
    # p = exp(y) from the float32 y is off by at most |y| p 2**-24 <= 2**-25 (|y| p <= 1/e); the
    # results are rounded once to float32: both far inside 2**-18 of sum |w|
    scale = np.abs(w64).sum(-1, keepdims=True)
    assert np.all(np.abs(np.asarray(g, np.float64) - want_g) <= 2.0**-18 * scale)
    assert np.all(np.abs(np.asarray(t, np.float64) - want_t) <= 2.0**-18 * scale)


def test_explicitly_sharded_rows():
    """An input sharded on its rows over an explicit mesh gives the bits of the unsharded call,
    and its gradient runs."""
    devs = jax.devices()
    if len(devs) < 2:
        pytest.skip("needs 2 devices (tests/conftest.py forces 2 CPU devices)")
    from jax.sharding import NamedSharding, PartitionSpec as P
    mesh = jax.make_mesh((2,), ("d",), devices=devs[:2])
    xn = np.random.default_rng(6).standard_normal((1030, 1024)).astype(np.float32)
    x = jax.device_put(jnp.asarray(xn), NamedSharding(mesh, P("d")))
    got = np.asarray(jax.jit(F.log_softmax)(x))
    want = np.asarray(jax.jit(F.log_softmax)(jnp.asarray(xn)))
    assert (bit_patterns(got) == bit_patterns(want)).all()
    gx = jax.jit(jax.grad(lambda v: jnp.sum(F.log_softmax(v)[:, 0])))(x)
    assert gx.shape == x.shape and bool(jnp.all(jnp.isfinite(gx)))
