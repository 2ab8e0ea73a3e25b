"""log_softmax over row blocks (``_log_softmax_blocked``) gives the bits of one whole-array call.

With fewer than 4096 rows and at least 2**20 elements the fast path runs over blocks of about
2**18 elements (``lax.map``), the last one padded with rows of zeros; each row is computed as in
one call of ``_softmax_fast`` on the whole array, which is the reference here (the values
themselves are checked against the truth by the golden tests).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import impl.functional as F
from impl import _reductions as R

from .helpers import bit_patterns



@pytest.mark.parametrize("dtype", ["float16", "float32", "bfloat16"])
@pytest.mark.parametrize("shape,axis", [((1100, 1024), -1), ((1024, 1100), 0), ((2, 600, 1024), 1)],
                         ids=["padded-last-block", "axis-0", "3d"])
def test_blocks_give_the_bits_of_one_call(dtype, shape, axis):
    """The reference is one whole-array call on ``x`` with ``axis`` moved last (the blocks' rows):
    for another axis a call on ``x`` itself may add the float64 sums in another order."""
    x = np.random.default_rng(3).standard_normal(shape) * 5
    x.reshape(-1)[::7919] = -np.inf  # -inf entries, finite maxima: still the fast path
    x = jnp.asarray(x, dtype)
    ax = axis % x.ndim
    assert R._split_by_rows(x, ax), "the shape must take the blocked path"
    got = jax.jit(lambda v: F.log_softmax(v, axis=axis))(x)

    def whole(v):
        with jax.enable_x64(True):
            return jnp.moveaxis(R._softmax_fast(jnp.moveaxis(v, ax, -1), v.ndim - 1, True, v.dtype), -1, ax)

    want = jax.jit(whole)(x)
    bad = np.flatnonzero(bit_patterns(got) != bit_patterns(want))
    assert bad.size == 0, (
        f"log_softmax {dtype} {shape} axis={axis}: blocked result differs at flat indices {bad[:5].tolist()}: "
        f"got {np.asarray(got).ravel()[bad[:5]].tolist()}, expected {np.asarray(want).ravel()[bad[:5]].tolist()}")


def test_blocked_path_under_vmap_grad_and_jvp():
    """Batched and differentiated, the blocked path gives what the per-example calls give."""
    x = jnp.asarray(np.random.default_rng(4).standard_normal((2, 1100, 1024)) * 3, jnp.float32)
    assert R._split_by_rows(x[0], 1)
    f = lambda v: F.log_softmax(v, axis=-1)
    batched = jax.jit(jax.vmap(f))(x)
    single = np.stack([np.asarray(jax.jit(f)(v)) for v in x])
    assert (bit_patterns(batched) == bit_patterns(single)).all()
    w = jnp.asarray(np.random.default_rng(5).standard_normal(x.shape[1:]), jnp.float32)
    g = jax.jit(jax.grad(lambda v: jnp.sum(f(v) * w)))(x[0])
    t = jax.jit(lambda v: jax.jvp(f, (v,), (w,))[1])(x[0])
    # d log_softmax . w = w - <p, w> per row; its transpose g = w - p sum(w): both from p = exp(y)
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


def test_explicitly_sharded_rows_keep_the_whole_array_path():
    """``lax.map`` cannot map a sharded axis: an input sharded on its rows over an explicit mesh
    takes the whole-array path, with the bits of the unsharded call."""
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


def test_the_split_rule():
    """Blocks only below 4096 rows, from 2**20 elements, with more than one block."""
    f32 = jnp.float32
    assert R._split_by_rows(jnp.zeros((1024, 1024), f32), 1)
    assert not R._split_by_rows(jnp.zeros((512, 1024), f32), 1)  # 2**19 elements
    assert not R._split_by_rows(jnp.zeros((4096, 256), f32), 1)  # 4096 rows: one YNNPACK fusion
    assert R._split_by_rows(jnp.zeros((1024, 1024), f32), 0)
    assert not R._split_by_rows(jnp.zeros((1 << 20,), f32), 0)  # one row: one block
    assert R._split_by_rows(jnp.zeros((2, 1 << 19), f32), 1)  # two rows, a block each
