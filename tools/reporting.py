"""The tolerance report: rows recorded by the tests, rendered as text, Markdown and JSON.

A row is a plain dict (JSON-serializable, so pytest-xdist workers can send it
to the controller) with at least ``kind`` ("value", "grad", ...), ``case``,
``dtype``, ``device``, ``source`` ("golden" or "live") and the fields of
``tools.metric.Stats`` plus ``budget_max_ulp`` and ``budget_min_cr``.

Columns: n, max ulp over normal-range results, p99 ulp, max abs (rows that
record ``max_abs_ulps``: the largest ``|got - exact|`` in ulps of the row's
``abs_unit``, e.g. ``ulp(1.0)`` for normalized outputs), % correctly rounded,
subnormal results flushed (of how many), nan/inf mismatches, budget, headroom
(budget / max ulp, or budget / max abs where only the absolute error is
budgeted; "inf" when the max is 0).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

__all__ = ["row_from_stats", "sort_rows", "render_text", "render_markdown", "write_report"]

COLUMNS = ["kind", "case", "dtype", "device", "source", "n", "max ulp", "p99 ulp", "max abs", "% CR",
           "subnormal flushed", "nan/inf mismatch", "budget", "headroom", "worst input"]


def row_from_stats(kind, case, dtype, device, source, stats, budget, worst_input=None, extra=None):
    d = {k: getattr(stats, k) for k in stats.__dataclass_fields__}
    d.update(kind=kind, case=case, dtype=dtype, device=device, source=source,
             pct_cr=stats.pct_cr, budget_max_ulp=budget.max_ulp, budget_min_cr=budget.min_cr,
             worst_input=worst_input)
    d.update(extra or {})
    return d


_DT_ORDER = {"float32": 0, "bfloat16": 1, "float16": 2, "float64": 3}


def sort_rows(rows):
    return sorted(rows, key=lambda r: (r["kind"], r["case"], _DT_ORDER.get(r["dtype"], 9), r["device"], r["source"]))


def _fmt_ulp(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if v == 0:
        return "0"
    if v >= 1000:
        return f"{v:.3g}"
    return f"{v:.3f}"


def _fmt_abs(r):
    v = r.get("max_abs_ulps")
    if v is None:
        return "-"
    return f"{_fmt_ulp(v)} {r.get('abs_unit', 'ulp')}"


def _fmt_budget(r):
    parts = [] if math.isinf(r["budget_max_ulp"]) else [f"<= {_fmt_ulp(r['budget_max_ulp'])} ulp"]
    if r["budget_min_cr"]:
        parts.append(f">= {r['budget_min_cr']:g}% CR")
    if r.get("budget_max_abs_ulps") is not None:
        parts.append(f"abs <= {_fmt_ulp(r['budget_max_abs_ulps'])} {r.get('abs_unit', 'ulp')}")
    return ", ".join(parts) or "-"


def _cells(r):
    mx = r["max_ulp"]
    budget, got = r["budget_max_ulp"], mx
    if math.isinf(budget) and r.get("budget_max_abs_ulps") is not None:  # only the absolute error is budgeted
        budget, got = r["budget_max_abs_ulps"], r.get("max_abs_ulps", 0.0)
    head = "inf" if got == 0 else f"{budget / got:.2f}x"
    worst = "" if r.get("worst_input") is None else f"{r['worst_input']:.9g}"
    return [
        r["kind"], r["case"], r["dtype"], r["device"], r["source"], str(r["n"]), _fmt_ulp(mx),
        _fmt_ulp(r["p99_ulp"]), _fmt_abs(r), f"{r['pct_cr']:.3f}", f"{r['n_flushed']}/{r['n_subnormal']}",
        str(r["n_nonfinite_mismatch"]),
        _fmt_budget(r),
        head, worst,
    ]


def render_text(rows, header_lines=()):
    rows = sort_rows(rows)
    table = [COLUMNS] + [_cells(r) for r in rows]
    widths = [max(len(t[i]) for t in table) for i in range(len(COLUMNS))]
    out = list(header_lines)
    for k, t in enumerate(table):
        out.append("  ".join(c.ljust(w) for c, w in zip(t, widths)).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def render_markdown(rows, header_lines=()):
    rows = sort_rows(rows)
    out = ["# Conformance tolerance report", ""]
    out += [f"- {h}" for h in header_lines]
    out += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = _cells(r)
        cells[1] = f"`{cells[1]}`"
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def write_report(directory, rows, header: dict):
    """Write ``report.json`` and ``report.md`` to ``directory``; returns their paths."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    lines = [f"{k}: {v}" for k, v in header.items()]
    (d / "report.json").write_text(json.dumps({"header": header, "rows": sort_rows(rows)}, indent=1,
                                              sort_keys=True, default=float) + "\n")
    (d / "report.md").write_text(render_markdown(rows, lines))
    return d / "report.json", d / "report.md"
