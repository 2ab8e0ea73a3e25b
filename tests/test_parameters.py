"""Ops with keyword parameters at values no golden case holds, against live mpmath.

The golden cases fix one or two values per parameter (elu's alpha is always
1.0 there); ``PARAMETER_SWEEPS`` in the registry lists more, and each is
checked here on a small fresh sample with the op's own budgets.
"""

from __future__ import annotations

import numpy as np
import pytest

from reference import FORMATS, correctly_rounded
from reference import activations as R
from reference._convert import quantize_residual
from tools import inputs, profiles
from tools.registry import by_family
from tools.registry.activations import PARAMETER_SWEEPS

from .helpers import NP_DTYPES, check_against, run_op

BUDGETS = {c.op: c.budgets for c in by_family("activations")}
SIZES = {"float32": 200, "bfloat16": 100}


def _id(op, kw):
    return op + "[" + ",".join(f"{k}={v}" for k, v in sorted(kw.items())) + "]"


PARAMS = [pytest.param(op, kw, d, id=f"{_id(op, kw)}-{d}") for op, kws in PARAMETER_SWEEPS.items()
          for kw in kws for d in SIZES]


@pytest.mark.parametrize("op,kwargs,dtype", PARAMS)
def test_parameter_value_live(op, kwargs, dtype, impl_op, record, reproduce):
    import jax

    fn = impl_op(op)
    cid = _id(op, kwargs)
    x = inputs.live_sample(dtype, SIZES[dtype], sum(map(ord, cid + dtype))).astype(NP_DTYPES[dtype])
    x = np.unique(np.concatenate([x, -np.abs(x)]))  # and the negative half, where the parameters act
    ref = [correctly_rounded(getattr(R, op), float(v), FORMATS[dtype], kwargs) for v in x.astype(np.float64)]
    rounded = np.array([r for r, _ in ref])
    residual = np.array([quantize_residual(q) for _, q in ref])
    device = jax.devices()[0]
    got = run_op(fn, x, dtype, device, **kwargs)
    assert got.dtype == x.dtype, f"{cid} returned {got.dtype} for a {dtype} input"
    budget = profiles.apply(BUDGETS[op][dtype], dtype)
    row, msg, _ = check_against(f"{cid} {dtype} vs live mpmath", x, got, rounded, residual, dtype, budget, reproduce,
                                kind="param", case=cid, device="cpu0" if device.platform == "cpu" else str(device),
                                source="live")
    record(row)
    assert row.passed, msg
