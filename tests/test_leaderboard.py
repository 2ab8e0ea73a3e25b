"""The leaderboard (tools/leaderboard.py) on hand-made report rows: aggregation, bold, failures.

The rows carry the verdict their test gave (``passed``): the leaderboard renders it, never
recomputes it from the budget."""

from __future__ import annotations

import json

import pytest

from tools import leaderboard


def _value(case, dtype, device, max_ulp, pct_cr, worst, source="golden", kind="value", budget=1.0, nf=0):
    n = 1000
    return {"kind": kind, "case": case, "dtype": dtype, "device": device, "source": source, "n": n, "n_normal": n,
            "max_ulp": max_ulp, "p99_ulp": max_ulp, "mean_ulp": 0.1, "n_cr": int(pct_cr * 10), "n_over": 0,
            "worst_index": 0, "n_subnormal": 0, "n_flushed": 0, "max_ulp_subnormal": 0.0, "n_nonfinite": 0,
            "n_nonfinite_mismatch": nf, "first_nonfinite_mismatch": -1, "pct_cr": pct_cr,
            "budget_max_ulp": budget, "budget_min_cr": 99.9, "worst_input": worst,
            "passed": max_ulp <= budget and pct_cr >= 99.9 and nf == 0}


def _special(case, dtype, device, x, ok, got="nan"):
    return {"kind": "special", "case": case, "dtype": dtype, "device": device, "source": "table", "x": x,
            "expected": "-0.0", "got": "-0.0" if ok else got, "status": "pass" if ok else "fail"}


A = {"impl": "impl.functional", "header": {"implementation": "impl.functional", "versions": "jax X"}, "rows": [
    _value("gelu", "float32", "cpu0", 0.5, 100.0, 1.0), _value("gelu", "float32", "cpu1", 0.5, 100.0, 1.0),
    _value("gelu", "float32", "cpu0", 0.7, 99.0, 2.0, source="live"),  # golden preferred
    _special("gelu", "float32", "cpu0", "-inf", True), _special("gelu", "float32", "cpu1", "-inf", True),
    _value("gelu", "float32", "cpu0", 0.6, 100.0, 3.0, kind="grad", budget=1.0),
    _value("tanh", "float32", "cpu0", 0.5, 100.0, 0.1),
    {**_value("layer_norm[mu=1e4]", "float32", "cpu0", 0.5, 100.0, 0.2),
     "max_abs_ulps": 2.0, "abs_unit": "ulp(1.0)", "budget_max_abs_ulps": 4.0},
], "exit_status": 0, "wall_s": 10.0}
B = {"impl": "adapters.jax_nn", "header": {"implementation": "adapters.jax_nn", "peer": "jax.nn (jax X)"}, "rows": [
    _value("gelu", "float32", "cpu0", 3.0, 80.0, -5.5), _value("gelu", "float32", "cpu1", 7.5, 81.0, -6.5, nf=2),
    _special("gelu", "float32", "cpu0", "-inf", False), _special("gelu", "float32", "cpu1", "-inf", False),
    _special("gelu", "float32", "cpu0", "0", True),
    {"kind": "skip", "case": "tanh", "dtype": "float32", "device": "cpu0", "source": "test_golden",
     "reason": "tanh not provided by adapters.jax_nn"},
    {**_value("layer_norm[mu=1e4]", "float32", "cpu0", 0.9, 99.95, 0.3),
     "max_abs_ulps": 9.0, "abs_unit": "ulp(1.0)", "budget_max_abs_ulps": 4.0, "passed": False},
    {"kind": "skip", "case": "gelu", "dtype": "bfloat16", "device": "cpu0", "source": "test_golden",
     "reason": "gelu by adapters.jax_nn: not implemented for this case: no bfloat16"},
], "exit_status": 1, "wall_s": 5.0}


def test_cells_aggregate_over_devices_and_prefer_golden():
    board = leaderboard.build([A, B], generated="2000-01-01")
    cell = {(c["impl"], c["case"], c["dtype"]): c for c in board["cells"]}
    a, b = cell[("impl.functional", "gelu", "float32")], cell[("adapters.jax_nn", "gelu", "float32")]
    assert a["max_ulp"] == 0.5 and a["source"] == "golden" and a["grad_max_ulp"] == 0.6
    assert b["max_ulp"] == 7.5 and b["worst_input"] == -6.5 and b["worst_device"] == "cpu1"
    assert b["pct_cr"] == 80.0 and b["nonfinite_mismatch"] == 2 and not b["within_budget"]
    assert (b["special_checks"], b["special_failed"]) == (2, 1)  # one table entry failing on two devices
    assert cell[("adapters.jax_nn", "tanh", "float32")]["status"] == "not provided"
    assert cell[("adapters.jax_nn", "gelu", "bfloat16")]["status"] == "skipped"
    s = {x["impl"]: x for x in board["summary"]}
    assert s["impl.functional"]["cells_within_budget"] == 3 and s["adapters.jax_nn"]["cells_within_budget"] == 0
    json.dumps(board)


def test_markdown_bolds_the_best_and_lists_failures_with_the_worst_input(tmp_path):
    board = leaderboard.write(tmp_path, [A, B], generated="2000-01-01", plots=False)
    md = (tmp_path / "leaderboard.md").read_text()
    assert json.loads((tmp_path / "leaderboard.json").read_text())["generated"] == "2000-01-01"
    assert "| `gelu` | float32 | **0.500** | 7.500 ! (+2 nan/inf) |" in md
    assert "| `gelu` | float32 | **100.00** | 80.00 ! |" in md
    assert "| `gelu` | float32 | **0/1** | 1/2 |" in md
    assert "| `tanh` | float32 | **0.500** | – |" in md
    assert "| `gelu` | bfloat16 |" not in md.split("## Failures")[0].split("## Max ulp")[1]  # no measured values
    assert "max 7.500 ulp at x = -6.5 (on cpu1; budget 1.000 ulp)" in md
    assert "special value x = -inf: expected -0.0, got nan on cpu0, nan on cpu1" in md
    assert "no bfloat16 (gelu bfloat16)" in md
    assert "## Gradient max ulp" in md
    assert "| `layer_norm[mu=1e4]` | float32 | **2.000** | 9.000 ! |" in md  # the absolute-error table
    assert "|got - exact| up to 9.000 ulp(1.0) (budget 4.000)" in md
    assert leaderboard.render_summary(board).count("\n") == 3


@pytest.mark.slow
def test_charts(tmp_path):
    import pytest

    pytest.importorskip("matplotlib")
    paths = leaderboard.write_plots(leaderboard.build([A, B]), tmp_path)
    names = sorted(p.name for p in paths)  # gelu is a registry activation; the hand-made layer_norm id is not
    assert names == ["leaderboard-activations-float32.png", "leaderboard-other-float32.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
