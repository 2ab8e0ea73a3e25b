"""Every elementwise case x dtype x device against the stored golden references."""

from __future__ import annotations

import numpy as np
import pytest

from tools import devices as D
from tools.registry import DTYPES, by_family

from .helpers import budget_for, case_param, check_against, check_subnormal_class, run_op

CASES = by_family("activations")


PARAMS = [case_param(c, d) for c in CASES for d in DTYPES if d in c.budgets]


@pytest.mark.parametrize("case,dtype", PARAMS)
def test_golden(case, dtype, device, impl_op, store, record, reproduce):
    fn = impl_op(case.op)
    x = store.load_inputs(dtype)
    ref = store.load_case(case.family, dtype, case.id)
    got = run_op(fn, x, dtype, device, **case.params)
    assert got.dtype == x.dtype, f"{case.id} returned {got.dtype} for a {dtype} input"
    budget = budget_for(case, dtype)
    rounded = ref["rounded"].astype(np.float64)
    dev = D.device_id(device)
    label = f"{case.id} {dtype} on {dev} vs golden"
    row, msg, codes = check_against(label, x, got, rounded, ref["residual"], dtype, budget, reproduce,
                                    kind="value", case=case.id, device=dev, source="golden")
    record(row)
    assert row.passed, msg
    check_subnormal_class(label, x, got.astype(np.float64), rounded, codes == 1, device, dtype)
