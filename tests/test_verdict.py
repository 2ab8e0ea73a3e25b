"""The verdict row, the verdict matrix, profiles and baselines, on hand-made rows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tools import baseline, html_report, profiles, reporting
from tools.metric import Stats
from tools.registry import Budget
from tools.verdict import Verdict, from_dict, op_of

ROOT = Path(__file__).resolve().parent.parent


def _stats(max_ulp=0.5, pct_cr=100.0, n_over=0, nf=0):
    n = 1000
    return Stats(n=n, n_normal=n, max_ulp=max_ulp, p99_ulp=max_ulp, mean_ulp=0.1, n_cr=int(pct_cr * 10),
                 n_over=n_over, worst_index=3, n_subnormal=0, n_flushed=0, max_ulp_subnormal=0.0, n_nonfinite=2,
                 n_nonfinite_mismatch=nf, first_nonfinite_mismatch=-1)


B = Budget(1.0, 99.9, "test budget")


def _row(case, dtype, max_ulp=0.5, pct_cr=100.0, n_over=0, nf=0, kind="value", msg=None, test="t"):
    r = reporting.row_from_stats(kind, case, dtype, "cpu0", "golden", _stats(max_ulp, pct_cr, n_over, nf), B, 2.5,
                                 message=msg).to_dict()
    return {**r, "test": f"{test}[{kind}-{case}-{dtype}]", "reproduce": f"pytest '{test}'", "outcome":
            "passed" if msg is None else "failed"}


def test_op_of_case_ids():
    assert op_of("leaky_relu[negative_slope=0.1]") == "leaky_relu"
    assert op_of("grad2:gelu[approximate=True]") == "gelu"
    assert op_of("batch_norm[train,mu=1e4,shape=128x16]:running_var") == "batch_norm"
    assert op_of("vjp:softmax[width=8]") == "softmax"


def test_row_carries_the_tests_verdict_and_round_trips():
    ok = reporting.row_from_stats("value", "tanh", "float32", "cpu0", "golden", _stats(), B, 1.0)
    assert ok.passed and ok.cause == "" and ok.detail == ""
    bad = reporting.row_from_stats("value", "layer_norm[mu=1e4,width=256]", "float32", "cpu0", "golden",
                                   _stats(8e9, 10.0, n_over=900), B, 1.0, message="over")
    assert not bad.passed and bad.cause == "cancellation"
    assert bad.detail == "max 8e+09 ulp at x = 1 (budget 1.000 ulp); 10.000% correctly rounded (budget >= 99.9%)"
    nan = reporting.row_from_stats("value", "gelu", "float32", "cpu0", "golden", _stats(nf=1), B, 1.0, message="m")
    assert nan.cause == "nan/inf"
    assert from_dict(bad.to_dict()) == bad
    with pytest.raises(ValueError, match=r"cause='slow' is not one of"):
        Verdict(kind="check", case="tanh", cause="slow")


def test_matrix_and_failure_groups():
    rows = [_row("tanh", "float32", 4.06, 72.6, 10, msg="m"), _row("tanh", "bfloat16"),
            _row("tanh", "float32", 0.6, kind="grad"),
            {"kind": "check", "case": "tanh", "op": "tanh", "dtype": "float64", "device": "", "source": "t",
             "passed": False, "cause": "dtype", "detail": "tanh returned float32 for a float64 input",
             "test": "tests/t.py::d", "reproduce": "pytest 'tests/t.py::d'", "outcome": "failed"},
            {"kind": "skip", "case": "tanh", "dtype": "float16", "device": "cpu0", "source": "t", "reason": "no"}]
    cells = reporting.matrix_cells(rows)["tanh"]
    assert cells["float32"] == (False, "✗ 4.060")
    assert cells["bfloat16"] == (True, "✓ 0.500")
    assert cells["float16"] == (None, "skip")
    assert cells["float64"] == (False, "✗ dtype")
    groups = reporting.failure_groups(rows)
    assert [c for c, _ in groups] == ["dtype", "accuracy"]
    md = "\n".join(reporting.render_verdict_md(rows))
    assert "| `tanh` | ✗ 4.060 | ✓ 0.500 | skip | ✗ dtype |" in md
    assert "reproduce: `pytest 'tests/t.py::d'`" in md
    text = reporting.render_verdict_text(rows, "profile strict")
    assert text.splitlines()[0] == "profile strict" and len(text.splitlines()) == 5
    page = html_report.markdown_to_html(md)
    assert "<td><code>tanh</code></td>" in page and '<span class="bad">✗</span> 4.060' in page


def test_profiles():
    f = profiles.apply(Budget(0.5, 100.0, "CR"), "bfloat16", "faithful")
    assert (f.max_ulp, f.min_cr) == (1.0, 0.0)
    assert profiles.apply(Budget(2.0, 0.0, "f64"), "float64", "faithful").max_ulp == 2.0  # a wider bound stays
    t = profiles.apply(B, "float32", "torch")
    assert (t.rtol, t.atol) == (1.3e-6, 1e-5)
    assert profiles.apply(B, "float32", "strict") is B
    import numpy as np

    frac = profiles.tolerance_fraction(np.array([1.0 + 2.6e-6, 0.0]), np.array([1.0, 0.0]), np.zeros(2), t)
    assert 0.2 < frac[0] < 0.3 and frac[1] == 0.0
    with pytest.raises(ValueError, match=r"--profile 'loose': unknown profile; use one of strict, faithful, torch"):
        profiles.set_active("loose")


def test_baseline_noise_rule_regressions_and_improvements(tmp_path):
    old = [_row("tanh", "float32", 4.0, 70.0, 10, msg="m"), _row("relu", "float32", 0.0)]
    path = baseline.write(tmp_path / "b.json", {r["test"]: r["outcome"] for r in old}, old, {"implementation": "m"})
    base = baseline.load(path)
    same = _row("tanh", "float32", 4.0 * 1.005, 70.0, 10, msg="m")  # within 1 % + 2**-10
    assert baseline.judge_test(base, same["test"], True, [same])[0] == "as before"
    worse = _row("tanh", "float32", 4.5, 70.0, 10, msg="m")
    verdict, why = baseline.judge_test(base, worse["test"], True, [worse])
    assert verdict == "regression" and why == "tanh float32 cpu0: 4.5 ulp (baseline 4)"
    relu_fails = _row("relu", "float32", 0.0, msg="m")
    assert baseline.judge_test(base, relu_fails["test"], True, [relu_fails]) == ("regression", "passed in the baseline")
    fixed = _row("tanh", "float32", 0.5)
    assert baseline.improvements(base, {fixed["test"]: "passed"}, [fixed])[0].endswith("passes now (failed in the baseline)")
    with pytest.raises(ValueError, match=r"--baseline .*nothere.json: no such file; write one first with --record-baseline"):
        baseline.load(tmp_path / "nothere.json")


@pytest.mark.slow
def test_convention_checks_are_deselectable():
    def count(*marks):
        p = subprocess.run([sys.executable, "-m", "pytest", "-q", "--co", "-p", "no:cacheprovider", *marks,
                            "tests/test_special_values.py", "tests/test_derivative_conventions.py",
                            "tests/test_activations_golden.py", "-k", "tanh or relu or softmax or derivative"],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
        return {line.split("::")[1].split("[")[0] for line in p.stdout.splitlines() if "::" in line}

    assert {"test_special_value", "test_relu_derivative_is_zero_at_zero", "test_golden"} <= count()
    assert count("-m", "not convention") == {"test_golden", "test_table_agrees_with_reference"}
