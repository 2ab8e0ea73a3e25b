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
