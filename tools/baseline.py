"""Baselines: record what a run found, then fail later runs only on what got worse.

``pytest --record-baseline FILE`` (or ``python -m tools.report -- --record-baseline FILE``)
writes, for every test of the run, its outcome and the figures of the rows it recorded
(``tools.verdict``).  ``pytest --baseline FILE`` then judges each test against that record:

* a test that failed in the baseline and fails again, with none of its figures worse, is
  reported as an expected failure ("as in the baseline") instead of a failure: the known
  failures of any implementation come from such a file;
* a test that passed in the baseline and fails now is a failure (a regression), as is a test
  whose figure got worse beyond the noise rule, even within its budget;
* a test that failed in the baseline and passes now, or whose figure got better beyond the
  noise rule, is listed as an improvement (the report's "Baseline" section);
* a test that the baseline does not know is judged by its budget alone.

Noise rule (``worse``): the suite's inputs are fixed (the golden inputs, and live samples drawn
from a fixed hash), so a deterministic implementation gives the same figures bit for bit; a
figure counts as worse only when it grew by more than 1 % of its old value plus 2**-10 (the
slack for an implementation whose reduction order changes with the device count or the
thread schedule), the share of correctly rounded results fell by more than 0.01 points, or
the number of NaN/inf mismatches grew.  ``better`` is the same rule the other way.

The file is JSON: ``{"implementation", "profile", "noise rule", "tests": {node id: {"outcome",
"rows": {row key: {"figure", "unit", "pct_cr", "nonfinite"}}}}}``; a row key is
``kind|case|dtype|device|source``.
"""

from __future__ import annotations

import json
from pathlib import Path

from tools.verdict import worst_figure

__all__ = ["NOISE_RULE", "row_key", "figures", "worse", "better", "write", "load", "judge_test", "improvements"]

NOISE_RULE = ("worse = figure > old * 1.01 + 2**-10, or % correctly rounded < old - 0.01, or more NaN/inf "
              "mismatches; better = the same the other way")

_FAILED = ("failed", "xfailed", "baseline")


def row_key(r: dict) -> str:
    return "|".join(str(r.get(k, "")) for k in ("kind", "case", "dtype", "device", "source", "x"))


def figures(r: dict) -> dict | None:
    """The comparable figures of a measured row (None for rows without a measurement)."""
    if "max_ulp" not in r:
        return None
    fig, unit = worst_figure(r)
    return {"figure": fig, "unit": unit, "pct_cr": r.get("pct_cr", 100.0), "nonfinite": r.get("n_nonfinite_mismatch", 0)}


def worse(new: dict, old: dict) -> str:
    """Why ``new`` is worse than ``old`` under the noise rule, or ''."""
    if new["figure"] > old["figure"] * 1.01 + 2 ** -10:
        return f"{new['figure']:.4g} {new['unit']} (baseline {old['figure']:.4g})"
    if new["pct_cr"] < old["pct_cr"] - 0.01:
        return f"{new['pct_cr']:.3f}% correctly rounded (baseline {old['pct_cr']:.3f}%)"
    if new["nonfinite"] > old["nonfinite"]:
        return f"{new['nonfinite']} NaN/inf mismatches (baseline {old['nonfinite']})"
    return ""


def better(new: dict, old: dict) -> str:
    return worse(old, new) and f"{new['figure']:.4g} {new['unit']}, {new['pct_cr']:.3f}% CR (baseline " \
                               f"{old['figure']:.4g}, {old['pct_cr']:.3f}%)"


def write(path, outcomes: dict, rows: list, header: dict) -> Path:
    tests = {t: {"outcome": o, "rows": {}} for t, o in sorted(outcomes.items())}
    for r in rows:
        f = figures(r)
        if f is not None and r.get("test") in tests:
            tests[r["test"]]["rows"][row_key(r)] = f
    data = {"implementation": header.get("implementation"), "profile": header.get("profile"),
            "run id": header.get("run id"), "noise rule": NOISE_RULE, "tests": tests}
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(p)
    return p


def load(path) -> dict:
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise ValueError(f"--baseline {path}: no such file; write one first with --record-baseline {path}") from None
    except ValueError as e:
        raise ValueError(f"--baseline {path}: not a baseline file ({e})") from None
    if not isinstance(data, dict) or "tests" not in data:
        raise ValueError(f"--baseline {path}: not a baseline file (no 'tests'); write one with --record-baseline")
    return data


def judge_test(base: dict, nodeid: str, failed: bool, rows: list) -> tuple[str, str]:
    """``(verdict, why)`` for one test against the baseline: ``"regression"``, ``"as before"``
    (a failure the baseline has, no figure worse) or ``""`` (nothing to change)."""
    old = base["tests"].get(nodeid)
    if old is None:
        return "", ""
    for r in rows:
        f, o = figures(r), old["rows"].get(row_key(r))
        if f is not None and o is not None and worse(f, o):
            return "regression", f"{r['case']} {r['dtype']} {r['device']}: {worse(f, o)}"
    if failed:
        if old["outcome"] in _FAILED:
            return "as before", f"failed in the baseline too ({base.get('run id') or 'recorded run'})"
        return "regression", "passed in the baseline"
    return "", ""


def improvements(base: dict, outcomes: dict, rows: list) -> list[str]:
    """Lines naming each test that passes now and failed in the baseline, and each figure better
    beyond the noise rule."""
    out = []
    for t, o in sorted(outcomes.items()):
        old = base["tests"].get(t)
        if old is not None and o == "passed" and old["outcome"] in _FAILED:
            out.append(f"{t}: passes now (failed in the baseline)")
    for r in rows:
        old = base["tests"].get(r.get("test"), {}).get("rows", {}).get(row_key(r))
        f = figures(r)
        if old is not None and f is not None and better(f, old):
            out.append(f"{r['case']} {r['kind']} {r['dtype']} {r['device']}: {better(f, old)}")
    return out
