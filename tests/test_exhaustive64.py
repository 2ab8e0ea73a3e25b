"""The float64 mode of ``tools.exhaustive`` (tools/exhaustive64.py): its sample and one small chunk."""

from __future__ import annotations

import numpy as np
import pytest

from tools import exhaustive, exhaustive64
from tools.registry import get


@pytest.mark.parametrize("argv,want", [(["gelu", "--dtype", "float64"], True), (["gelu", "--dtype=float64"], True),
                                       (["gelu"], False), (["gelu", "--dtype", "float32"], False)])
def test_float64_is_routed_to_its_module(argv, want):
    assert exhaustive64.requested(argv) is want


def test_sample_is_deterministic_and_stratified():
    case = get("grad:silu")
    a, b = exhaustive64.sample_chunk(case, 3, 4096), exhaustive64.sample_chunk(case, 3, 4096)
    assert a.shape == (4096,) and np.array_equal(a.view(np.uint64), b.view(np.uint64)), "same chunk, same inputs"
    assert not np.array_equal(a, exhaustive64.sample_chunk(case, 4, 4096)), "another chunk, other inputs"
    exps = (a[:2048].view(np.uint64) >> np.uint64(52)) & np.uint64(0x7FF)
    assert len(np.unique(exps)) == 2047 and (np.signbit(a[:2048]).any()) and (~np.signbit(a[:2048])).any()
    near = a[-512:]
    assert np.any(np.abs(near + 1.2784645427610738) < 1e-2), "the neighbourhood of silu's zero x = -1.27846"


def test_one_chunk_is_judged_by_the_oracle():
    from tools import mpfr_oracle

    pytest.importorskip("gmpy2", reason=f"the float64 sweep's oracle needs gmpy2: {mpfr_oracle.INSTALL_HINT}")
    rec = exhaustive64.sweep_chunk(("tanh", "impl.functional", 0, 1024))
    assert rec["n"] == 1024 and rec["n_normal"] + rec["n_subnormal"] + rec["n_nonfinite"] == 1024
    assert rec["max_ulp"] <= 1.0 and rec["n_cr"] >= 0.99 * rec["n_normal"], rec
    assert rec["n_nonfinite_mismatch"] == 0
    assert len(rec["buckets"]) == len(exhaustive.BUCKETS) and sum(rec["buckets"]) == rec["n_normal"]
