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


def _bits(a):
    a = np.asarray(a)
    return a.view({2: np.uint16, 4: np.uint32}[a.dtype.itemsize])


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("shape,axis", [((1100, 1024), -1), ((1024, 1100), 0), ((2, 600, 1024), 1)],
                         ids=["padded-last-block", "axis-0", "3d"])
def test_blocks_give_the_bits_of_one_call(dtype, shape, axis):
    x = np.random.default_rng(3).standard_normal(shape) * 5
    x.reshape(-1)[::7919] = -np.inf  # -inf entries, finite maxima: still the fast path
    x = jnp.asarray(x, dtype)
    ax = axis % x.ndim
    assert R._split_by_rows(x, ax), "the shape must take the blocked path"
    got = jax.jit(lambda v: F.log_softmax(v, axis=axis))(x)

    def whole(v):
        with jax.enable_x64(True):
            return R._softmax_fast(v, ax, True, v.dtype)

    want = jax.jit(whole)(x)
    bad = np.flatnonzero(_bits(got) != _bits(want))
    assert bad.size == 0, (
        f"log_softmax {dtype} {shape} axis={axis}: blocked result differs at flat indices {bad[:5].tolist()}: "
        f"got {np.asarray(got).ravel()[bad[:5]].tolist()}, expected {np.asarray(want).ravel()[bad[:5]].tolist()}")


def test_the_split_rule():
    """Blocks only below 4096 rows and from 2**20 elements (``_split_by_rows``)."""
    f32 = jnp.float32
    assert R._split_by_rows(jnp.zeros((1024, 1024), f32), 1)
    assert not R._split_by_rows(jnp.zeros((512, 1024), f32), 1)  # 2**19 elements
    assert not R._split_by_rows(jnp.zeros((4096, 256), f32), 1)  # 4096 rows: one YNNPACK fusion
    assert R._split_by_rows(jnp.zeros((1024, 1024), f32), 0)
