"""Special values, generated from the table in ``tools/special_values.py``.

The table states the contract's conventions at ±0, ±inf, NaN, the kinks and the extremes of
each format: ``test_special_value`` is marked ``convention`` (``-m "not convention"`` deselects
it), and a miss is reported as a convention difference, not as an ulp error."""

from __future__ import annotations

import math

import numpy as np
import pytest

import ml_dtypes

from reference import FORMATS, correctly_rounded
from tools import devices as D
from tools.dtypes import DTYPES
from tools.registry import get
from tools.special_values import SUBNORMAL_TOKENS, TABLE, resolve
from tools.verdict import Verdict

from .helpers import NP_DTYPES, run_op



def _limits(dtype):
    fi = ml_dtypes.finfo(NP_DTYPES[dtype])
    return float(fi.max), float(fi.smallest_subnormal)


def _selu_neg_inf(dtype):
    return correctly_rounded(get("selu").reference, -math.inf, FORMATS[dtype])[0]


def _expected(case_id, xtok, etok, dtype):
    mx, tiny = _limits(dtype)
    x = resolve(xtok, mx, tiny)
    e = resolve(etok, mx, tiny, x=x, special=lambda name: _selu_neg_inf(dtype))
    # round the expected value to the dtype (ln2 and named values; exact ones are unchanged)
    if math.isfinite(e) and e != 0:
        e = correctly_rounded(lambda _: __import__("mpmath").mpf(e), 0.0, FORMATS[dtype])[0] \
            if etok in ("ln2", "-ln2") else e
    return x, e


def _fmt(v):
    return "nan" if isinstance(v, float) and math.isnan(v) else repr(v)


ROWS = [(cid, xtok, etok) for cid, row in TABLE.items() for xtok, etok in row.items()]


@pytest.mark.convention
@pytest.mark.parametrize("case_id,xtok,etok", [pytest.param(c, x, e, id=f"{c}(x={x}) -> {e}") for c, x, e in ROWS])
@pytest.mark.parametrize("dtype", DTYPES)
def test_special_value(case_id, xtok, etok, dtype, device, impl_op, record, reproduce):
    case = get(case_id)
    fn = impl_op(case.op)
    x, expected = _expected(case_id, xtok, etok, dtype)
    got = float(run_op(fn, np.array([x], dtype=NP_DTYPES[dtype]), dtype, device, **case.params)[0])
    same = (math.isnan(got) and math.isnan(expected)) or (got == expected and math.copysign(1, got) == math.copysign(1, expected))
    dev = D.device_id(device)
    what = (f"differs from the contract's convention: expected {case_id}(x={xtok}) = {_fmt(expected)} in {dtype}, "
            f"got {_fmt(got)}")
    row = Verdict(kind="special", case=case_id, dtype=dtype, device=dev, source="table", passed=same,
                  cause="" if same else "convention", detail="" if same else what,
                  figures={"x": xtok, "expected": _fmt(expected), "got": _fmt(got), "status": "pass" if same else "fail"})
    if not same and xtok in SUBNORMAL_TOKENS:
        # a device measured to read subnormal inputs as zero / flush results
        beh = D.subnormal_behaviour(device)["float64" if dtype == "float64" else "float32"]
        zero = math.copysign(0.0, x)
        at_zero = float(run_op(fn, np.array([zero], dtype=NP_DTYPES[dtype]), dtype, device, **case.params)[0])
        if (beh["inputs_as_zero"] and got == at_zero) or (beh["flushes_results"] and got == 0):
            row.passed, row.cause, row.detail = True, "", ""
            row.figures["status"] = "xfail"
            record(row)
            pytest.xfail(f"{dev} treats subnormals as zero (measured): got {got!r}")
    record(row)
    assert row.passed, f"{what} on {dev} (x = {_fmt(x)}); reproduce: {reproduce}"


@pytest.mark.parametrize("case_id,xtok,etok", [pytest.param(c, x, e, id=f"{c}(x={x}) -> {e}") for c, x, e in ROWS])
@pytest.mark.parametrize("dtype", DTYPES)
def test_table_agrees_with_reference(case_id, xtok, etok, dtype):
    """The table is a specification; the mpmath reference must say the same."""
    case = get(case_id)
    x, expected = _expected(case_id, xtok, etok, dtype)
    ref, _ = correctly_rounded(case.reference, x, FORMATS[dtype], case.params)
    same = (math.isnan(ref) and math.isnan(expected)) or (ref == expected and math.copysign(1, ref) == math.copysign(1, expected))
    assert same, f"table says {case_id}(x={xtok}) -> {_fmt(expected)} in {dtype}, the reference gives {_fmt(ref)}"
