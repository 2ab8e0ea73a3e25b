"""The tolerance report: rows recorded by the tests, rendered as text, Markdown and JSON.

A row is a plain dict (JSON-serializable, so pytest-xdist workers can send it
to the controller) with at least ``kind``, ``case``, ``dtype``, ``device`` and
``source``.  Measurement rows (``kind`` "value", "grad", ...; ``source``
"golden" or "live") carry the fields of ``tools.metric.Stats`` plus
``budget_max_ulp`` and ``budget_min_cr``.  Two kinds carry no statistics:
"special" (one special-value check: ``x``, ``expected``, ``got``, ``status``
pass/fail/xfail) and "skip" (a case the implementation under test did not run:
``reason``); they are summarized apart.

Columns: n, max ulp over normal-range results, p99 ulp, max abs (rows that
record ``max_abs_ulps``: the largest ``|got - exact|`` in ulps of the row's
``abs_unit``, e.g. ``ulp(1.0)`` for normalized outputs), % correctly rounded,
subnormal results flushed (of how many), nan/inf mismatches, budget, headroom
(budget / max ulp, or budget / max abs where only the absolute error is
budgeted; "inf" when the max is 0).

Rows judged by an a-priori error bound rather than an ulp budget (linear
maps) carry ``bound_fraction`` (the largest ``|error| / bound``) and
``budget_text`` (and ``budget_max_ulp`` None); their budget cell shows that
text and their headroom is ``max_bound_fraction / bound_fraction``.
"""

from __future__ import annotations

import json
import os
import math
from pathlib import Path

__all__ = ["row_from_stats", "sort_rows", "render_text", "render_markdown", "write_report",
           "cross_device_table", "row_within_budget", "stat_rows", "special_summary", "skip_summary"]

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
    return sorted(rows, key=lambda r: (r["kind"], r["case"], _DT_ORDER.get(r["dtype"], 9), r["device"],
                                       r["source"], str(r.get("x", ""))))


def stat_rows(rows):
    """The measurement rows (those with ulp statistics)."""
    return [r for r in rows if "max_ulp" in r]


def special_summary(rows):
    """Per (case, dtype): (checks, failed, [failing rows]) over the "special" rows; a check
    is one table entry on one device."""
    out = {}
    for r in rows:
        if r["kind"] != "special":
            continue
        n, bad, fails = out.get((r["case"], r["dtype"]), (0, 0, []))
        if r["status"] == "fail":
            bad, fails = bad + 1, fails + [r]
        out[(r["case"], r["dtype"])] = (n + 1, bad, fails)
    return out


def skip_summary(rows):
    """Per reason: the sorted (case, dtype) pairs skipped for it."""
    out = {}
    for r in rows:
        if r["kind"] == "skip":
            out.setdefault(r["reason"], set()).add((r["case"], r["dtype"]))
    return {k: sorted(v, key=lambda cd: (cd[0], _DT_ORDER.get(cd[1], 9))) for k, v in sorted(out.items())}


def _special_lines(rows):
    summ = special_summary(rows)
    if not summ:
        return []
    n = sum(v[0] for v in summ.values())
    bad = [f for v in summ.values() for f in v[2]]
    out = [f"special values: {n - len(bad)} of {n} checks pass"]
    for r in sort_rows(bad):
        out.append(f"  FAIL {r['case']}(x={r['x']}) {r['dtype']} on {r['device']}: expected {r['expected']}, "
                   f"got {r['got']}")
    return out


def _skip_lines(rows):
    out = []
    for reason, pairs in skip_summary(rows).items():
        cases = sorted({c for c, _ in pairs})
        out.append(f"skipped ({len(pairs)} case x dtype): {reason} [{', '.join(cases)}]")
    return out


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
    if r.get("bound_fraction") is not None:
        frac = r["bound_fraction"]
        head = "inf" if frac == 0 else f"{r.get('max_bound_fraction', 1.0) / frac:.2f}x"
        budget_cell = f"{r.get('budget_text', 'a-priori bound')} (max {frac:.3g} of it)"
    else:
        budget, got = r["budget_max_ulp"], mx
        if math.isinf(budget) and r.get("budget_max_abs_ulps") is not None:  # only the absolute error is budgeted
            budget, got = r["budget_max_abs_ulps"], r.get("max_abs_ulps", 0.0)
        head = "inf" if got == 0 else f"{budget / got:.2f}x"
        budget_cell = _fmt_budget(r)
    worst = "" if r.get("worst_input") is None else f"{r['worst_input']:.9g}"
    return [
        r["kind"], r["case"], r["dtype"], r["device"], r["source"], str(r["n"]), _fmt_ulp(mx),
        _fmt_ulp(r["p99_ulp"]), _fmt_abs(r), f"{r['pct_cr']:.3f}", f"{r['n_flushed']}/{r['n_subnormal']}",
        str(r["n_nonfinite_mismatch"]), budget_cell, head, worst,
    ]


def render_text(rows, header_lines=()):
    extra = _special_lines(rows) + _skip_lines(rows)
    rows = sort_rows(stat_rows(rows))
    table = [COLUMNS] + [_cells(r) for r in rows]
    widths = [max(len(t[i]) for t in table) for i in range(len(COLUMNS))]
    out = list(header_lines)
    for k, t in enumerate(table):
        out.append("  ".join(c.ljust(w) for c, w in zip(t, widths)).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    devices, cross = cross_device_table(rows)
    if len(devices) > 1:
        out += ["", "across devices (max ulp vs golden; ! = over budget):"]
        head = ["kind", "case", "dtype"] + devices + ["agreement"]
        tab = [head] + cross
        w = [max(len(t[i]) for t in tab) for i in range(len(head))]
        out += ["  ".join(c.ljust(x) for c, x in zip(t, w)).rstrip() for t in tab]
    if extra:
        out += [""] + extra
    return "\n".join(out)


def row_within_budget(r) -> bool:
    if r.get("bound_fraction") is not None:  # judged by an a-priori bound
        ok = r["bound_fraction"] <= r.get("max_bound_fraction", 1.0)
    else:
        ok = r["max_ulp"] <= r["budget_max_ulp"] and r["pct_cr"] >= (r["budget_min_cr"] or 0)
        if r.get("budget_max_abs_ulps") is not None:
            ok = ok and (r.get("max_abs_ulps") or 0.0) <= r["budget_max_abs_ulps"]
    return ok and r["n_nonfinite_mismatch"] == 0


def cross_device_table(rows):
    """Per kind x case x dtype, the max ulp of each device against the golden data side by
    side; a device over its budget is flagged with "!".  Returns (devices, table rows)."""
    golden_rows = [r for r in stat_rows(rows) if r["source"] == "golden"]
    devices = sorted({r["device"] for r in golden_rows})
    cells = {}
    for r in golden_rows:
        key = (r["kind"], r["case"], r["dtype"])
        shown = (f"{r['bound_fraction']:.3g} of bound" if r.get("bound_fraction") is not None
                 else _fmt_ulp(r["max_ulp"]))
        cells.setdefault(key, {})[r["device"]] = shown + ("" if row_within_budget(r) else " !")
    table = []
    for key in sorted(cells, key=lambda k: (k[0], k[1], _DT_ORDER.get(k[2], 9))):
        per = cells[key]
        values = {v.rstrip(" !") for v in per.values()}
        agree = "same" if len(values) == 1 and len(per) == len(devices) else "DIFFER"
        table.append(list(key) + [per.get(d, "-") for d in devices] + [agree])
    return devices, table


def _render_cross_device_md(rows):
    devices, table = cross_device_table(rows)
    if len(devices) < 2:
        return []
    out = ["", "## Across devices (max ulp vs golden; ! = over budget)", "",
           "| kind | case | dtype | " + " | ".join(devices) + " | agreement |",
           "|" + "---|" * (4 + len(devices))]
    out += ["| " + " | ".join(t) + " |" for t in table]
    return out


def render_markdown(rows, header_lines=()):
    special, skips = _special_lines(rows), _skip_lines(rows)
    rows = sort_rows(stat_rows(rows))
    out = ["# Conformance tolerance report", ""]
    out += [f"- {h}" for h in header_lines]
    out += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = _cells(r)
        cells[1] = f"`{cells[1]}`"
        out.append("| " + " | ".join(cells) + " |")
    out += _render_cross_device_md(rows)
    if special:
        out += ["", "## Special values", "", special[0]]
        if len(special) > 1:
            out += [""] + [f"- {line.strip()}" for line in special[1:]]
    if skips:
        out += ["", "## Skipped", ""] + [f"- {line}" for line in skips]
    return "\n".join(out) + "\n"


def write_report(directory, rows, header: dict):
    """Write ``report.json`` and ``report.md`` to ``directory``; returns their paths."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    lines = [f"{k}: {v}" for k, v in header.items()]
    for name, text in (("report.json", json.dumps({"header": header, "rows": sort_rows(rows)}, indent=1,
                                                  sort_keys=True, default=float) + "\n"),
                       ("report.md", render_markdown(rows, lines))):
        tmp = d / f".{name}.{os.getpid()}.tmp"  # a reader sees the old file or the new one, never a part
        tmp.write_text(text)
        os.replace(tmp, d / name)
    return d / "report.json", d / "report.md"
